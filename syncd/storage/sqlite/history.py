"""A feed's mirrored history for `syncd export`: the feed's row and every entry in its newest
stored version (a row of `entries` *is* that), streamed from one statement so a feed of any size
is never held in memory. Reads only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from syncd.errors import NoSuchFeed, StoreError
from syncd.storage.rows import as_archived_entry
from syncd.storage.sqlite.db import Db
from syncd.timestamps import from_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import ArchivedEntry, FeedHead


def head(db: Db, name: str) -> FeedHead:
    """The feed's row; NoSuchFeed, naming the feeds the store has, when there is none."""
    from syncd.storage.reports import FeedHead

    rows = db.rows(
        "SELECT f.name, f.url, f.title, (SELECT MAX(updated) FROM entries e"
        " WHERE e.feed_id = f.id AND e.deleted_at IS NULL) AS newest"
        " FROM feeds f WHERE f.name = ?",
        (name,),
    )
    if not rows:
        known = ", ".join(r["name"] for r in db.rows("SELECT name FROM feeds ORDER BY name"))
        raise NoSuchFeed(f"no feed named {name!r} in the store (it has: {known or 'none'})")
    r = rows[0]
    return FeedHead(r["name"], r["url"], r["title"], from_text(r["newest"]))


def entries(db: Db, name: str, *, include_deleted: bool) -> Iterator[ArchivedEntry]:
    """Every entry of the feed, newest published first (entries without a date last), read
    through one statement: one consistent snapshot, fetched a row at a time."""
    try:
        cursor = db.conn.cursor()
        cursor.row_factory = sqlite3.Row
        cursor.execute(
            "SELECT e.entry_id, e.title, e.link, e.published, e.updated, e.authors, e.categories,"
            " e.summary, e.content, e.links, e.base_url, e.first_seen, e.last_seen, e.revision,"
            " e.deleted_at, e.deleted_reason"
            " FROM entries e JOIN feeds f ON f.id = e.feed_id"
            " WHERE f.name = ? AND (? OR e.deleted_at IS NULL)"
            " ORDER BY e.published IS NULL, e.published DESC, e.entry_id",
            (name, include_deleted),
        )
        for row in cursor:
            yield as_archived_entry(row)
    except sqlite3.Error as e:
        raise StoreError(f"database error in {str(db.path)!r}: {e}") from e
