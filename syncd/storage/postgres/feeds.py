"""Feeds and their pages on PostgreSQL (`feeds`, `pages`): the only writer of both. Decides
nothing: the schedule and the outcome come from the pure modules; functions here record them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncd.errors import LeaseLost, StoreError
from syncd.model import FetchResult, ParsedPage
from syncd.storage.postgres.db import Conn, Pg
from syncd.storage.rows import as_feed_state, as_page_state, as_schedule_summary, dump, ms
from syncd.storage.values import (
    CrawlOutcome,
    FeedLease,
    FeedState,
    PageState,
    ScheduleSummary,
    UnchangedPage,
)
from syncd.timestamps import to_text


async def ensure(pg: Pg, name: str, url: str, now: datetime) -> FeedState:
    """The feed's row, created on first sight. The configured URL wins over a stored one."""
    found = await pg.rows("SELECT * FROM feeds WHERE name = %s", (name,))
    if found and found[0]["url"] == url:
        return as_feed_state(found[0])  # a known feed, as configured: nothing to write
    async with pg.write() as conn:
        await conn.execute(UPSERT_FEED, (name, url, to_text(now)))
    return await state(pg, name)


UPSERT_FEED = (
    "INSERT INTO feeds (name, url, created_at, consecutive_errors) VALUES (%s, %s, %s, 0)"
    # A new configured URL is the operator's word: it replaces any adopted move.
    " ON CONFLICT (name) DO UPDATE SET url = excluded.url, adopted_url = NULL,"
    " moved_to = NULL, moved_seen = 0 WHERE feeds.url != excluded.url"
)


async def ensure_many(pg: Pg, feeds: Sequence[tuple[str, str]], now: datetime) -> None:
    """`ensure` for many (name, url) pairs: one read, then one transaction writing only the new
    feeds and the changed URLs (the twin of the SQLite function)."""
    stored = {r["name"]: r["url"] for r in await pg.rows("SELECT name, url FROM feeds")}
    changed = [(n, u, to_text(now)) for n, u in feeds if stored.get(n) != u]
    if changed:
        async with pg.write() as conn, conn.cursor() as cur:
            await cur.executemany(UPSERT_FEED, changed)


async def overdue_since_synced(pg: Pg, now: datetime) -> list[tuple[int, str]]:
    """(id, name) of the feeds synced before, not gone, not resuming a crawl, that were due by
    `now` (the twin of the SQLite function)."""
    rows = await pg.rows(
        "SELECT id, name FROM feeds WHERE gone_at IS NULL AND next_due_at <= %s"
        " AND first_synced_at IS NOT NULL AND crawl_incomplete = 0"
        " AND full_crawl_reason IS NULL",
        (ms(now),),
    )
    return [(int(r["id"]), str(r["name"])) for r in rows]


async def reschedule_many(pg: Pg, due: Sequence[tuple[int, datetime, str]]) -> None:
    """`reschedule` for many feeds, in one transaction."""
    async with pg.write() as conn, conn.cursor() as cur:
        await cur.executemany(
            "UPDATE feeds SET next_due_at = %s, next_due_reason = %s WHERE id = %s",
            [(ms(at), reason, feed_id) for feed_id, at, reason in due],
        )


async def state(pg: Pg, name: str) -> FeedState:
    rows = await pg.rows("SELECT * FROM feeds WHERE name = %s", (name,))
    if not rows:
        raise StoreError(f"feed {name!r} is not in the store")
    return as_feed_state(rows[0])


async def reschedule(pg: Pg, feed_id: int, at: datetime, reason: str, fence: int | None) -> None:
    async with pg.write() as conn:
        await check_fence(conn, feed_id, fence)
        await conn.execute(
            "UPDATE feeds SET next_due_at = %s, next_due_reason = %s WHERE id = %s",
            (ms(at), reason, feed_id),
        )


async def due(pg: Pg, now: datetime, limit: int) -> list[str]:
    """Names of at most `limit` feeds whose next poll is due, that are not gone (410), never
    polled ones first, then most overdue: one walk of the partial index feeds_due."""
    rows = await pg.rows(
        "SELECT name FROM feeds WHERE gone_at IS NULL"
        " AND (next_due_at IS NULL OR next_due_at <= %s)"
        " ORDER BY next_due_at NULLS FIRST LIMIT %s",
        (ms(now), limit),
    )
    return [r["name"] for r in rows]


async def finish_crawl(
    pg: Pg,
    feed_id: int,
    now: datetime,
    outcome: CrawlOutcome,
    fence: int | None,
    *,
    release: bool = False,
) -> None:
    if release and fence is None:
        raise ValueError("only a fenced crawl holds a lease to release")
    move = outcome.move
    adopt = move is not None and move.adopt
    full_done = outcome.full and outcome.completed
    now_s = to_text(now)
    values: dict[str, Any] = {
        "last_fetch_at": now_s,
        "last_outcome": outcome.outcome,
        "last_error": outcome.error,
        "consecutive_errors": outcome.consecutive_errors,
        "next_due_at": ms(outcome.next_due_at),
        "retry_after_until": ms(outcome.retry_after_until),
        "next_due_reason": outcome.next_due_reason,
    }
    # The conditional columns are decided here, in Python: the same rules as the SQLite backend's
    # CASE expressions, without them.
    sets = [f"{c} = %({c})s" for c in values]
    sets.append("title = COALESCE(%(title)s, title)")
    values["title"] = outcome.title
    if outcome.completed:
        sets += ["first_synced_at = COALESCE(first_synced_at, %(now)s)", "crawl_incomplete = 0"]
    if full_done:
        sets += ["last_full_sync_at = %(now)s", "changes_since = NULL"]
        if outcome.full_crawl_reason is None:
            sets.append("full_crawl_reason = NULL")
    sets.append(
        "gone_at = COALESCE(gone_at, %(now)s)" if outcome.outcome == "gone" else "gone_at = NULL"
    )
    values["now"] = now_s
    if move is not None:
        sets += ["moved_to = %(moved_to)s", "moved_seen = %(moved_seen)s"]
        values["moved_to"] = None if adopt else move.moved_to
        values["moved_seen"] = 0 if adopt else move.seen
        if adopt:
            sets.append("adopted_url = %(adopted)s")
            values["adopted"] = move.moved_to
    if outcome.full_crawl_reason is not None:
        sets.append("full_crawl_reason = %(full_reason)s")
        values["full_reason"] = outcome.full_crawl_reason
    if outcome.publisher is not None:
        sets += ["publisher_interval_s = %(pub_s)s", "publisher_interval_why = %(pub_why)s"]
        values["pub_s"], values["pub_why"] = outcome.publisher
    if outcome.counted is not None:
        sets += ["total_results = %(total)s", "page1_shortfall = %(shortfall)s"]
        values["total"], values["shortfall"] = outcome.counted
    changes = outcome.changes
    if changes is not None:
        sets += [
            "changes_base = %(ch_base)s",
            "changes_off_until = %(ch_off)s",
            "changes_error = %(ch_error)s",
        ]
        values.update(ch_base=changes.base, ch_off=ms(changes.off_until), ch_error=changes.error)
        if not full_done:
            sets.append("changes_since = %(ch_since)s")
            values["ch_since"] = ms(changes.since)
    if release:  # the fence is checked below, in the same transaction: the lease is this crawl's
        sets += ["lease_owner = NULL", "lease_until = NULL"]
    values["id"] = feed_id
    async with pg.write() as conn:
        await check_fence(conn, feed_id, fence)
        for page in outcome.unchanged_pages:
            await refresh_page(conn, feed_id, page)
        await conn.execute(f"UPDATE feeds SET {', '.join(sets)} WHERE id = %(id)s", values)
        if changes is not None and changes.keep_pages is not None:
            # Each changes query has its own URL (its instant moves): keep only the latest.
            await conn.execute(
                "DELETE FROM pages WHERE feed_id = %s AND partial = 1 AND NOT (url = ANY(%s))",
                (feed_id, list(changes.keep_pages)),
            )


# ---------------------------------------------------------------- leases

_FREE = "(lease_until IS NULL OR lease_until <= %(now)s)"
_TAKE = """UPDATE feeds f SET lease_owner = %(worker)s, lease_until = %(until)s,
           lease_token = f.lease_token + 1
           FROM picked WHERE f.id = picked.id RETURNING f.*"""


async def check_fence(conn: Conn, feed_id: int, fence: int | None) -> None:
    """In the write's transaction: refuse it if the feed was leased again since `fence`. The row
    lock taken here holds off a takeover until the write commits."""
    if fence is None:
        return
    cur = await conn.execute("SELECT lease_token FROM feeds WHERE id = %s FOR UPDATE", (feed_id,))
    row = await cur.fetchone()
    if row is None or row["lease_token"] != fence:
        raise LeaseLost(feed_id, fence)


async def claim(pg: Pg, worker: str, now: datetime, until: datetime, limit: int) -> list[FeedLease]:
    """Lease up to `limit` due, unleased feeds in `due`'s order. SKIP LOCKED: workers claiming
    at once take different feeds instead of queueing on each other's rows."""
    params = {"now": ms(now), "until": ms(until), "worker": worker, "limit": limit}
    async with pg.write() as conn:
        cur = await conn.execute(
            f"""WITH picked AS (
                  SELECT id FROM feeds WHERE gone_at IS NULL
                    AND (next_due_at IS NULL OR next_due_at <= %(now)s) AND {_FREE}
                  ORDER BY next_due_at NULLS FIRST LIMIT %(limit)s
                  FOR UPDATE SKIP LOCKED)
                {_TAKE}""",
            params,
        )
        rows = await cur.fetchall()
    return sorted((_lease(r, until) for r in rows), key=lambda lease: lease.feed_id)


async def lease_many(
    pg: Pg, worker: str, feed_ids: Sequence[int], now: datetime, until: datetime
) -> dict[int, FeedLease]:
    """Lease each of `feed_ids` that no lease holds at `now`, in one statement (a `syncd sync`
    leases every feed it will poll at once)."""
    params = {"now": ms(now), "until": ms(until), "worker": worker, "ids": list(feed_ids)}
    async with pg.write() as conn:
        cur = await conn.execute(
            f"""WITH picked AS (
                  SELECT id FROM feeds WHERE id = ANY(%(ids)s) AND {_FREE} ORDER BY id
                  FOR UPDATE)
                {_TAKE}""",
            params,
        )
        rows = await cur.fetchall()
    return {row["id"]: _lease(row, until) for row in rows}


def _lease(row: dict[str, Any], until: datetime) -> FeedLease:
    """A lease from its feed's row as the taking update returned it."""
    token = row["lease_token"]
    return FeedLease(row["id"], row["name"], token, until, as_feed_state(row, fence=token))


async def release(pg: Pg, lease: FeedLease) -> None:
    async with pg.write() as conn:
        await conn.execute(
            "UPDATE feeds SET lease_owner = NULL, lease_until = NULL"
            " WHERE id = %s AND lease_token = %s",
            (lease.feed_id, lease.token),
        )


async def renew(conn: Conn, worker: str, until: datetime) -> None:
    """Every lease `worker` holds, extended to `until` (its heartbeat's transaction)."""
    await conn.execute(
        "UPDATE feeds SET lease_until = %s WHERE lease_owner = %s", (ms(until), worker)
    )


async def drop_leases(conn: Conn, worker: str) -> None:
    await conn.execute(
        "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = %s",
        (worker,),
    )


async def page_state(pg: Pg, feed_id: int, url: str) -> PageState | None:
    rows = await pg.rows(
        "SELECT etag, last_modified, body_hash, next_url, entry_ids, archive, total_results"
        " FROM pages WHERE feed_id = %s AND url = %s",
        (feed_id, url),
    )
    if not rows:
        return None
    return as_page_state(rows[0])


async def refresh_page(conn: Conn, feed_id: int, page: UnchangedPage) -> None:
    """A 304 or an identical body: refresh validators (a 304 may carry new ones)."""
    await conn.execute(
        "UPDATE pages SET fetched_at = %s, etag = COALESCE(%s, etag),"
        " last_modified = COALESCE(%s, last_modified) WHERE feed_id = %s AND url = %s",
        (to_text(page.fetched_at), page.etag, page.last_modified, feed_id, page.url),
    )


async def write_page(
    conn: Conn,
    feed_id: int,
    result: FetchResult,
    page: ParsedPage,
    next_url: str | None,
    now: datetime,
    *,
    partial: bool,
) -> None:
    """The page's row as this parse left it (the commit's transaction). A crawl's page marks the
    crawl incomplete until it completes: the next poll must walk past this page (a 304)."""
    if not partial:
        await conn.execute("UPDATE feeds SET crawl_incomplete = 1 WHERE id = %s", (feed_id,))
    await conn.execute(
        """INSERT INTO pages (feed_id, url, etag, last_modified, body_hash, next_url,
           entry_count, fetched_at, entry_ids, archive, prev_archive_url, partial, total_results)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (feed_id, url) DO UPDATE SET etag = excluded.etag,
           last_modified = excluded.last_modified, body_hash = excluded.body_hash,
           next_url = excluded.next_url, entry_count = excluded.entry_count,
           fetched_at = excluded.fetched_at, entry_ids = excluded.entry_ids,
           archive = excluded.archive, prev_archive_url = excluded.prev_archive_url,
           partial = excluded.partial, total_results = excluded.total_results""",
        (
            feed_id,
            result.url,
            result.etag,
            result.last_modified,
            result.body_hash,
            next_url,
            len(page.entries),
            to_text(now),
            dump(list(dict.fromkeys(e.entry_id for e in page.entries))),
            int(page.archive and not page.malformed and not partial),
            page.prev_archive_url,
            int(partial),
            page.total_results,
        ),
    )


async def summaries(pg: Pg, hash_only_cap: int) -> list[dict[str, Any]]:
    """Per feed: its row, live entries, entries whose hash-only updates reached the cap, and
    entries one complete crawl did not list."""
    return await pg.rows(
        """SELECT f.name, f.url, f.title, f.last_fetch_at, f.last_outcome, f.last_error,
           f.next_due_at, f.consecutive_errors, f.last_full_sync_at, f.first_synced_at,
           f.next_due_reason, f.changes_base, f.changes_off_until, f.changes_error,
           f.full_crawl_reason, f.total_results, f.publisher_interval_why, f.crawl_incomplete,
           (SELECT MAX(e.updated) FROM entries e WHERE e.feed_id = f.id
              AND e.deleted_at IS NULL) AS newest_updated,
           (SELECT COUNT(*) FROM entries e WHERE e.feed_id = f.id AND e.deleted_at IS NULL)
             AS entries,
           (SELECT COUNT(*) FROM entries e WHERE e.feed_id = f.id AND e.deleted_at IS NULL
              AND e.hash_only_updates >= %(cap)s) AS hash_only_capped,
           (SELECT COUNT(*) FROM entries e WHERE e.feed_id = f.id AND e.deleted_at IS NULL
              AND e.missing_crawls > 0) AS missing_once
           FROM feeds f ORDER BY f.name""",
        {"cap": hash_only_cap},
    )


async def schedule_summary(pg: Pg, now: datetime) -> ScheduleSummary:
    """What the daemon's one-line status says about the schedule, from aggregates (the twin of
    the SQLite query): never a row per feed in Python."""
    (row,) = await pg.rows(
        "SELECT"
        " (SELECT COUNT(*) FROM feeds WHERE gone_at IS NULL"
        "  AND (next_due_at IS NULL OR next_due_at <= %(now)s)) AS due,"
        " (SELECT COUNT(*) FROM feeds WHERE gone_at IS NULL AND consecutive_errors > 0)"
        " AS backing_off,"
        " (SELECT MIN(next_due_at) FROM feeds WHERE gone_at IS NULL AND next_due_at IS NOT NULL)"
        " AS oldest_due_at",
        {"now": ms(now)},
    )
    return as_schedule_summary(row)


async def schedule_rows(pg: Pg) -> list[dict[str, Any]]:
    return await pg.rows(
        "SELECT name, last_fetch_at, last_outcome, consecutive_errors, next_due_at, gone_at"
        " FROM feeds ORDER BY name"
    )
