"""The event log (`events`): the only writer of it. An event's `seq` is its rowid, assigned inside
the page's write transaction; SQLite runs one write transaction at a time, so events become
visible in `seq` order and a cursor reader (`after = seq`) never skips one. Functions take the
caller's transaction or connection; they decide nothing about which events to raise.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from syncd.model import EventDraft
from syncd.storage.rows import envelope
from syncd.storage.sqlite.db import Db
from syncd.timestamps import to_text


def insert(conn: sqlite3.Connection, feed_id: int, draft: EventDraft, now: datetime) -> int | None:
    """Insert the event (idempotent on its id) with its envelope; its seq, None if it existed."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO events (id, type, feed_id, entry_id, created_at, initial,"
        " payload) VALUES (?, ?, ?, ?, ?, ?, '')",
        (draft.id, str(draft.type), feed_id, draft.entry_id, to_text(now), int(draft.initial)),
    )
    if cur.rowcount == 0:
        return None
    seq = cur.lastrowid
    assert seq is not None
    conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (envelope(draft, seq), seq))
    return seq


def latest(db: Db, feed: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest events, of one feed or all: seq, id, type, feed, entry id, title, link."""
    return db.rows(
        """SELECT e.seq, e.id, e.type, f.name AS feed, e.entry_id, e.created_at,
                  json_extract(e.payload, '$.data.entry.title') AS title,
                  json_extract(e.payload, '$.data.entry.link') AS link
           FROM events e JOIN feeds f ON f.id = e.feed_id
           WHERE :feed IS NULL OR f.name = :feed
           ORDER BY e.seq DESC LIMIT :limit""",
        {"feed": feed, "limit": limit},
    )


def after(
    conn: sqlite3.Connection, after: int, limit: int, feed: str | None, type: str | None
) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` envelopes with seq > `after` (of `feed`, of `type`), and the cursor to pass
    next. Run it in one read transaction: `next` is computed in the same snapshot as the rows."""
    where = ["ev.seq > :after"]
    params: dict[str, Any] = {"after": after, "limit": limit, "feed": feed, "type": type}
    if feed is not None:
        where.append("ev.feed_id = (SELECT id FROM feeds WHERE name = :feed)")
    if type is not None:
        where.append("ev.type = :type")
    rows = conn.execute(
        f"SELECT ev.seq, ev.payload FROM events ev WHERE {' AND '.join(where)}"
        " ORDER BY ev.seq LIMIT :limit",
        params,
    ).fetchall()
    if len(rows) == limit:
        nxt = rows[-1][0]
    else:
        # Every matching event up to the snapshot's newest was returned: the cursor may skip the
        # non-matching rest. Same snapshot, so nothing committed later is passed over.
        newest = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        nxt = max(after, newest or 0)
    return [json.loads(r[1]) for r in rows], nxt


# The longest prefix of events that are old enough and that no sink still waits for.
_PREFIX = """SELECT COALESCE(MIN(seq) - 1, (SELECT MAX(seq) FROM events)) FROM events e
    WHERE e.created_at >= :cutoff OR EXISTS (SELECT 1 FROM deliveries d
      WHERE d.event_seq = e.seq AND d.state IN ('pending', 'failed'))"""


def done_prefix(conn: sqlite3.Connection, cutoff: datetime) -> int:
    """The newest seq such that it and every event before it were created before `cutoff` and
    no sink waits for them (0: none)."""
    return int(conn.execute(_PREFIX, {"cutoff": to_text(cutoff)}).fetchone()[0] or 0)


def prune_through(conn: sqlite3.Connection, upto: int, *, dry_run: bool) -> int:
    """Events with seq <= `upto`: counted, and deleted unless `dry_run` (their deliveries must
    be gone first)."""
    count = int(conn.execute("SELECT COUNT(*) FROM events WHERE seq <= ?", (upto,)).fetchone()[0])
    if not dry_run:
        conn.execute("DELETE FROM events WHERE seq <= ?", (upto,))
    return count
