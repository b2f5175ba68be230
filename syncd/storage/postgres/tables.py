"""The PostgreSQL store's tables as `syncd store copy` reads and writes them
(syncd.storage.transfer): as a source, one REPEATABLE READ, read-only snapshot of a migrated
schema, rows streamed through server-side cursors; as a destination, a schema migrated as needed
and filled with COPY in one transaction, its sequences set past every copied id and its search
index rebuilt from the copied entries. Either end holds the store's lock exclusively
(syncd.storage.postgres.daemonlock) on its own connection, so it refuses while a `syncd run` is
on that store and none starts during the copy. Knows no feed, event or sink.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql

from syncd.errors import StoreError
from syncd.redact import redacted_url
from syncd.storage.postgres import search
from syncd.storage.postgres.daemonlock import Conn, locked_connection
from syncd.storage.postgres.migrations import apply_migrations, pending_migrations
from syncd.storage.transfer import Row, TableInfo

# Not the store's data: the migration record, and the search index and its queue (rebuilt).
_NOT_DATA = frozenset({"syncd_migrations", "entries_search", "search_pending"})
SEARCH_BATCH = 500

_TABLES = """
SELECT c.relname AS table_name, a.attname AS column_name, a.attnum,
       pg_get_serial_sequence(quote_ident(c.relname), a.attname) AS sequence
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
ORDER BY c.relname, a.attnum"""
_KEYS = """
SELECT c.relname, a.attname, array_position(i.indkey::int2[], a.attnum) AS position
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace
ORDER BY c.relname, position"""
_PARENTS = """
SELECT c.relname, p.relname
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
WHERE k.contype = 'f' AND c.relnamespace = current_schema()::regnamespace"""


class PostgresTables:
    """One end of a copy: a database (the schema its URL's search path names first)."""

    def __init__(self, conn: Conn, location: str) -> None:
        self._conn = conn
        self._location = location
        self._sequences: dict[str, str] = {}

    @classmethod
    async def source(cls, url: str) -> PostgresTables:
        """The store at `url`, read in one snapshot; it must be at this syncd's latest migration
        (a copy never changes its source, upgrades included)."""
        ends = await cls._open(url)
        try:
            if missing := await pending_migrations(ends._conn):
                raise StoreError(
                    f"database {ends.location} is not at this syncd's latest migration"
                    f" ({len(missing)} pending); `syncd sync` or `syncd run` upgrades it"
                )
            await ends._conn.set_autocommit(False)
            await ends._conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
            await ends._conn.set_read_only(True)
        except BaseException:
            await ends.close()
            raise
        return ends

    @classmethod
    async def target(cls, url: str) -> PostgresTables:
        """The store at `url`, migrated to the latest migration as needed."""
        ends = await cls._open(url)
        try:
            await apply_migrations(ends._conn)
        except BaseException:
            await ends.close()
            raise
        return ends

    @classmethod
    async def _open(cls, url: str) -> PostgresTables:
        busy = (
            "a `syncd run` (or another copy) is using {where}; stop it first"
            " (a copy made beside a daemon would miss what it writes next)"
        )
        return cls(await locked_connection(url, shared=False, busy=busy), redacted_url(url))

    @property
    def location(self) -> str:
        return self._location

    async def close(self) -> None:
        await self._conn.close()  # the lock goes with the session

    async def tables(self) -> dict[str, TableInfo]:
        columns: dict[str, list[str]] = {}
        counters: dict[str, str] = {}
        for table, column, _, sequence in await self._run(_TABLES):
            if table in _NOT_DATA:
                continue
            columns.setdefault(table, []).append(column)
            if sequence is not None:
                counters[table] = column
                self._sequences[table] = sequence
        keys: dict[str, list[str]] = {}
        for table, column, _ in await self._run(_KEYS):
            keys.setdefault(table, []).append(column)
        parents: dict[str, set[str]] = {}
        for child, parent in await self._run(_PARENTS):
            parents.setdefault(child, set()).add(parent)
        return {
            name: TableInfo(
                name,
                tuple(cols),
                tuple(keys.get(name) or cols),
                frozenset(parents.get(name, ())),
                counters.get(name),
            )
            for name, cols in columns.items()
        }

    async def count(self, table: str) -> int:
        rows = await self._run(sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table)))
        return int(rows[0][0])

    async def rows(
        self, table: TableInfo, columns: Sequence[str], batch: int
    ) -> AsyncIterator[list[Row]]:
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(table.name),
            sql.SQL(", ").join(map(sql.Identifier, table.key)),
        )
        try:
            async with self._conn.cursor(name=f"syncd_copy_{table.name}") as cur:
                await cur.execute(query)
                while rows := await cur.fetchmany(batch):
                    yield rows
        except psycopg.Error as e:
            raise StoreError(f"database error in {self.location}: {e}") from e

    async def counters(self) -> dict[str, int]:
        found = {}
        for table in (await self.tables()).values():
            if table.counter is None:
                continue
            seq = self._sequences[table.name]
            # NULL until the sequence hands out its first value.
            rows = await self._run("SELECT pg_sequence_last_value(%s::regclass)", (seq,))
            top = await self._run(
                sql.SQL("SELECT MAX({}) FROM {}").format(
                    sql.Identifier(table.counter), sql.Identifier(table.name)
                )
            )
            handed = int(rows[0][0] or 0)
            found[table.name] = max(handed, int(top[0][0] or 0))
        return found

    # ---------------------------------------------------------------- as a destination

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        try:
            async with self._conn.transaction():
                yield
        except psycopg.Error as e:
            raise StoreError(f"database error in {self.location}: {e}") from e

    async def clear(self, tables: Sequence[str]) -> None:
        for table in (*tables, "entries_search", "search_pending"):
            await self._run(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        try:
            async with self._conn.cursor() as cur, cur.copy(statement) as copy:
                for row in rows:
                    await copy.write_row(row)
        except psycopg.Error as e:
            raise StoreError(f"cannot copy into {table} of {self.location}: {e}") from e

    async def finish(self, counters: Mapping[str, int]) -> None:
        for table in (await self.tables()).values():
            if table.counter is None:
                continue
            top = await self._run(
                sql.SQL("SELECT MAX({}) FROM {}").format(
                    sql.Identifier(table.counter), sql.Identifier(table.name)
                )
            )
            value = max(counters.get(table.name, 0), int(top[0][0] or 0))
            # setval(s, 1, false): the next value is 1, as in a fresh table.
            await self._run(
                "SELECT setval(%s, %s, %s)",
                (self._sequences[table.name], max(value, 1), value > 0),
            )
        try:
            await search.rebuild(self._conn, SEARCH_BATCH)
        except psycopg.Error as e:
            raise StoreError(f"cannot rebuild the search index of {self.location}: {e}") from e

    async def _run(self, query: Any, params: Sequence[Any] = ()) -> list[Row]:
        try:
            cur = await self._conn.execute(query, params)
            return await cur.fetchall() if cur.description else []
        except psycopg.Error as e:
            raise StoreError(f"database error in {self.location}: {e}") from e
