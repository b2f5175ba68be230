"""The pull API's reads on PostgreSQL: each in one REPEATABLE READ, read-only transaction (one
snapshot) on a pooled connection. `events` is a cursor read: see syncd.storage.postgres.events for
why `seq` order is commit order here too. This module writes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from syncd.errors import CursorGone
from syncd.storage.postgres import events
from syncd.storage.postgres.db import Conn, Pg
from syncd.storage.postgres.prune import pruned_through
from syncd.storage.postgres.search import CONFIG
from syncd.storage.rows import (
    ENTRY_FIELDS,
    ENTRY_ORDER,
    ENTRY_SORT,
    entries_after,
    entry_page,
    entry_row,
)
from syncd.timestamps import to_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import EntryPage, EntryQuery, EventPage


class PostgresReads:
    def __init__(self, pg: Pg) -> None:
        self.pg = pg

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Conn]:
        async with self.pg.write() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    async def events(
        self, after: int, limit: int, feed: str | None = None, type: str | None = None
    ) -> EventPage:
        from syncd.storage.reports import EventPage

        async with self._snapshot() as conn:
            floor = await pruned_through(conn)
            if after < floor:
                raise CursorGone(floor)
            found, nxt = await events.after(conn, after, limit, feed, type)
        return EventPage(found, nxt)

    async def feed_exists(self, name: str) -> bool:
        return bool(await self.pg.rows("SELECT 1 FROM feeds WHERE name = %s", (name,)))

    async def entries(self, query: EntryQuery) -> EntryPage:
        where = ["TRUE"]
        params: dict[str, Any] = {"limit": query.limit + 1}
        if query.q is not None:
            where.append(
                "(e.feed_id, e.entry_id) IN (SELECT s.feed_id, s.entry_id FROM entries_search s"
                f" WHERE s.document @@ websearch_to_tsquery('{CONFIG}', %(q)s))"
            )
            params["q"] = query.q
        if query.feed is not None:
            where.append("f.name = %(feed)s")
            params["feed"] = query.feed
        if query.since is not None:
            where.append("COALESCE(e.published, e.first_seen) >= %(since)s")
            params["since"] = to_text(query.since)
        if not query.include_deleted:
            where.append("e.deleted_at IS NULL")
        if query.after is not None:
            where.append(entries_after(lambda name: f"%({name})s"))
            a = query.after
            params.update(at=a.sort_at, fid=a.feed_id, eid=a.entry_id)
        rows = await self.pg.rows(
            f"SELECT {ENTRY_FIELDS}, {ENTRY_SORT} AS sort_at, e.feed_id"
            f" FROM entries e JOIN feeds f ON f.id = e.feed_id"
            f" WHERE {' AND '.join(where)} ORDER BY {ENTRY_ORDER}"
            " LIMIT %(limit)s",
            params,
        )
        return entry_page(rows, query.limit)

    async def entry(self, entry_id: str, feed: str | None) -> list[dict[str, Any]]:
        async with self._snapshot() as conn:
            cur = await conn.execute(
                f"SELECT e.feed_id, {ENTRY_FIELDS} FROM entries e JOIN feeds f"
                " ON f.id = e.feed_id WHERE e.entry_id = %(id)s"
                " AND (%(feed)s::text IS NULL OR f.name = %(feed)s)",
                {"id": entry_id, "feed": feed},
            )
            found = []
            for r in await cur.fetchall():
                entry = entry_row(dict(r))
                versions = await conn.execute(
                    "SELECT id, event_id, recorded_at, title, link, published, updated, authors,"
                    " categories, summary, content, content_hash FROM entry_versions"
                    " WHERE feed_id = %s AND entry_id = %s ORDER BY id",
                    (entry.pop("feed_id"), entry_id),
                )
                entry["versions"] = [entry_row(dict(v)) for v in await versions.fetchall()]
                found.append(entry)
        return found
