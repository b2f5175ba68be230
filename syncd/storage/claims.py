"""What a claim's rows become: leased deliveries with the events their sinks receive. Shared by
both outboxes, whose claims read the same columns by position (id, attempts, event_id, seq,
type, the stored envelope as bytes, version_id) and the version columns of the rows that name
one afterwards, in one statement (`VERSION_COLUMNS`), instead of left-joining them into every
row: ten NULL columns per row were a quarter of a SQLite file-sink claim's select.

It reads nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.model import OutboundEvent
from syncd.storage.envelopes import VERSION_FIELDS, spliced_body
from syncd.storage.values import DueDelivery

__all__ = ["VERSION_COLUMNS", "claimed", "named_versions"]

# A version's columns as `spliced` reads them, from `entry_versions v`, after its id.
VERSION_COLUMNS = "v.id, " + ", ".join(f"v.{c} AS v_{c}" for c in VERSION_FIELDS)


def named_versions(rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """The versions a claim's rows name, each once, in order (none: nothing more to read)."""
    return sorted({r[6] for r in rows if r[6] is not None})


def claimed(
    rows: Sequence[tuple[Any, ...]],
    versions: Mapping[int, Mapping[str, Any]],
    sink: str,
    lease: datetime,
) -> list[DueDelivery]:
    """The deliveries of a claim's rows, in one pass: an event stored whole is sent as stored,
    one that names a version is spliced with that version (`versions`, by id)."""
    return [
        DueDelivery(
            r[0],
            r[1],
            OutboundEvent(r[2], r[3], r[4], r[5]) if r[6] is None else _spliced(r, versions),
            sink,
            lease,
        )
        for r in rows
    ]


def _spliced(r: tuple[Any, ...], versions: Mapping[int, Mapping[str, Any]]) -> OutboundEvent:
    # A version missing from its table (only a hand edit can do that) leaves `v_entry_id` unset,
    # which `spliced_body` refuses, as it did when the version was left-joined.
    row = {"version_id": r[6], "v_entry_id": None}
    return OutboundEvent(r[2], r[3], r[4], spliced_body(r[5], {**row, **versions.get(r[6], {})}))
