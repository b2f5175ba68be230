"""The envelopes a SQLite store's events are delivered with, read straight from the file as the
outbox reads them (the stored payload with its version's entry spliced back in), for tests that
compare what sinks received with what the store holds."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncd.storage.envelopes import ENVELOPE_COLUMNS, VERSION_JOIN, spliced
from syncd.storage.sqlite.db import fetch


def read_envelopes(
    conn: sqlite3.Connection, where: str = "1", params: Sequence[Any] = ()
) -> list[tuple[int, str, str]]:
    """(seq, event id, envelope) of the events matching `where` (on events `e`), in seq order."""
    sql = f"SELECT e.seq, e.id, {ENVELOPE_COLUMNS} FROM events e {VERSION_JOIN} WHERE {where}"
    rows = fetch(conn, sql + " ORDER BY e.seq", params)
    return [(r["seq"], r["id"], spliced(r)) for r in rows]


def envelopes(db: Path, where: str = "1", params: Sequence[Any] = ()) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return read_envelopes(conn, where, params)
    finally:
        conn.close()
