"""What the pull API reads: events after a cursor, entries, one entry with its versions.

Every read opens its own read-only connection (the daemon's writer connection is not shared,
and a read must never block a write: WAL readers see a snapshot), so the methods are blocking
and meant for a worker thread. The cursor guarantee rests on two facts of the store: an event's
`seq` is assigned inside its page's write transaction, and SQLite runs one write transaction at
a time, so events become visible in `seq` order; and `next` is computed in the same read
snapshot as the rows returned. A reader that always passes the `next` it was given therefore
never misses an event and never sees one twice. `Bell` is how a long-poll learns of commits.
This module writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd import search
from syncd.errors import StoreError, SyncdError
from syncd.prune import pruned_through
from syncd.store import BUSY_TIMEOUT_MS
from syncd.timestamps import to_text

EVENT_TYPES = ("entry.created", "entry.updated", "entry.deleted")


class CursorGone(SyncdError):
    """The cursor is behind events that were pruned: the reader must restart from a later one."""

    def __init__(self, restart_from: int) -> None:
        super().__init__(
            f"events up to seq {restart_from} were pruned: restart from {restart_from}"
        )
        self.restart_from = restart_from


class Bell:
    """Rung by the commit path when events were committed; long-polls wait on it. Take a
    `ticket()` *before* looking at the store, then wait on it: a ring in between is not lost."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        return self._event


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[dict[str, Any]]  # the envelopes, exactly as sinks receive them
    next: int  # pass as `after` to continue


@dataclass(frozen=True, slots=True)
class EntryQuery:
    feed: str | None = None
    q: str | None = None
    since: datetime | None = None
    include_deleted: bool = False
    limit: int = 50
    offset: int = 0


_ENTRY_FIELDS = (
    "f.name AS feed, e.entry_id, e.title, e.link, e.published, e.updated, e.authors,"
    " e.categories, e.summary, e.content, e.links, e.first_seen, e.last_seen, e.deleted_at,"
    " e.deleted_reason, e.revision"
)
_JSON_FIELDS = ("authors", "categories", "links")


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON_FIELDS:
        if key in row:
            row[key] = json.loads(row[key] or "[]")
    return row


class Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection inside one read transaction (one consistent snapshot)."""
        if not self.path.exists():
            raise StoreError(f"no database at {str(self.path)!r}")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("BEGIN")
            yield conn
        except sqlite3.Error as e:
            raise StoreError(f"database error: {e}") from None
        finally:
            conn.close()

    def events(
        self, after: int, limit: int, feed: str | None = None, type: str | None = None
    ) -> EventPage:
        where = ["ev.seq > :after"]
        params: dict[str, Any] = {"after": after, "limit": limit, "feed": feed, "type": type}
        if feed is not None:
            where.append("ev.feed_id = (SELECT id FROM feeds WHERE name = :feed)")
        if type is not None:
            where.append("ev.type = :type")
        with self._snapshot() as conn:
            floor = pruned_through(conn)
            if after < floor:
                raise CursorGone(floor)
            rows = conn.execute(
                f"SELECT ev.seq, ev.payload FROM events ev WHERE {' AND '.join(where)}"
                " ORDER BY ev.seq LIMIT :limit",
                params,
            ).fetchall()
            if len(rows) == limit:
                nxt = rows[-1]["seq"]
            else:
                # Every matching event up to the snapshot's newest was returned: the cursor may
                # skip the non-matching rest. Same snapshot, so nothing committed later is passed.
                newest = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
                nxt = max(after, newest or 0)
        return EventPage([json.loads(r["payload"]) for r in rows], nxt)

    def feed_exists(self, name: str) -> bool:
        with self._snapshot() as conn:
            return (
                conn.execute("SELECT 1 FROM feeds WHERE name = ?", (name,)).fetchone() is not None
            )

    def entries(self, query: EntryQuery) -> list[dict[str, Any]]:
        where = ["1"]
        params: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
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
        with self._snapshot() as conn:
            rows = conn.execute(
                f"SELECT {_ENTRY_FIELDS} FROM entries e JOIN feeds f ON f.id = e.feed_id"
                f" WHERE {' AND '.join(where)}"
                " ORDER BY COALESCE(e.published, e.first_seen) DESC, e.entry_id"
                " LIMIT :limit OFFSET :offset",
                params,
            ).fetchall()
        return [_entry(dict(r)) for r in rows]

    def entry(self, entry_id: str, feed: str | None) -> list[dict[str, Any]]:
        """The entry in every feed that has it (or in `feed`), each with its versions, oldest
        first."""
        with self._snapshot() as conn:
            rows = conn.execute(
                f"SELECT e.feed_id, {_ENTRY_FIELDS} FROM entries e JOIN feeds f"
                " ON f.id = e.feed_id WHERE e.entry_id = ? AND (? IS NULL OR f.name = ?)",
                (entry_id, feed, feed),
            ).fetchall()
            found = []
            for r in rows:
                entry = _entry(dict(r))
                versions = conn.execute(
                    "SELECT id, event_id, recorded_at, title, link, published, updated, authors,"
                    " categories, summary, content, content_hash FROM entry_versions"
                    " WHERE feed_id = ? AND entry_id = ? ORDER BY id",
                    (entry.pop("feed_id"), entry_id),
                ).fetchall()
                entry["versions"] = [_entry(dict(v)) for v in versions]
                found.append(entry)
        return found
