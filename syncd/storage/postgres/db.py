"""The PostgreSQL connection pool: opening (migrated as needed), one transaction per write, reads
as dicts. Every psycopg error leaves this package as a StoreError naming the database (never its
password). Decides nothing about feeds or sinks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.errors import StoreError
from syncd.redact import redacted_url
from syncd.storage.postgres.migrations import apply_migrations, pending_migrations

Conn = psycopg.AsyncConnection[dict[str, Any]]
Params = Sequence[Any] | Mapping[str, Any]
POOL_MAX = 8  # the daemon's syncer, dispatcher and web reads; no more than it can use at once
CONNECT_TIMEOUT_S = 10.0


class Pg:
    """A pool of connections to one database. Safe to share between tasks of one event loop."""

    def __init__(self, pool: AsyncConnectionPool[Conn], url: str) -> None:
        self.pool = pool
        self.url = url  # for opening another pool on the same database (tests, tools)
        self.location = redacted_url(url)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Pg:
        """The database at `url`, migrated as needed (`migrate=False`: refused if it is not
        migrated yet). Every failure is a StoreError naming the database."""
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False},
            timeout=CONNECT_TIMEOUT_S,
        )
        pg = cls(pool, url)
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
            async with pool.connection() as conn:
                if migrate:
                    await apply_migrations(conn)
                elif missing := await pending_migrations(conn):
                    raise StoreError(
                        f"database {pg.location} predates this syncd ({len(missing)} migrations"
                        " pending); `syncd sync` or `syncd run` upgrades it"
                    )
        except (psycopg.Error, TimeoutError) as e:
            await pool.close()
            raise StoreError(f"cannot open database {pg.location}: {e}") from e
        except StoreError:
            await pool.close()
            raise
        return pg

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as e:
            raise StoreError(f"database error in {self.location}: {e}") from e

    async def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        async with self.write() as conn:
            return await fetch(conn, sql, params)


async def fetch(conn: Conn, sql: str, params: Params = ()) -> list[dict[str, Any]]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall() if cur.description else []
