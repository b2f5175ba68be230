"""Retry policy for deliveries: when to try again after a failed attempt, and when to give up.

Pure decisions only: the current time and the random source are arguments, nothing here reads a
clock, sleeps, touches the network or the store. The dispatcher asks "when next?" and records the
answer; a `None` answer means the delivery is dead (kept, visible and replayable, per DESIGN §5).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = [
    "DEFAULT_SCHEDULE_S",
    "MAX_RETRY_AFTER_S",
    "next_attempt_at",
    "parse_retry_after",
]

# The Standard Webhooks schedule: the wait after the 1st, 2nd, … failed attempt (5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h). Nine waits: ten attempts over about three days.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)

# A receiver's Retry-After is honoured up to the schedule's longest wait. Beyond that it would
# stall the delivery indefinitely (or overflow datetime arithmetic with a date in year 9999); once
# the wait is over the receiver can simply ask again.
MAX_RETRY_AFTER_S: float = 86400.0


def next_attempt_at(
    attempts_made: int,
    schedule: Sequence[float],
    now: datetime,
    *,
    retry_after_s: float | None = None,
    jitter: float = 0.1,
    rng: random.Random,
) -> datetime | None:
    """When to make the next attempt, given that `attempts_made` attempts have failed so far.

    After the n-th failure the wait is `schedule[n-1]`, scaled by a uniform factor in
    [1 - jitter, 1 + jitter] (so retries of many deliveries that failed together spread out; never
    below zero), and never shorter than `retry_after_s` (the receiver's Retry-After). Returns
    `None` once `attempts_made` exceeds `len(schedule)`: the delivery is dead.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1 (got {attempts_made})")
    if not (math.isfinite(jitter) and jitter >= 0.0):
        raise ValueError(f"jitter must be a finite fraction >= 0 (got {jitter})")
    if retry_after_s is not None and not math.isfinite(retry_after_s):
        raise ValueError(f"retry_after_s must be finite (got {retry_after_s})")
    if now.tzinfo is None:
        # A naive `now` would silently mix local and UTC times in the outbox.
        raise ValueError("now must be timezone-aware")
    if attempts_made > len(schedule):
        return None
    base = float(schedule[attempts_made - 1])
    delay = max(0.0, base * (1.0 + rng.uniform(-jitter, jitter)))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return now + timedelta(seconds=delay)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait according to a Retry-After header value, or None if absent or unreadable.

    Accepts delta-seconds ("120") and an HTTP-date ("Wed, 21 Oct 2026 07:28:00 GMT"). A date in
    the past or a negative number gives 0; the result is capped at MAX_RETRY_AFTER_S.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float
    try:
        # RFC 9110 says integer delta-seconds; decimals are accepted because some servers send them.
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            # parsedate_to_datetime returns naive for "-0000"; HTTP-dates are always GMT.
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)
