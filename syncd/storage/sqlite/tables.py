"""The SQLite store's tables as `syncd store copy` reads and writes them (syncd.storage.transfer):
as a source, one read snapshot of a migrated file, never written; as a destination, a file created
and migrated as needed and filled in one transaction, its search index rebuilt from the copied
entries. Either end holds the store's daemon lock while open, so no `syncd run` starts on it (and
none is running: the copy would miss what it writes next). Knows no feed, event or sink.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.daemonlock import DaemonLock
from syncd.errors import StoreError
from syncd.storage.sqlite import search
from syncd.storage.sqlite.db import Db
from syncd.storage.transfer import Row, TableInfo
from syncd.timestamps import to_text

# Not the store's data: SQLite's own tables, sqlite-utils' migration record, and the search
# index (its tables and their FTS5 shadow tables, named after them), rebuilt instead.
_NOT_DATA = ("sqlite_", "_sqlite_", *search.TABLES)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteTables:
    """One end of a copy: the file at `path`, with its daemon lock held."""

    def __init__(self, db: Db, lock: DaemonLock) -> None:
        self.db = db
        self._lock = lock

    @classmethod
    def source(cls, path: Path) -> SqliteTables:
        """The store at `path`, read-only; it must exist and be at this syncd's latest
        migration (a copy never changes its source, upgrades included)."""
        if not path.is_file():
            raise StoreError(f"no database at {str(path)!r}")
        lock = _locked(path)
        try:
            db = Db.open_existing(path)
            db.conn.isolation_level = None  # this module says when transactions begin
            db.conn.execute("BEGIN")  # one snapshot for every read that follows
        except BaseException:
            lock.release()
            raise
        return cls(db, lock)

    @classmethod
    def target(cls, path: Path) -> SqliteTables:
        """The store at `path`, created and migrated to the latest migration as needed."""
        lock = _locked(path)
        try:
            db = Db.open(path)
        except BaseException:
            lock.release()
            raise
        return cls(db, lock)

    @property
    def location(self) -> str:
        return str(self.db.path)

    async def close(self) -> None:
        try:
            if self.db.conn.in_transaction:
                self.db.conn.rollback()
            self.db.close()
        finally:
            self._lock.release()

    async def tables(self) -> dict[str, TableInfo]:
        names = [
            r[0]
            for r in self._run("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if not r[0].startswith(_NOT_DATA)
        ]
        return {name: self._table(name) for name in names}

    def _table(self, name: str) -> TableInfo:
        info = self._run(f"PRAGMA table_info({_quote(name)})")
        columns = tuple(str(c[1]) for c in info)
        key = tuple(str(c[1]) for c in sorted((c for c in info if c[5]), key=lambda c: c[5]))
        references = self._run(f"PRAGMA foreign_key_list({_quote(name)})")
        parents = frozenset(str(f[2]) for f in references)
        # An INTEGER PRIMARY KEY is the rowid: SQLite hands out its values.
        types = {str(c[1]): str(c[2]).upper() for c in info}
        counter = key[0] if len(key) == 1 and types[key[0]] == "INTEGER" else None
        return TableInfo(name, columns, key or ("rowid",), parents, counter)

    async def count(self, table: str) -> int:
        return int(self._run(f"SELECT COUNT(*) FROM {_quote(table)}")[0][0])

    async def rows(
        self, table: TableInfo, columns: Sequence[str], batch: int
    ) -> AsyncIterator[list[Row]]:
        cols = ", ".join(_quote(c) for c in columns)
        order = ", ".join(_quote(c) for c in table.key)
        try:
            cur = self.db.conn.execute(f"SELECT {cols} FROM {_quote(table.name)} ORDER BY {order}")
            while rows := cur.fetchmany(batch):
                yield rows
        except sqlite3.Error as e:
            raise StoreError(f"database error in {self.location!r}: {e}") from e

    async def counters(self) -> dict[str, int]:
        handed: dict[str, int] = dict(self._run("SELECT name, seq FROM sqlite_sequence"))
        found = {}
        for table in (await self.tables()).values():
            if table.counter is not None:
                top = self._run(f"SELECT MAX({_quote(table.counter)}) FROM {_quote(table.name)}")
                found[table.name] = max(int(top[0][0] or 0), int(handed.get(table.name) or 0))
        return found

    # ---------------------------------------------------------------- as a destination

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        with self.db.write():
            yield

    async def clear(self, tables: Sequence[str]) -> None:
        for table in (*tables, *search.TABLES):
            self._run(f"DELETE FROM {_quote(table)}")

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        cols = ", ".join(_quote(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        try:
            self.db.conn.executemany(
                f"INSERT INTO {_quote(table)} ({cols}) VALUES ({marks})", _plain(rows)
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot copy into {table} of {self.location!r}: {e}") from e

    async def finish(self, counters: Mapping[str, int]) -> None:
        tables = await self.tables()
        for name, value in counters.items():
            table = tables.get(name)
            if table is None or table.counter is None or not self._autoincrement(name):
                continue  # a plain rowid table takes the largest value + 1: nothing to carry
            top = self._run(f"SELECT MAX({_quote(table.counter)}) FROM {_quote(name)}")
            value = max(value, int(top[0][0] or 0))
            self._run("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
            self._run("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, value))
        try:
            search.rebuild(self.db.conn)
        except sqlite3.Error as e:
            raise StoreError(f"cannot rebuild the search index of {self.location!r}: {e}") from e

    def _autoincrement(self, table: str) -> bool:
        sql = self._run("SELECT sql FROM sqlite_master WHERE name = ?", (table,))
        return bool(sql) and "AUTOINCREMENT" in str(sql[0][0]).upper()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self.db.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"database error in {self.location!r}: {e}") from e


def _locked(path: Path) -> DaemonLock:
    """The store's daemon lock, held: a running `syncd run` makes this a StoreError naming it."""
    lock = DaemonLock.for_store(path)
    lock.acquire()
    return lock


def _plain(rows: Sequence[Row]) -> Iterator[Row]:
    """Rows as SQLite takes them: an instant (from a PostgreSQL timestamp column) as the text
    syncd writes everywhere else."""
    for row in rows:
        if any(isinstance(v, datetime) for v in row):
            yield tuple(to_text(v) if isinstance(v, datetime) else v for v in row)
        else:
            yield row
