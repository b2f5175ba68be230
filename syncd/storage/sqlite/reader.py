"""The pull API's reads on SQLite. Every read opens its own read-only connection inside one read
transaction (WAL readers see a snapshot and never block the writer), so a worker thread may call
them while the store's owner writes. `events` is a cursor read: see syncd.storage.sqlite.events
for why `seq` order is commit order here. This module writes nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.errors import CursorGone, StoreError
from syncd.storage.rows import (
    ENTRY_FIELDS,
    ENTRY_ORDER,
    ENTRY_SORT,
    entries_after,
    entry_page,
    entry_row,
)
from syncd.storage.sqlite import events, search
from syncd.storage.sqlite.db import readonly_connection
from syncd.storage.sqlite.prune import pruned_through
from syncd.timestamps import to_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import EntryPage, EntryQuery, EventPage


class SqliteReads:
    """Each read runs in a worker thread on a read-only connection of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def events(
        self, after: int, limit: int, feed: str | None = None, type: str | None = None
    ) -> EventPage:
        return await asyncio.to_thread(self._events, after, limit, feed, type)

    async def feed_exists(self, name: str) -> bool:
        return await asyncio.to_thread(self._feed_exists, name)

    async def entries(self, query: EntryQuery) -> EntryPage:
        return await asyncio.to_thread(self._entries, query)

    async def entry(self, entry_id: str, feed: str | None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._entry, entry_id, feed)

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection inside one read transaction (one consistent snapshot)."""
        if not self.path.exists():
            raise StoreError(f"no database at {str(self.path)!r}")
        conn = readonly_connection(self.path)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("BEGIN")
            yield conn
        except sqlite3.Error as e:
            raise StoreError(f"database error: {e}") from None
        finally:
            conn.close()

    def _events(
        self, after: int, limit: int, feed: str | None = None, type: str | None = None
    ) -> EventPage:
        from syncd.storage.reports import EventPage

        with self._snapshot() as conn:
            floor = pruned_through(conn)
            if after < floor:
                raise CursorGone(floor)
            found, nxt = events.after(conn, after, limit, feed, type)
        return EventPage(found, nxt)

    def _feed_exists(self, name: str) -> bool:
        with self._snapshot() as conn:
            return (
                conn.execute("SELECT 1 FROM feeds WHERE name = ?", (name,)).fetchone() is not None
            )

    def _entries(self, query: EntryQuery) -> EntryPage:
        where = ["1"]
        params: dict[str, Any] = {"limit": query.limit + 1}
        if query.q is not None:
            search.check_query(query.q)
            where.append(
                "(e.feed_id, e.entry_id) IN (SELECT k.feed_id, k.entry_id FROM entries_search"
                " JOIN entries_search_keys k ON k.id = entries_search.rowid"
                " WHERE entries_search MATCH :q)"
            )
            params["q"] = query.q
        if query.feed is not None:
            where.append("f.name = :feed")
            params["feed"] = query.feed
        if query.since is not None:
            where.append("COALESCE(e.published, e.first_seen) >= :since")
            params["since"] = to_text(query.since)
        if not query.include_deleted:
            where.append("e.deleted_at IS NULL")
        if query.after is not None:
            where.append(entries_after(lambda name: f":{name}"))
            a = query.after
            params.update(at=a.sort_at, fid=a.feed_id, eid=a.entry_id)
        with self._snapshot() as conn:
            rows = conn.execute(
                f"SELECT {ENTRY_FIELDS}, {ENTRY_SORT} AS sort_at, e.feed_id"
                f" FROM entries e JOIN feeds f ON f.id = e.feed_id"
                f" WHERE {' AND '.join(where)} ORDER BY {ENTRY_ORDER}"
                " LIMIT :limit",
                params,
            ).fetchall()
        return entry_page([dict(r) for r in rows], query.limit)

    def _entry(self, entry_id: str, feed: str | None) -> list[dict[str, Any]]:
        """The entry in every feed that has it (or in `feed`), each with its versions, oldest
        first."""
        with self._snapshot() as conn:
            rows = conn.execute(
                f"SELECT e.feed_id, {ENTRY_FIELDS} FROM entries e JOIN feeds f"
                " ON f.id = e.feed_id WHERE e.entry_id = ? AND (? IS NULL OR f.name = ?)",
                (entry_id, feed, feed),
            ).fetchall()
            found = []
            for r in rows:
                entry = entry_row(dict(r))
                versions = conn.execute(
                    "SELECT id, event_id, recorded_at, title, link, published, updated, authors,"
                    " categories, summary, content, content_hash FROM entry_versions"
                    " WHERE feed_id = ? AND entry_id = ? ORDER BY id",
                    (entry.pop("feed_id"), entry_id),
                ).fetchall()
                entry["versions"] = [entry_row(dict(v)) for v in versions]
                found.append(entry)
        return found
