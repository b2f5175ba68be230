"""The full-text index of live entries: keeping it in step, and searching it.

`entries_search` is an FTS5 table holding the *text* of each live entry (title, summary,
content; markup stripped by `syncd.plaintext`), its rowid taken from `entries_search_keys`, which
gives every (feed_id, entry_id) a stable integer (entries' own rowid may change on VACUUM).

A page's write transaction only queues the entries whose text changed or that were deleted
(`mark_stale`: one `search_pending` row each); the store's `index_pending` brings the index up
to date later, a batch per transaction (`read_pending`, then `apply_pending`; syncd.indexer
decides when). `search` runs on any connection,
read-only ones included. The only writer of these three tables; decides nothing about feeds or
events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from syncd.errors import SearchQueryError, StoreError
from syncd.plaintext import html_to_text
from syncd.storage.rows import MARK
from syncd.timestamps import to_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import Hit, SearchQuery

# Chosen on the 515-post backfill (docs/design.md, "Search"): porter stems English words
# ("deploying" finds "deployed") at the same index size; unicode61 underneath folds case and
# diacritics for every script.
TOKENIZER = "porter unicode61 remove_diacritics 2"
# bm25 column weights (title, summary, content): a word in the title says more about what a post
# is about than the same word somewhere in its body.
WEIGHTS = (10.0, 2.0, 1.0)

# The index's tables (FTS5 adds shadow tables named after the first) and its queue: derived
# from `entries`, so a copy of the store rebuilds them instead of copying them.
TABLES = ("entries_search", "entries_search_keys", "search_pending")
CREATE_SQL = (
    "CREATE TABLE entries_search_keys (id INTEGER PRIMARY KEY, feed_id INTEGER NOT NULL,"
    " entry_id TEXT NOT NULL, UNIQUE (feed_id, entry_id))",
    f"CREATE VIRTUAL TABLE entries_search USING fts5(title, summary, content,"
    f" tokenize = '{TOKENIZER}')",
)
# The entries whose index row is stale. AUTOINCREMENT: a re-queued entry (REPLACE) gets an id
# never used before, so an indexer that read the entry under an older id knows its text is
# out of date (see `apply_pending`).
PENDING_SQL = (
    "CREATE TABLE search_pending (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " feed_id INTEGER NOT NULL, entry_id TEXT NOT NULL, UNIQUE (feed_id, entry_id))"
)


def mark_stale(conn: sqlite3.Connection, feed_id: int, entry_ids: Sequence[str]) -> None:
    """In the caller's (page) transaction: these entries' index rows are to be redone (text
    changed, or deleted). One statement; the text is read and tokenised later."""
    if entry_ids:
        conn.executemany(
            "INSERT OR REPLACE INTO search_pending (feed_id, entry_id) VALUES (?, ?)",
            [(feed_id, i) for i in entry_ids],
        )


def pending(conn: sqlite3.Connection) -> int:
    """How many entries wait for the index (0: it is up to date)."""
    return int(conn.execute("SELECT COUNT(*) FROM search_pending").fetchone()[0])


# A queued entry as read for indexing: its queue id, key, and text (None: not live, unindex).
Stale = tuple[int, int, str, tuple[str, str, str] | None]


def read_pending(conn: sqlite3.Connection, limit: int) -> list[Stale]:
    """Up to `limit` queued entries, oldest first, with their text as it is now, markup
    stripped. Outside any write transaction: the store's writer does not wait for the HTML
    parsing, only for `apply_pending`'s tokenising."""
    rows = conn.execute(
        "SELECT p.id, p.feed_id, p.entry_id, e.title, e.summary, e.content,"
        " e.feed_id IS NOT NULL AND e.deleted_at IS NULL FROM search_pending p"
        " LEFT JOIN entries e ON e.feed_id = p.feed_id AND e.entry_id = p.entry_id"
        " ORDER BY p.id LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        (qid, feed_id, entry_id, _texts(title, summary, content) if live else None)
        for qid, feed_id, entry_id, title, summary, content, live in rows
    ]


def apply_pending(conn: sqlite3.Connection, batch: Sequence[Stale]) -> int:
    """In the caller's write transaction: index what `read_pending` read and dequeue it; how
    many were applied. A row is applied only if it is still queued under the id read: an entry
    changed since was re-queued under a new id (or another indexer took it), and this batch's
    older text must not overwrite it. So a crash anywhere leaves rows queued, and two indexers
    at once never leave an older text behind."""
    done = 0
    for qid, feed_id, entry_id, text in batch:
        if not conn.execute("DELETE FROM search_pending WHERE id = ?", (qid,)).rowcount:
            continue
        if text is None:
            unindex_entry(conn, feed_id, entry_id)
        else:
            _write(conn, feed_id, entry_id, text)
        done += 1
    return done


def _texts(title: str | None, summary: str | None, content: str | None) -> tuple[str, str, str]:
    return html_to_text(title), html_to_text(summary), html_to_text(content)


def _key(conn: sqlite3.Connection, feed_id: int, entry_id: str) -> int:
    cur = conn.execute(
        "INSERT OR IGNORE INTO entries_search_keys (feed_id, entry_id) VALUES (?, ?)",
        (feed_id, entry_id),
    )
    if cur.rowcount == 1 and cur.lastrowid is not None:
        return cur.lastrowid  # a new entry: no need to read back the key just made
    row = conn.execute(
        "SELECT id FROM entries_search_keys WHERE feed_id = ? AND entry_id = ?",
        (feed_id, entry_id),
    ).fetchone()
    return int(row[0])


def index_entry(
    conn: sqlite3.Connection,
    feed_id: int,
    entry_id: str,
    title: str | None,
    summary: str | None,
    content: str | None,
) -> None:
    """(Re)index a live entry's text now, replacing what the index held for it."""
    _write(conn, feed_id, entry_id, _texts(title, summary, content))


def _write(
    conn: sqlite3.Connection, feed_id: int, entry_id: str, text: tuple[str, str, str]
) -> None:
    # FTS5 takes OR REPLACE as "first delete the row of this rowid, if any": one statement
    # where a DELETE and an INSERT were, and its shadow tables end byte for byte the same.
    conn.execute(
        "INSERT OR REPLACE INTO entries_search (rowid, title, summary, content)"
        " VALUES (?, ?, ?, ?)",
        (_key(conn, feed_id, entry_id), *text),
    )


def unindex_entry(conn: sqlite3.Connection, feed_id: int, entry_id: str) -> None:
    """A deleted entry leaves the index (its key stays, for when it comes back)."""
    conn.execute(
        "DELETE FROM entries_search WHERE rowid = (SELECT id FROM entries_search_keys"
        " WHERE feed_id = ? AND entry_id = ?)",
        (feed_id, entry_id),
    )


def rebuild(conn: sqlite3.Connection) -> int:
    """Index every live entry afresh; how many. Runs inside the caller's transaction; reads the
    entries one at a time (a large store's text never sits in memory at once). A store copy
    empties `search_pending` first (m008 runs this before the queue exists)."""
    conn.execute("DELETE FROM entries_search")
    rows = conn.execute(
        "SELECT feed_id, entry_id, title, summary, content FROM entries WHERE deleted_at IS NULL"
    )
    n = 0
    for feed_id, entry_id, title, summary, content in rows:
        index_entry(conn, feed_id, entry_id, title, summary, content)
        n += 1
    return n


def search(conn: sqlite3.Connection, query: SearchQuery) -> list[Hit]:
    """Live entries matching the FTS5 `query`, best first (bm25, title weighted over body).
    `since` keeps entries published (or, lacking a date, first seen) at or after it."""
    from syncd.storage.reports import Hit

    where = ["entries_search MATCH :q", "e.deleted_at IS NULL"]
    params: dict[str, Any] = {"q": query.q, "limit": query.limit, "n": query.snippet_tokens}
    if query.feed is not None:
        where.append("f.name = :feed")
        params["feed"] = query.feed
    if query.since is not None:
        where.append("COALESCE(e.published, e.first_seen) >= :since")
        params["since"] = to_text(query.since)
    weights = ", ".join(str(w) for w in WEIGHTS)
    sql = f"""
        SELECT f.name, e.entry_id, e.title, e.link, e.published, e.updated,
               snippet(entries_search, -1, :open, :close, '…', :n) AS snippet,
               bm25(entries_search, {weights}) AS rank
        FROM entries_search
        JOIN entries_search_keys k ON k.id = entries_search.rowid
        JOIN entries e ON e.feed_id = k.feed_id AND e.entry_id = k.entry_id
        JOIN feeds f ON f.id = e.feed_id
        WHERE {" AND ".join(where)}
        ORDER BY rank, e.published DESC
        LIMIT :limit"""
    params["open"], params["close"] = MARK
    check_query(query.q)
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.Error as e:
        raise StoreError(f"database error: {e}") from None
    return [Hit(*row) for row in rows]


def check_query(query: str) -> None:
    """SearchQueryError if `query` is not valid FTS5 syntax for the index's columns: tried on
    an empty in-memory table of the same shape, so no store error passes for a syntax error."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute(CREATE_SQL[1].replace("entries_search", "probe"))
        probe.execute("SELECT rowid FROM probe WHERE probe MATCH ?", (query,)).fetchall()
    except sqlite3.OperationalError as e:
        raise SearchQueryError(f"bad search query {query!r}: {e}") from None
    finally:
        probe.close()
