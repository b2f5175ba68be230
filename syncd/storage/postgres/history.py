"""A feed's mirrored history for `syncd export` on PostgreSQL: the feed's row and every entry in
its newest stored version, streamed through a server-side cursor in one transaction (one
snapshot; a feed of any size is never held in memory). Reads only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from syncd.errors import NoSuchFeed
from syncd.storage.postgres.db import Pg
from syncd.storage.rows import as_archived_entry
from syncd.timestamps import from_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import ArchivedEntry, FeedHead

FETCH_ROWS = 500  # rows the server-side cursor hands over at a time


async def head(pg: Pg, name: str) -> FeedHead:
    """The feed's row; NoSuchFeed, naming the feeds the store has, when there is none."""
    from syncd.storage.reports import FeedHead

    rows = await pg.rows(
        "SELECT f.name, f.url, f.title, (SELECT MAX(updated) FROM entries e"
        " WHERE e.feed_id = f.id AND e.deleted_at IS NULL) AS newest"
        " FROM feeds f WHERE f.name = %s",
        (name,),
    )
    if not rows:
        names = await pg.rows("SELECT name FROM feeds ORDER BY name")
        known = ", ".join(r["name"] for r in names)
        raise NoSuchFeed(f"no feed named {name!r} in the store (it has: {known or 'none'})")
    r = rows[0]
    return FeedHead(r["name"], r["url"], r["title"], from_text(r["newest"]))


async def entries(pg: Pg, name: str, *, include_deleted: bool) -> AsyncIterator[ArchivedEntry]:
    """Every entry of the feed, newest published first (entries without a date last)."""
    async with pg.write() as conn, conn.cursor(name="syncd_feed_history") as cur:
        cur.itersize = FETCH_ROWS
        await cur.execute(
            "SELECT e.entry_id, e.title, e.link, e.published, e.updated, e.authors, e.categories,"
            " e.summary, e.content, e.links, e.base_url, e.first_seen, e.last_seen, e.revision,"
            " e.deleted_at, e.deleted_reason"
            " FROM entries e JOIN feeds f ON f.id = e.feed_id"
            " WHERE f.name = %s AND (%s OR e.deleted_at IS NULL)"
            ' ORDER BY e.published IS NULL, e.published DESC, e.entry_id COLLATE "C"',
            (name, include_deleted),
        )
        async for row in cur:
            yield as_archived_entry(row)
