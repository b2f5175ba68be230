"""Entries and their versions (`entries`, `entry_versions`): the only writer of both. Functions
take the caller's transaction; they decide nothing about what changed (the diff did). The search
index is not theirs: the store queues the entries it must redo (syncd.storage.sqlite.search).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.model import Change, Deletion, ParsedEntry, StoredEntry
from syncd.storage.envelopes import VERSION_FIELDS
from syncd.storage.rows import (
    ENTRY_COLUMNS,
    HEAD_COLUMNS,
    KNOWN_COLUMNS,
    PARSED_COLUMNS,
    as_stored_entry,
    entry_upsert,
    entry_values,
    known_from_heads,
    ms,
    parsed_entries_by_key,
)
from syncd.storage.sqlite.db import Db, marks
from syncd.timestamps import from_text, to_text

# ---------------------------------------------------------------- reads


def known(
    db: Db,
    feed_id: int,
    entry_ids: Iterable[str],
    as_read: Mapping[str, ParsedEntry] | None = None,
) -> dict[str, StoredEntry]:
    """The feed's entries of `entry_ids`, with their parsed columns. Those whose key names an
    entry of `as_read` are built from it (rows.known_from_heads), the rest read in full."""
    if not as_read:
        rows = _where_in(db, KNOWN_COLUMNS, feed_id, "entry_id", entry_ids)
        return {r["entry_id"]: as_stored_entry(r) for r in rows}
    found, rest = known_from_heads(
        _where_in(db, HEAD_COLUMNS, feed_id, "entry_id", entry_ids), as_read
    )
    if rest:
        found.update(known(db, feed_id, rest))
    return found


def by_key(db: Db, feed_id: int, keys: Iterable[str]) -> dict[str, ParsedEntry]:
    """The feed's entries stored with one of `keys`, as they were parsed, by key."""
    rows = _where_in(db, PARSED_COLUMNS, feed_id, "parse_key", keys)
    return parsed_entries_by_key(rows)


def _where_in(
    db: Db, columns: str, feed_id: int, column: str, values: Iterable[str]
) -> list[dict[str, Any]]:
    """`columns` of the feed's entries whose `column` is one of `values`."""
    wanted = list(dict.fromkeys(values))
    found: list[dict[str, Any]] = []
    # Chunks stay under SQLite's host-parameter limit for any page size.
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        sql = f"SELECT {columns} FROM entries WHERE feed_id = ? AND {column} IN"
        found += db.rows(f"{sql} ({marks(chunk)})", [feed_id, *chunk])
    return found


def live(db: Db, feed_id: int, entry_ids: Iterable[str] | None = None) -> dict[str, StoredEntry]:
    """Every entry of the feed that is not deleted, or those of `entry_ids`."""
    if entry_ids is not None:
        rows = _where_in(db, ENTRY_COLUMNS, feed_id, "entry_id", entry_ids)
        return {r["entry_id"]: as_stored_entry(r) for r in rows if r["deleted_at"] is None}
    return {
        r["entry_id"]: as_stored_entry(r)
        for r in db.rows(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {_LIVE}", (feed_id,))
    }


def live_ids(db: Db, feed_id: int) -> list[str]:
    """The ids of the feed's entries that are not deleted, as `live` lists them."""
    rows = db.rows(f"SELECT entry_id FROM entries WHERE {_LIVE}", (feed_id,))
    return [r["entry_id"] for r in rows]


# The same condition for both, so that both list the entries in the same order.
_LIVE = "feed_id = ? AND deleted_at IS NULL"


def recent(db: Db, feed_id: int, since: datetime) -> int:
    """Live entries published since `since` (for `interval = "auto"`)."""
    rows = db.rows(
        "SELECT COUNT(*) AS n FROM entries WHERE feed_id = ? AND deleted_at IS NULL"
        " AND COALESCE(published, updated) >= ?",
        (feed_id, ms(since)),
    )
    return int(rows[0]["n"])


def newest_updated(db: Db, feed_id: int) -> datetime | None:
    """The newest `updated` of the feed's entries. Text order is instant order except within
    one second (fraction lengths differ), so the newest few are compared exactly."""
    rows = db.rows(
        "SELECT updated FROM entries WHERE feed_id = ? AND updated IS NOT NULL"
        " ORDER BY updated DESC LIMIT 16",
        (feed_id,),
    )
    stamps = [t for t in (from_text(r["updated"]) for r in rows) if t is not None]
    return max(stamps, default=None)


# ---------------------------------------------------------------- writes (caller's transaction)


_UPSERT = entry_upsert(lambda c: f":{c}", "revision")


def write(
    conn: sqlite3.Connection,
    feed_id: int,
    change: Change,
    event_id: str | None,
    now_s: str | None,
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Store the entry as `change` has it (with its parse `key`), and a version row naming the
    event it raised; the version's id and columns."""
    values = entry_values(feed_id, change, now_s, key)
    conn.execute(_UPSERT, values)
    cur = conn.execute(
        """INSERT INTO entry_versions (feed_id, entry_id, event_id, recorded_at, title, link,
           published, updated, authors, categories, summary, content, content_hash, base_url)
           VALUES (:feed_id, :entry_id, :event_id, :now, :title, :link, :published, :updated,
           :authors, :categories, :summary, :content, :content_hash, :base_url)""",
        {**values, "event_id": event_id, "now": now_s},
    )
    assert cur.lastrowid is not None
    return cur.lastrowid, values


def latest_version(
    conn: sqlite3.Connection, feed_id: int, entry_id: str
) -> tuple[int, dict[str, Any]] | None:
    """The entry's newest version, its id and columns (what `entry.deleted` shows)."""
    cur = conn.execute(
        f"SELECT id, {', '.join(VERSION_FIELDS)} FROM entry_versions"
        " WHERE feed_id = ? AND entry_id = ? ORDER BY id DESC LIMIT 1",
        (feed_id, entry_id),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return row[0], dict(zip(VERSION_FIELDS, row[1:], strict=True))


def seen(
    conn: sqlite3.Connection, feed_id: int, entry_ids: Sequence[str], now_s: str | None
) -> None:
    """Listed again, unchanged: seen now, present in this crawl."""
    conn.executemany(
        "UPDATE entries SET last_seen = ?, missing_crawls = 0 WHERE feed_id = ? AND entry_id = ?",
        [(now_s, feed_id, i) for i in entry_ids],
    )


def rekey(conn: sqlite3.Connection, feed_id: int, keys: Sequence[tuple[str, str]]) -> None:
    """New parse keys (entry id, key) for entries read unchanged, equal to their rows."""
    conn.executemany(
        "UPDATE entries SET parse_key = ? WHERE feed_id = ? AND entry_id = ?",
        [(key, feed_id, entry_id) for entry_id, key in keys],
    )


def count_presence(
    conn: sqlite3.Connection, feed_id: int, listed: Collection[str], missing: Sequence[str]
) -> None:
    """A complete full crawl: reset the absence count of what it listed, count one more absence
    for `missing`."""
    conn.executemany(
        "UPDATE entries SET missing_crawls = 0 WHERE feed_id = ? AND entry_id = ?"
        " AND missing_crawls != 0",
        [(feed_id, i) for i in listed],
    )
    conn.executemany(
        "UPDATE entries SET missing_crawls = missing_crawls + 1"
        " WHERE feed_id = ? AND entry_id = ? AND deleted_at IS NULL",
        [(feed_id, i) for i in missing],
    )


def delete(conn: sqlite3.Connection, feed_id: int, deletion: Deletion, now: datetime) -> None:
    # The row stays (users query history); deleted_at marks it, revision moves on.
    conn.execute(
        "UPDATE entries SET deleted_at = ?, deleted_reason = ?, revision = revision + 1"
        " WHERE feed_id = ? AND entry_id = ?",
        (to_text(now), deletion.reason, feed_id, deletion.entry.entry_id),
    )


# Versions beyond the newest `keep` of their entry that no event keeps (an event's envelope is
# built from its version: events.version_id) but those up to seq `upto`, which go first.
_OLD_VERSIONS = """SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY feed_id, entry_id
                   ORDER BY id DESC) AS newer FROM entry_versions) o WHERE newer > :keep
                   AND NOT EXISTS (SELECT 1 FROM events ev WHERE ev.version_id = o.id
                                   AND ev.seq > :upto)"""


def count_old_versions(conn: sqlite3.Connection, keep: int | None, upto: int) -> int:
    """Versions beyond the newest `keep` of each entry that no event after seq `upto` is built
    from: what a prune deletes once the events up to `upto` are gone."""
    if keep is None:
        return 0
    sql = f"SELECT COUNT(*) FROM ({_OLD_VERSIONS})"
    return int(conn.execute(sql, {"keep": keep, "upto": upto}).fetchone()[0])


def old_versions(db: Db, keep: int | None) -> list[int]:
    """The ids of the versions beyond the newest `keep` of each entry that no event is built
    from, read once."""
    if keep is None:
        return []
    return [r["id"] for r in db.rows(_OLD_VERSIONS + " ORDER BY id", {"keep": keep, "upto": 0})]


def prune_versions(conn: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Delete those of `ids` no event is built from (one may have been named since); how
    many."""
    return conn.execute(
        """DELETE FROM entry_versions WHERE id IN (SELECT value FROM json_each(?))
           AND NOT EXISTS (SELECT 1 FROM events ev WHERE ev.version_id = entry_versions.id)""",
        (json.dumps(list(ids)),),
    ).rowcount
