"""VACUUM on SQLite, on demand (`syncd vacuum`): a full rewrite, or the incremental kind that
hands free pages back to the file system a few at a time.

A full VACUUM copies the whole database and holds the write lock until it is done, so every
writer waits (and past the busy timeout fails): its caller makes sure no daemon runs. It also
switches a store made before incremental vacuum existed to `auto_vacuum = INCREMENTAL` (new
stores are created so, syncd.storage.sqlite.db). The incremental kind moves at most
STEP_PAGES pages per write transaction, so it can run beside the daemon: its writers wait at
most one short step, and its closing checkpoint is the passive kind, which takes no lock (a
TRUNCATE checkpoint holds the write lock while it waits for readers in older snapshots, up to
the busy timeout, and the daemon's writes would fail meanwhile). Decides nothing about when to
vacuum.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from syncd.errors import StoreError
from syncd.storage.sqlite.db import Db

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import VacuumReport

STEP_PAGES = 256  # pages handed back per transaction: 1 MB at 4 KiB pages, a few ms of lock
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


def full(db: Db) -> VacuumReport:
    """Rewrite the database (and switch it to incremental auto-vacuum)."""
    from syncd.storage.reports import VacuumReport

    before = _size(db.conn)
    try:
        db.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.conn.execute("VACUUM")
    except sqlite3.Error as e:
        raise StoreError(f"database error in {str(db.path)!r}: {e}") from e
    _checkpoint(db.conn, "TRUNCATE")
    return VacuumReport(before, _size(db.conn))


def incremental(db: Db) -> VacuumReport:
    """Hand every free page back, STEP_PAGES per transaction; on a store without incremental
    auto-vacuum nothing can be, and the report says how to switch it."""
    from syncd.storage.reports import VacuumReport

    before = _size(db.conn)
    mode = db.conn.execute("PRAGMA auto_vacuum").fetchone()[0]
    if mode != INCREMENTAL:
        return VacuumReport(
            before,
            before,
            "this store predates incremental vacuum (auto_vacuum = none): run `syncd vacuum`"
            " once, with the daemon stopped, to switch it",
        )
    while db.conn.execute("PRAGMA freelist_count").fetchone()[0]:
        with db.write() as conn:
            conn.execute(f"PRAGMA incremental_vacuum({STEP_PAGES})").fetchall()
    # Beside the daemon: copy what no reader still needs, wait for nobody. The file shrinks
    # once a checkpoint has copied every frame (this one, or the daemon's next automatic one).
    _checkpoint(db.conn, "PASSIVE")
    return VacuumReport(before, _size(db.conn))


def _size(conn: sqlite3.Connection) -> int:
    """The file's size once the WAL is checkpointed: pages times page size."""
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(page * conn.execute("PRAGMA page_count").fetchone()[0])


def _checkpoint(conn: sqlite3.Connection, mode: str) -> None:
    """Copy the WAL into the file (TRUNCATE: and empty the WAL), so the file system sees the
    new size; a reader still in an old snapshot makes this partial, never an error."""
    conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
