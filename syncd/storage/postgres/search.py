"""The full-text index of live entries on PostgreSQL (`entries_search`) and its queue
(`search_pending`): the only writer of both, and the search over the index. A page's write
transaction only queues the entries whose index row is stale (`mark_stale`); `index_pending`
catches up later, a batch per transaction (syncd.indexer decides when).

Each live entry has one row: its text (markup stripped by `syncd.plaintext`) and a `tsvector`
weighted title A, summary B, content C, ranked with `ts_rank` so that a title match outranks
body repetitions, as FTS5's bm25 weights do on SQLite. The query is `websearch_to_tsquery`
syntax (words, "a phrase", a OR b, -word), which never fails on user input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from syncd.plaintext import html_to_text
from syncd.storage.postgres.db import Conn
from syncd.storage.rows import MARK
from syncd.timestamps import to_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import Hit, SearchQuery

CONFIG = "english"  # stems English words ("deploying" finds "deployed"), as porter on SQLite
# ts_rank weights for {D, C, B, A}: content, summary, title (the same ratios as bm25's 1, 2, 10).
WEIGHTS = "{0.0, 0.1, 0.2, 1.0}"

_DOCUMENT = f"""setweight(to_tsvector('{CONFIG}', coalesce(%(title)s, '')), 'A')
    || setweight(to_tsvector('{CONFIG}', coalesce(%(summary)s, '')), 'B')
    || setweight(to_tsvector('{CONFIG}', coalesce(%(content)s, '')), 'C')"""


_INDEX = f"""INSERT INTO entries_search (feed_id, entry_id, title, summary, content, document)
    VALUES (%(feed_id)s, %(entry_id)s, %(title)s, %(summary)s, %(content)s, {_DOCUMENT})
    ON CONFLICT (feed_id, entry_id) DO UPDATE SET title = excluded.title,
    summary = excluded.summary, content = excluded.content, document = excluded.document"""


def _text_of(
    feed_id: int, entry_id: str, title: str | None, summary: str | None, content: str | None
) -> dict[str, Any]:
    return {
        "feed_id": feed_id,
        "entry_id": entry_id,
        "title": html_to_text(title),
        "summary": html_to_text(summary),
        "content": html_to_text(content),
    }


async def mark_stale(conn: Conn, feed_id: int, entry_ids: Sequence[str]) -> None:
    """In the caller's (page) transaction: these entries' index rows are to be redone (text
    changed, or deleted). One statement. DO UPDATE, not DO NOTHING: it locks a row already
    queued until this transaction commits, so an indexer (SKIP LOCKED) cannot take it and read
    the entry's text before this transaction's change is visible."""
    if entry_ids:
        await conn.execute(
            "INSERT INTO search_pending (feed_id, entry_id)"
            " SELECT %s, unnest(%s::text[]) ON CONFLICT (feed_id, entry_id)"
            " DO UPDATE SET entry_id = excluded.entry_id",
            (feed_id, list(dict.fromkeys(entry_ids))),
        )


async def pending(conn: Conn) -> int:
    """How many entries wait for the index (0: it is up to date)."""
    cur = await conn.execute("SELECT COUNT(*) AS n FROM search_pending")
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def index_pending(conn: Conn, limit: int) -> int:
    """In the caller's transaction: take up to `limit` queued entries, oldest first, that no
    other indexer holds (SKIP LOCKED: many workers drain at once, each row once), and make
    their index rows match the entries as they are now; how many were taken (0: none was
    free). A crash or an error before the commit leaves them queued; redoing one is harmless.
    A page that changes a taken entry meanwhile waits on its queue row and re-queues it."""
    cur = await conn.execute(
        """DELETE FROM search_pending WHERE id IN (SELECT id FROM search_pending ORDER BY id
           LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING feed_id, entry_id""",
        (limit,),
    )
    taken = [(r["feed_id"], r["entry_id"]) for r in await cur.fetchall()]
    if not taken:
        return 0
    cur = await conn.execute(
        """SELECT e.feed_id, e.entry_id, e.title, e.summary, e.content FROM entries e
           JOIN unnest(%s::bigint[], %s::text[]) AS t(feed_id, entry_id)
           ON e.feed_id = t.feed_id AND e.entry_id = t.entry_id WHERE e.deleted_at IS NULL""",
        ([f for f, _ in taken], [e for _, e in taken]),
    )
    live = await cur.fetchall()
    # Markup is stripped in a thread: a batch's HTML parsing does not hold up the event loop.
    texts = await asyncio.to_thread(lambda: [_text_of(*_values(r)) for r in live])
    gone = set(taken) - {(t["feed_id"], t["entry_id"]) for t in texts}
    async with conn.cursor() as c:
        if texts:
            await c.executemany(_INDEX, texts)
        if gone:
            await c.execute(
                """DELETE FROM entries_search s USING unnest(%s::bigint[], %s::text[])
                   AS t(feed_id, entry_id) WHERE s.feed_id = t.feed_id
                   AND s.entry_id = t.entry_id""",
                ([f for f, _ in gone], [e for _, e in gone]),
            )
    return len(taken)


async def index_entry(
    conn: Conn,
    feed_id: int,
    entry_id: str,
    title: str | None,
    summary: str | None,
    content: str | None,
) -> None:
    """(Re)index a live entry's text, replacing what the index held for it."""
    await conn.execute(_INDEX, _text_of(feed_id, entry_id, title, summary, content))


async def rebuild(conn: psycopg.AsyncConnection[Any], batch: int) -> int:
    """Index every live entry afresh, `batch` entries in memory at a time; how many. Runs
    inside the caller's transaction (a store copy's, which empties `search_pending`)."""
    await conn.execute("DELETE FROM entries_search")
    n = 0
    async with conn.cursor(name="syncd_search_rebuild") as entries:
        await entries.execute(
            "SELECT feed_id, entry_id, title, summary, content FROM entries"
            " WHERE deleted_at IS NULL ORDER BY feed_id, entry_id"
        )
        while rows := await entries.fetchmany(batch):
            async with conn.cursor() as cur:
                await cur.executemany(_INDEX, [_text_of(*_values(r)) for r in rows])
            n += len(rows)
    return n


def _values(row: Any) -> tuple[Any, ...]:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


async def unindex_entry(conn: Conn, feed_id: int, entry_id: str) -> None:
    await conn.execute(
        "DELETE FROM entries_search WHERE feed_id = %s AND entry_id = %s", (feed_id, entry_id)
    )


async def search(conn: Conn, query: SearchQuery) -> list[Hit]:
    """Live entries matching `query`, best first (title weighted over body)."""
    from syncd.storage.reports import Hit

    where = ["s.document @@ q.query", "e.deleted_at IS NULL"]
    params: dict[str, Any] = {"q": query.q, "limit": query.limit}
    if query.feed is not None:
        where.append("f.name = %(feed)s")
        params["feed"] = query.feed
    if query.since is not None:
        where.append("COALESCE(e.published, e.first_seen) >= %(since)s")
        params["since"] = to_text(query.since)
    words = max(query.snippet_tokens, 4)
    options = f"StartSel={MARK[0]}, StopSel={MARK[1]}, MaxWords={words}, MinWords={words // 2}"
    cur = await conn.execute(
        f"""SELECT f.name, e.entry_id, e.title, e.link, e.published, e.updated,
                   ts_headline('{CONFIG}', concat_ws(' ', s.title, s.summary, s.content),
                               q.query, '{options}') AS snippet,
                   -ts_rank('{WEIGHTS}', s.document, q.query) AS rank
            FROM entries_search s
            CROSS JOIN websearch_to_tsquery('{CONFIG}', %(q)s) AS q(query)
            JOIN entries e ON e.feed_id = s.feed_id AND e.entry_id = s.entry_id
            JOIN feeds f ON f.id = e.feed_id
            WHERE {" AND ".join(where)}
            ORDER BY rank, e.published DESC
            LIMIT %(limit)s""",
        params,
    )
    return [Hit(r["name"], *(r[k] for k in _HIT)) for r in await cur.fetchall()]


_HIT = ("entry_id", "title", "link", "published", "updated", "snippet", "rank")
