"""The event log on PostgreSQL (`events`): the only writer of it.

Cursor readers (`after = seq`) must never skip an event. With concurrent writers, a sequence
value taken by one transaction can become visible after a larger one taken by another, so a
reader could pass over it. Every transaction that inserts events therefore first takes one
transaction-level advisory lock (`EVENT_LOCK`) and holds it until it commits: event-inserting
transactions commit one at a time, in the order they took their seqs, so events become visible in
`seq` order, as on SQLite. The commit path inserts its events last, so the lock is held only for
those inserts and the commit itself. Under the lock it reserves its seqs in one statement
(`reserve`), so that each event is one INSERT carrying its envelope (which holds the seq).
Functions take the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.model import EventDraft
from syncd.storage.envelopes import ENVELOPE_COLUMNS, VERSION_JOIN, spliced, stored
from syncd.storage.postgres.db import Conn, Pg
from syncd.timestamps import to_text

EVENT_LOCK = 0x73796E65  # "syne": serialises the commits of event-inserting transactions


async def lock(conn: Conn) -> None:
    """Take the event lock for the rest of this transaction (call before the first insert)."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_LOCK,))


async def reserve(conn: Conn, n: int) -> list[int]:
    """`n` seqs for the events about to be inserted, in the order they are to be used. The
    caller holds the event lock, so no other transaction takes seqs meanwhile: these are the
    values the inserts' own `nextval` defaults would have taken one by one (an event id that
    exists already used one up then too)."""
    cur = await conn.execute(
        "SELECT nextval(pg_get_serial_sequence('events', 'seq')) AS seq"
        " FROM generate_series(1, %s)",
        (n,),
    )
    return sorted(int(r["seq"]) for r in await cur.fetchall())


async def insert(
    conn: Conn,
    feed_id: int,
    draft: EventDraft,
    now: str,
    version: tuple[int, Mapping[str, Any]] | None,
    seq: int,
) -> bool:
    """Insert the event at `seq` (from `reserve`) with its envelope, in one statement; False if
    its id existed (nothing written). `version` (id and row) is named instead of repeated when
    it reproduces the event's entry exactly (syncd.storage.envelopes). `now`: as stored text."""
    payload, named = stored(draft, seq, version[1] if version else None)
    cur = await conn.execute(
        "INSERT INTO events (seq, id, type, feed_id, entry_id, created_at, initial, payload,"
        " version_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (
            seq, draft.id, str(draft.type), feed_id, draft.entry_id, now, int(draft.initial),
            payload, version[0] if version and named else None,
        ),
    )  # fmt: skip
    return cur.rowcount == 1


async def latest(pg: Pg, feed: str | None, limit: int) -> list[dict[str, Any]]:
    rows = await pg.rows(
        """SELECT e.seq, e.id, e.type, f.name AS feed, e.entry_id, e.created_at,
                  CASE WHEN e.version_id IS NULL THEN e.payload END AS payload,
                  v.title, v.link
           FROM events e JOIN feeds f ON f.id = e.feed_id
           LEFT JOIN entry_versions v ON v.id = e.version_id
           WHERE %(feed)s::text IS NULL OR f.name = %(feed)s
           ORDER BY e.seq DESC LIMIT %(limit)s""",
        {"feed": feed, "limit": limit},
    )
    for r in rows:
        payload = r.pop("payload")
        if payload is not None:  # a whole envelope, stored before versions were named
            entry = json.loads(payload).get("data", {}).get("entry") or {}
            r["title"], r["link"] = entry.get("title"), entry.get("link")
    return rows


async def after(
    conn: Conn, after: int, limit: int, feed: str | None, type: str | None
) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` envelopes with seq > `after`, and the cursor to pass next; in one snapshot
    (REPEATABLE READ), so `next` never passes an event the rows did not show."""
    where = ["e.seq > %(after)s"]
    params: dict[str, Any] = {"after": after, "limit": limit, "feed": feed, "type": type}
    if feed is not None:
        where.append("e.feed_id = (SELECT id FROM feeds WHERE name = %(feed)s)")
    if type is not None:
        where.append("e.type = %(type)s")
    cur = await conn.execute(
        f"SELECT e.seq, {ENVELOPE_COLUMNS} FROM events e {VERSION_JOIN}"
        f" WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT %(limit)s",
        params,
    )
    rows = await cur.fetchall()
    if len(rows) == limit:
        nxt = int(rows[-1]["seq"])
    else:
        cur = await conn.execute("SELECT MAX(seq) AS newest FROM events")
        newest = await cur.fetchone()
        nxt = max(after, int(newest["newest"] or 0) if newest else 0)
    return [json.loads(spliced(r)) for r in rows], nxt


async def done_prefix(conn: Conn, cutoff: datetime) -> int:
    cur = await conn.execute(
        """SELECT COALESCE(MIN(seq) - 1, (SELECT MAX(seq) FROM events)) AS upto FROM events e
           WHERE e.created_at >= %(cutoff)s OR EXISTS (SELECT 1 FROM deliveries d
             WHERE d.event_seq = e.seq AND d.state IN ('pending', 'failed'))""",
        {"cutoff": to_text(cutoff)},
    )
    row = await cur.fetchone()
    return int(row["upto"] or 0) if row else 0


async def count_through(conn: Conn, upto: int) -> int:
    cur = await conn.execute("SELECT COUNT(*) AS n FROM events WHERE seq <= %s", (upto,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def prune_batch(conn: Conn, upto: int, limit: int) -> int:
    """As SQLite's: the oldest `limit` events up to `upto` no delivery references any more."""
    cur = await conn.execute(
        """DELETE FROM events WHERE seq IN (SELECT seq FROM events e WHERE seq <= %s
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)
           ORDER BY seq LIMIT %s)""",
        (upto, limit),
    )
    return cur.rowcount
