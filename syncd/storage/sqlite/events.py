"""The event log (`events`): the only writer of it. An event's `seq` is its rowid, assigned inside
the page's write transaction (`EventLog`); SQLite runs one write transaction at a time, so events
become visible in `seq` order and a cursor reader (`after = seq`) never skips one. Functions take
the caller's transaction or connection; they decide nothing about which events to raise. An event
whose entry is a stored version's names it instead of repeating it (syncd.storage.envelopes).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.model import EventDraft
from syncd.storage.envelopes import ENVELOPE_COLUMNS, VERSION_JOIN, spliced, stored
from syncd.storage.sqlite.db import Db, fetch
from syncd.timestamps import format_timestamp, to_text


class EventLog:
    """The events one write transaction inserts, one statement each.

    An event's seq is the one AUTOINCREMENT would give it: one above both the largest seq ever
    handed out (`sqlite_sequence`, so a pruned top is never reused) and the largest present.
    The transaction holds SQLite's write lock, so that is read once, at its first event, and
    counted on; the envelope, which carries the seq, is then built before the insert instead of
    patched in by an UPDATE of the row just inserted. An insert that meets an existing event id
    writes no event but uses its seq up, as `INSERT OR IGNORE` under AUTOINCREMENT did."""

    def __init__(self, conn: sqlite3.Connection, feed_id: int, now: datetime) -> None:
        self._conn = conn
        self._feed_id = feed_id
        self._now = format_timestamp(now)
        self._next: int | None = None

    def insert(
        self, draft: EventDraft, version: tuple[int, Mapping[str, Any]] | None = None
    ) -> int | None:
        """Insert the event (idempotent on its id) with its envelope; its seq, None if it
        existed. `version` (its id and row) is the stored version the event's entry should be:
        named instead of repeated when it reproduces the entry exactly."""
        seq = self._next if self._next is not None else next_seq(self._conn)
        payload, named = stored(draft, seq, version[1] if version else None)
        # ON CONFLICT names `id` alone: a clash on seq would be a miscount, and must fail.
        cur = self._conn.execute(
            "INSERT INTO events (seq, id, type, feed_id, entry_id, created_at, initial, payload,"
            " version_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                seq, draft.id, str(draft.type), self._feed_id, draft.entry_id, self._now,
                int(draft.initial), payload, version[0] if version and named else None,
            ),
        )  # fmt: skip
        self._next = seq + 1
        if cur.rowcount == 0:
            # AUTOINCREMENT used the seq up even so (`INSERT OR IGNORE` moved sqlite_sequence
            # on): so does the log, and so the next event's seq is the one it always was.
            moved = self._conn.execute(
                "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'events'", (seq,)
            )
            if moved.rowcount == 0:  # its row deleted by hand: AUTOINCREMENT writes it anew
                self._conn.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (seq,)
                )
            return None
        return seq


def next_seq(conn: sqlite3.Connection) -> int:
    """The seq AUTOINCREMENT would give the next event."""
    row = conn.execute(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
        " COALESCE((SELECT MAX(seq) FROM events), 0))"
    ).fetchone()
    return int(row[0]) + 1


def insert(
    conn: sqlite3.Connection,
    feed_id: int,
    draft: EventDraft,
    now: datetime,
    version: tuple[int, Mapping[str, Any]] | None = None,
) -> int | None:
    """One event on its own (`EventLog.insert`): its seq, None if its id existed."""
    return EventLog(conn, feed_id, now).insert(draft, version)


def latest(db: Db, feed: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest events, of one feed or all: seq, id, type, feed, entry id, title, link."""
    return db.rows(
        """SELECT e.seq, e.id, e.type, f.name AS feed, e.entry_id, e.created_at,
                  CASE WHEN e.version_id IS NULL THEN json_extract(e.payload,
                    '$.data.entry.title') ELSE v.title END AS title,
                  CASE WHEN e.version_id IS NULL THEN json_extract(e.payload,
                    '$.data.entry.link') ELSE v.link END AS link
           FROM events e JOIN feeds f ON f.id = e.feed_id
           LEFT JOIN entry_versions v ON v.id = e.version_id
           WHERE :feed IS NULL OR f.name = :feed
           ORDER BY e.seq DESC LIMIT :limit""",
        {"feed": feed, "limit": limit},
    )


def after(
    conn: sqlite3.Connection, after: int, limit: int, feed: str | None, type: str | None
) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` envelopes with seq > `after` (of `feed`, of `type`), and the cursor to pass
    next. Run it in one read transaction: `next` is computed in the same snapshot as the rows."""
    where = ["e.seq > :after"]
    params: dict[str, Any] = {"after": after, "limit": limit, "feed": feed, "type": type}
    if feed is not None:
        where.append("e.feed_id = (SELECT id FROM feeds WHERE name = :feed)")
    if type is not None:
        where.append("e.type = :type")
    rows = fetch(
        conn,
        f"SELECT e.seq, {ENVELOPE_COLUMNS} FROM events e {VERSION_JOIN}"
        f" WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT :limit",
        params,
    )
    if len(rows) == limit:
        nxt = rows[-1]["seq"]
    else:
        # Every matching event up to the snapshot's newest was returned: the cursor may skip the
        # non-matching rest. Same snapshot, so nothing committed later is passed over.
        newest = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        nxt = max(after, newest or 0)
    return [json.loads(spliced(r)) for r in rows], nxt


# The longest prefix of events that are old enough and that no sink still waits for.
_PREFIX = """SELECT COALESCE(MIN(seq) - 1, (SELECT MAX(seq) FROM events)) FROM events e
    WHERE e.created_at >= :cutoff OR EXISTS (SELECT 1 FROM deliveries d
      WHERE d.event_seq = e.seq AND d.state IN ('pending', 'failed'))"""


def done_prefix(conn: sqlite3.Connection, cutoff: datetime) -> int:
    """The newest seq such that it and every event before it were created before `cutoff` and
    no sink waits for them (0: none)."""
    return int(conn.execute(_PREFIX, {"cutoff": to_text(cutoff)}).fetchone()[0] or 0)


def count_through(conn: sqlite3.Connection, upto: int) -> int:
    """Events with seq <= `upto` (what a prune through `upto` deletes)."""
    return int(conn.execute("SELECT COUNT(*) FROM events WHERE seq <= ?", (upto,)).fetchone()[0])


def prune_batch(conn: sqlite3.Connection, upto: int, limit: int) -> int:
    """Delete the oldest `limit` events with seq <= `upto` that no delivery references any more
    (their deliveries go first); how many."""
    return conn.execute(
        """DELETE FROM events WHERE seq IN (SELECT seq FROM events e WHERE seq <= ?
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)
           ORDER BY seq LIMIT ?)""",
        (upto, limit),
    ).rowcount
