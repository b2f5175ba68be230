"""Who holds a PostgreSQL store: every `syncd run` on it holds a *shared* session advisory lock
keyed on the store (its schema), on a connection of its own, for as long as it runs; `syncd store
copy` takes the same lock *exclusively* on either end, so it refuses while a daemon runs there and
no daemon starts while it copies. Several daemons may share a store (the lock is shared); the
server drops a session's locks when its connection ends, even when the process was SIGKILLed,
so a crash leaves nothing to clean up. This module only locks.
"""

from __future__ import annotations

from typing import Any

import psycopg

from syncd.errors import StoreError
from syncd.redact import redacted_url

STORE_LOCK = 0x73796E64  # "synd"; the second key is the store's schema (hashtext)
CONNECT_TIMEOUT_S = 10
Conn = psycopg.AsyncConnection[tuple[Any, ...]]


async def try_lock(conn: psycopg.AsyncConnection[Any], *, shared: bool) -> bool:
    """Take the store's lock for this session, shared or exclusive, without waiting."""
    function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    cur = await conn.execute(
        f"SELECT {function}(%s, hashtext(current_schema())) AS held", (STORE_LOCK,)
    )
    row = await cur.fetchone()
    if not conn.autocommit:
        await conn.commit()  # a session lock outlives the transaction; the transaction need not
    return bool(row is not None and (row["held"] if isinstance(row, dict) else row[0]))


async def locked_connection(url: str, *, shared: bool, busy: str) -> Conn:
    """A connection of its own to the store at `url`, holding the store's lock (autocommit);
    a StoreError with `busy` (which may name `{where}`, the URL without its password) if it
    is held the other way."""
    where = redacted_url(url)
    try:
        conn: Conn = await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )
    except psycopg.Error as e:
        raise StoreError(f"cannot open database {where}: {e}") from e
    try:
        if not await try_lock(conn, shared=shared):
            raise StoreError(busy.format(where=where))
    except psycopg.Error as e:
        await conn.close()
        raise StoreError(f"database error in {where}: {e}") from e
    except StoreError:
        await conn.close()
        raise
    return conn


class DaemonPresence:
    """A running daemon's shared hold on its store, on a connection opened for it alone."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    @classmethod
    async def hold(cls, url: str) -> DaemonPresence:
        """The shared lock, held; a StoreError if a copy holds the store."""
        busy = "`syncd store copy` is copying {where}; start syncd when it is done"
        return cls(await locked_connection(url, shared=True, busy=busy))

    async def release(self) -> None:
        await self._conn.close()
