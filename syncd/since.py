"""Instants as people give them (`--since`, `since=`): a duration back from now, or a date/time.
Pure: `now` is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from syncd.config import parse_duration
from syncd.timestamps import parse_timestamp

__all__ = ["parse_since"]


def parse_since(text: str, now: datetime) -> datetime:
    """A duration ago ("90m", "2d") or an ISO-8601 instant or date (UTC if no zone)."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    when = parse_timestamp(text)
    if when is None:
        raise ValueError(f"{text!r} is neither a duration (2h, 3d) nor a date (2026-11-28T07:00Z)")
    return when
