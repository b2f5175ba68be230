"""The full-text index of live entries on PostgreSQL (`entries_search`): the only writer of it,
called inside the entries' write transactions, and the search over it.

Each live entry has one row: its text (markup stripped by `syncd.plaintext`) and a `tsvector`
weighted title A, summary B, content C, ranked with `ts_rank` so that a title match outranks
body repetitions, as FTS5's bm25 weights do on SQLite. The query is `websearch_to_tsquery`
syntax (words, "a phrase", a OR b, -word), which never fails on user input.
"""

from __future__ import annotations

from typing import Any

import psycopg

from syncd.plaintext import html_to_text
from syncd.storage.postgres.db import Conn
from syncd.storage.rows import MARK
from syncd.storage.values import Hit, SearchQuery
from syncd.timestamps import to_text

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
    inside the caller's transaction (a store copy's)."""
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
