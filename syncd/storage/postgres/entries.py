"""Entries and their versions on PostgreSQL (`entries`, `entry_versions`): the only writer of both.
Decides nothing about what changed; the store queues the search index's stale entries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.model import Change, Deletion, ParsedEntry, StoredEntry
from syncd.storage.envelopes import VERSION_FIELDS
from syncd.storage.postgres.db import Conn, Pg
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
from syncd.timestamps import from_text, to_text


async def known(
    pg: Pg,
    feed_id: int,
    entry_ids: Iterable[str],
    as_read: Mapping[str, ParsedEntry] | None = None,
) -> dict[str, StoredEntry]:
    """The feed's entries of `entry_ids`, with their parsed columns. Those whose key names an
    entry of `as_read` are built from it (rows.known_from_heads), the rest read in full."""
    ids = list(dict.fromkeys(entry_ids))
    if not ids:
        return {}
    sql = "SELECT {} FROM entries WHERE feed_id = %s AND entry_id = ANY(%s)"
    if not as_read:
        rows = await pg.rows(sql.format(KNOWN_COLUMNS), (feed_id, ids))
        return {r["entry_id"]: as_stored_entry(r) for r in rows}
    heads = await pg.rows(sql.format(HEAD_COLUMNS), (feed_id, ids))
    found, rest = known_from_heads(heads, as_read)
    if rest:
        found.update(await known(pg, feed_id, rest))
    return found


async def by_key(pg: Pg, feed_id: int, keys: Iterable[str]) -> dict[str, ParsedEntry]:
    """The feed's entries stored with one of `keys`, as they were parsed, by key."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    rows = await pg.rows(
        f"SELECT {PARSED_COLUMNS} FROM entries WHERE feed_id = %s AND parse_key = ANY(%s)",
        (feed_id, wanted),
    )
    return parsed_entries_by_key(rows)


async def live(
    pg: Pg, feed_id: int, entry_ids: Iterable[str] | None = None
) -> dict[str, StoredEntry]:
    """Every entry of the feed that is not deleted, or those of `entry_ids`."""
    if entry_ids is not None:
        rows = await pg.rows(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {_LIVE} AND entry_id = ANY(%s)",
            (feed_id, list(dict.fromkeys(entry_ids))),
        )
    else:
        rows = await pg.rows(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {_LIVE}", (feed_id,))
    return {r["entry_id"]: as_stored_entry(r) for r in rows}


async def live_ids(pg: Pg, feed_id: int) -> list[str]:
    """The ids of the feed's entries that are not deleted, as `live` lists them."""
    rows = await pg.rows(f"SELECT entry_id FROM entries WHERE {_LIVE}", (feed_id,))
    return [r["entry_id"] for r in rows]


# The same condition for both, so that both list the entries in the same order.
_LIVE = "feed_id = %s AND deleted_at IS NULL"


async def recent(pg: Pg, feed_id: int, since: datetime) -> int:
    rows = await pg.rows(
        "SELECT COUNT(*) AS n FROM entries WHERE feed_id = %s AND deleted_at IS NULL"
        " AND COALESCE(published, updated) >= %s",
        (feed_id, ms(since)),
    )
    return int(rows[0]["n"])


async def newest_updated(pg: Pg, feed_id: int) -> datetime | None:
    """The newest `updated` of the feed's entries; the newest few by text are compared exactly
    (fraction lengths differ within one second)."""
    rows = await pg.rows(
        "SELECT updated FROM entries WHERE feed_id = %s AND updated IS NOT NULL"
        " ORDER BY updated DESC LIMIT 16",
        (feed_id,),
    )
    stamps = [t for t in (from_text(r["updated"]) for r in rows) if t is not None]
    return max(stamps, default=None)


_UPSERT = entry_upsert(lambda c: f"%({c})s", "entries.revision")


async def write(
    conn: Conn,
    feed_id: int,
    change: Change,
    event_id: str | None,
    now_s: str | None,
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Store the entry as `change` has it (with its parse `key`), and a version row naming the
    event it raised; the version's id and columns."""
    values = entry_values(feed_id, change, now_s, key)
    await conn.execute(_UPSERT, values)
    cur = await conn.execute(
        """INSERT INTO entry_versions (feed_id, entry_id, event_id, recorded_at, title, link,
           published, updated, authors, categories, summary, content, content_hash, base_url)
           VALUES (%(feed_id)s, %(entry_id)s, %(event_id)s, %(now)s, %(title)s, %(link)s,
           %(published)s, %(updated)s, %(authors)s, %(categories)s, %(summary)s, %(content)s,
           %(content_hash)s, %(base_url)s) RETURNING id""",
        {**values, "event_id": event_id, "now": now_s},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"]), values


async def latest_version(
    conn: Conn, feed_id: int, entry_id: str
) -> tuple[int, dict[str, Any]] | None:
    """The entry's newest version, its id and columns (what `entry.deleted` shows)."""
    cur = await conn.execute(
        f"SELECT id, {', '.join(VERSION_FIELDS)} FROM entry_versions"
        " WHERE feed_id = %s AND entry_id = %s ORDER BY id DESC LIMIT 1",
        (feed_id, entry_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return int(row["id"]), {c: row[c] for c in VERSION_FIELDS}


async def seen(conn: Conn, feed_id: int, entry_ids: Sequence[str], now_s: str | None) -> None:
    if entry_ids:
        await conn.execute(
            "UPDATE entries SET last_seen = %s, missing_crawls = 0"
            " WHERE feed_id = %s AND entry_id = ANY(%s)",
            (now_s, feed_id, list(entry_ids)),
        )


async def rekey(conn: Conn, feed_id: int, keys: Sequence[tuple[str, str]]) -> None:
    """New parse keys (entry id, key) for entries read unchanged, equal to their rows."""
    if keys:
        await conn.execute(
            "UPDATE entries SET parse_key = k.key FROM unnest(%s::text[], %s::text[])"
            " AS k(entry_id, key) WHERE entries.feed_id = %s AND entries.entry_id = k.entry_id",
            ([i for i, _ in keys], [k for _, k in keys], feed_id),
        )


async def count_presence(
    conn: Conn, feed_id: int, listed: Collection[str], missing: Sequence[str]
) -> None:
    await conn.execute(
        "UPDATE entries SET missing_crawls = 0 WHERE feed_id = %s AND entry_id = ANY(%s)"
        " AND missing_crawls != 0",
        (feed_id, list(listed)),
    )
    await conn.execute(
        "UPDATE entries SET missing_crawls = missing_crawls + 1"
        " WHERE feed_id = %s AND entry_id = ANY(%s) AND deleted_at IS NULL",
        (feed_id, list(missing)),
    )


async def delete(conn: Conn, feed_id: int, deletion: Deletion, now: datetime) -> None:
    await conn.execute(
        "UPDATE entries SET deleted_at = %s, deleted_reason = %s, revision = revision + 1"
        " WHERE feed_id = %s AND entry_id = %s",
        (to_text(now), deletion.reason, feed_id, deletion.entry.entry_id),
    )


# As SQLite's: beyond the newest `keep`, and no event after `upto` is built from it.
_OLD_VERSIONS = """SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY feed_id, entry_id
                   ORDER BY id DESC) AS newer FROM entry_versions) o WHERE newer > %(keep)s
                   AND NOT EXISTS (SELECT 1 FROM events ev WHERE ev.version_id = o.id
                                   AND ev.seq > %(upto)s)"""


async def count_old_versions(conn: Conn, keep: int | None, upto: int) -> int:
    if keep is None:
        return 0
    cur = await conn.execute(
        f"SELECT COUNT(*) AS n FROM ({_OLD_VERSIONS}) old", {"keep": keep, "upto": upto}
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def old_versions(pg: Pg, keep: int | None) -> list[int]:
    if keep is None:
        return []
    rows = await pg.rows(_OLD_VERSIONS + " ORDER BY id", {"keep": keep, "upto": 0})
    return [int(r["id"]) for r in rows]


async def prune_versions(conn: Conn, ids: Sequence[int]) -> int:
    cur = await conn.execute(
        """DELETE FROM entry_versions v WHERE id = ANY(%s)
           AND NOT EXISTS (SELECT 1 FROM events ev WHERE ev.version_id = v.id)""",
        (list(ids),),
    )
    return cur.rowcount
