"""The SQLite connection: opening (created and migrated, or read-only), one immediate write
transaction at a time, reads as dicts. Every sqlite3 error
leaves this package as a StoreError naming the database. Decides nothing about feeds or sinks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from syncd.errors import StoreError
from syncd.storage.sqlite.migrations import migrations

BUSY_TIMEOUT_MS = 10_000
Params = Sequence[Any] | Mapping[str, Any]


def marks(values: Collection[object]) -> str:
    return ",".join("?" * len(values))


class Db:
    """One connection to the database file. Not thread-safe; one per store."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Db:
        """The database at `path` for reading and writing, created (with its directory) and
        migrated as needed. Every failure is a StoreError naming the path."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
        except FileExistsError:  # mkdir's word for "a file is in the way"
            raise StoreError(
                f"cannot open database {str(path)!r}: {str(path.parent)!r} is not a directory"
            ) from None
        except (OSError, sqlite3.Error) as e:
            raise open_error(path, e) from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # What sqlite-utils' Database sets on a connection it wraps: triggers fire from
            # within triggers too (the search index's triggers rely on the same behaviour
            # whether or not a migration ran in this process).
            conn.execute("PRAGMA recursive_triggers = on")
            if not conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                # Only possible before the first table: lets `syncd vacuum --incremental` hand
                # pruned pages back beside the daemon (older stores switch with one VACUUM).
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                with conn:
                    conn.execute("PRAGMA journal_mode = wal")
            # NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the
            # last transactions, never corrupt the file.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrations.apply(conn)
        except sqlite3.Error as e:
            conn.close()
            raise open_error(path, e) from e
        return cls(conn, path)

    @classmethod
    def open_for_writes(cls, path: Path) -> Db:
        """A second writer connection to the store at `path`, which `open` created and migrated
        (for a worker thread: a connection stays in the thread that opened it)."""
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True,
                                   timeout=BUSY_TIMEOUT_MS / 1000)  # fmt: skip
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # As the main connection: without it each commit (an index batch, a heartbeat)
            # syncs the WAL while holding the write lock a page commit waits for.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            raise open_error(path, e) from e
        return cls(conn, path)

    @classmethod
    def open_existing(cls, path: Path) -> Db:
        """The database at `path` read-only, for commands that only look: never creates a file
        or a directory, never migrates, and a write through it fails. A missing or not yet
        migrated database is a StoreError naming the path."""
        if not path.is_file():
            raise StoreError(
                f"no database at {str(path)!r} (check [store] path, or run `syncd sync` first)"
            )
        try:
            conn = readonly_connection(path)
            conn.execute("PRAGMA recursive_triggers = on")
            pending = migrations.pending(conn)
        except sqlite3.Error as e:
            raise open_error(path, e) from e
        if pending:
            conn.close()
            raise StoreError(
                f"database {str(path)!r} predates this syncd ({len(pending)} migrations pending);"
                " `syncd sync` or `syncd run` upgrades it"
            )
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: a deferred BEGIN that later writes ignores busy_timeout."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            # Disk full, "database is locked" past busy_timeout, corruption: one readable
            # StoreError for the callers, who record it and back off.
            if conn.in_transaction:
                conn.rollback()
            raise StoreError(f"database error in {str(self.path)!r}: {e}") from e

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        try:
            return fetch(self.conn, sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"database error in {str(self.path)!r}: {e}") from e


def fetch(conn: sqlite3.Connection, sql: str, params: Params = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def readonly_connection(
    path: Path, timeout_s: float = BUSY_TIMEOUT_MS / 1000
) -> sqlite3.Connection:
    """A connection that cannot write (and never creates the file)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    return conn


def open_error(path: Path, e: OSError | sqlite3.Error) -> StoreError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return StoreError(f"cannot open database {str(path)!r}: {reason}")
