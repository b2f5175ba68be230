"""`PostgresStore`: the `Store` protocol over a PostgreSQL database, composed of the per-table
modules, through a psycopg 3 `AsyncConnectionPool`. Each write is one transaction; a page commit
writes its page and entries first and its events and deliveries last, under the event lock (see
syncd.storage.postgres.events), so cursor readers see events in `seq` order. Decides nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from syncd.diff import DEFAULT_HASH_ONLY_CAP
from syncd.errors import StoreError
from syncd.model import ParsedEntry, StoredEntry
from syncd.storage.postgres import (
    entries,
    events,
    feeds,
    history,
    outbox,
    prune,
    search,
    vacuum,
    workers,
)
from syncd.storage.postgres.db import Conn, Pg
from syncd.storage.postgres.outbox import PostgresOutbox
from syncd.storage.postgres.reader import PostgresReads
from syncd.storage.postgres.websub import PostgresWebSub
from syncd.storage.rows import search_stale
from syncd.storage.values import (
    CrawlOutcome,
    EntryDeletion,
    FeedLease,
    FeedState,
    PageCommit,
    PageState,
    PresenceCommit,
    ScheduleSummary,
)
from syncd.timestamps import format_timestamp, to_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import (
        ArchivedEntry,
        FeedHead,
        Hit,
        Policy,
        PruneReport,
        SearchQuery,
        VacuumReport,
    )


class PostgresStore:
    """A handle on the database, shared by the tasks of one event loop."""

    def __init__(self, pg: Pg) -> None:
        self.pg = pg
        self._outbox = PostgresOutbox(pg)
        self._websub = PostgresWebSub(pg)
        self._reads = PostgresReads(pg)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> PostgresStore:
        """The database at `url`, migrated as needed (`migrate=False`: it must be already)."""
        return cls(await Pg.open(url, migrate=migrate))

    @property
    def location(self) -> str:
        return self.pg.location

    @property
    def outbox(self) -> PostgresOutbox:
        return self._outbox

    @property
    def websub(self) -> PostgresWebSub:
        return self._websub

    async def close(self) -> None:
        await self.pg.close()

    # ---------------------------------------------------------------- feeds and pages

    async def ensure_feed(self, name: str, url: str, now: datetime) -> FeedState:
        return await feeds.ensure(self.pg, name, url, now)

    async def ensure_feeds(self, named: Sequence[tuple[str, str]], now: datetime) -> None:
        await feeds.ensure_many(self.pg, named, now)

    async def overdue_since_synced(self, now: datetime) -> list[tuple[int, str]]:
        return await feeds.overdue_since_synced(self.pg, now)

    async def reschedule_many(self, due: Sequence[tuple[int, datetime, str]]) -> None:
        await feeds.reschedule_many(self.pg, due)

    async def feed_state(self, name: str) -> FeedState:
        return await feeds.state(self.pg, name)

    async def reschedule(
        self, feed_id: int, at: datetime, reason: str, *, fence: int | None = None
    ) -> None:
        await feeds.reschedule(self.pg, feed_id, at, reason, fence)

    async def due_feeds(self, now: datetime, limit: int) -> list[str]:
        return await feeds.due(self.pg, now, limit)

    async def finish_crawl(
        self,
        feed_id: int,
        now: datetime,
        outcome: CrawlOutcome,
        *,
        fence: int | None = None,
        release: bool = False,
    ) -> None:
        await feeds.finish_crawl(self.pg, feed_id, now, outcome, fence, release=release)

    async def page_state(self, feed_id: int, url: str) -> PageState | None:
        return await feeds.page_state(self.pg, feed_id, url)

    # ---------------------------------------------------------------- workers and leases

    async def heartbeat(self, worker: str, now: datetime, until: datetime) -> None:
        await workers.heartbeat(self.pg, worker, now, until)

    async def retire_worker(self, worker: str) -> None:
        await workers.retire(self.pg, worker)

    async def worker_ids(self, alive_at: datetime | None = None) -> list[str]:
        return await workers.ids(self.pg, alive_at)

    async def worker_summaries(self, now: datetime) -> list[dict[str, Any]]:
        return await workers.summaries(self.pg, now)

    async def claim_feeds(
        self, worker: str, now: datetime, until: datetime, limit: int
    ) -> list[FeedLease]:
        return await feeds.claim(self.pg, worker, now, until, limit) if limit > 0 else []

    async def lease_feed(
        self, worker: str, feed_id: int, now: datetime, until: datetime
    ) -> FeedLease | None:
        return (await feeds.lease_many(self.pg, worker, (feed_id,), now, until)).get(feed_id)

    async def lease_feeds(
        self, worker: str, feed_ids: Sequence[int], now: datetime, until: datetime
    ) -> dict[int, FeedLease]:
        return await feeds.lease_many(self.pg, worker, feed_ids, now, until)

    async def release_feed(self, lease: FeedLease) -> None:
        await feeds.release(self.pg, lease)

    async def reserve_host_slot(self, host: str, gap_s: float) -> float:
        return await workers.reserve_host_slot(self.pg, host, gap_s)

    # ---------------------------------------------------------------- entries

    async def known_entries(
        self,
        feed_id: int,
        entry_ids: Iterable[str],
        as_read: Mapping[str, ParsedEntry] | None = None,
    ) -> dict[str, StoredEntry]:
        return await entries.known(self.pg, feed_id, entry_ids, as_read)

    async def entries_by_key(self, feed_id: int, keys: Iterable[str]) -> dict[str, ParsedEntry]:
        return await entries.by_key(self.pg, feed_id, keys)

    async def live_entries(
        self, feed_id: int, entry_ids: Iterable[str] | None = None
    ) -> dict[str, StoredEntry]:
        return await entries.live(self.pg, feed_id, entry_ids)

    async def live_entry_ids(self, feed_id: int) -> list[str]:
        return await entries.live_ids(self.pg, feed_id)

    async def recent_entries(self, feed_id: int, since: datetime) -> int:
        return await entries.recent(self.pg, feed_id, since)

    async def newest_updated(self, feed_id: int) -> datetime | None:
        return await entries.newest_updated(self.pg, feed_id)

    # ---------------------------------------------------------------- commits

    async def commit_page(self, commit: PageCommit) -> list[int]:
        feed_id, now = commit.feed_id, commit.now
        now_s = to_text(now)
        async with self.pg.write() as conn:
            await feeds.check_fence(conn, feed_id, commit.fence)
            await feeds.write_page(
                conn, feed_id, commit.result, commit.page, commit.next_url, now,
                partial=commit.partial,
            )  # fmt: skip
            versions = {}
            for w in commit.writes:
                event_id = w.event.id if w.event else None
                version = await entries.write(conn, feed_id, w.change, event_id, now_s, w.key)
                if event_id is not None:
                    versions[event_id] = version
            written = {w.change.entry.entry_id for w in commit.writes}
            await entries.seen(
                conn,
                feed_id,
                [e.entry_id for e in commit.page.entries if e.entry_id not in written],
                now_s,
            )
            await entries.rekey(conn, feed_id, commit.rekeyed)
            for d in commit.deletions:
                await entries.delete(conn, feed_id, d.deletion, now)
            # The index catches up later (syncd.indexer): here, one statement for the page.
            await search.mark_stale(conn, feed_id, search_stale(commit.writes, commit.deletions))
            return await _events(conn, feed_id, commit, now, versions)

    async def commit_presence(self, commit: PresenceCommit) -> list[int]:
        async with self.pg.write() as conn:
            await feeds.check_fence(conn, commit.feed_id, commit.fence)
            await entries.count_presence(conn, commit.feed_id, commit.seen, commit.missing)
            for d in commit.deletions:
                await entries.delete(conn, commit.feed_id, d.deletion, commit.now)
            await search.mark_stale(conn, commit.feed_id, search_stale((), commit.deletions))
            return await _events(conn, commit.feed_id, commit, commit.now, {})

    # ---------------------------------------------------------------- the operator's views

    async def feed_summaries(
        self, hash_only_cap: int = DEFAULT_HASH_ONLY_CAP
    ) -> list[dict[str, Any]]:
        return await feeds.summaries(self.pg, hash_only_cap)

    async def latest_events(self, feed: str | None, limit: int) -> list[dict[str, Any]]:
        return await events.latest(self.pg, feed, limit)

    async def schedule_summary(self, now: datetime) -> ScheduleSummary:
        return await feeds.schedule_summary(self.pg, now)

    async def schedule_rows(self) -> list[dict[str, Any]]:
        return await feeds.schedule_rows(self.pg)

    async def queue_figures(self, sinks: Sequence[str]) -> list[dict[str, Any]]:
        return await outbox.queue_figures(self.pg, sinks)

    async def search(self, query: SearchQuery) -> list[Hit]:
        async with self.pg.write() as conn:
            return await search.search(conn, query)

    async def index_pending(self, limit: int) -> int:
        async with self.pg.write() as conn:
            return await search.index_pending(conn, limit)

    async def search_pending(self) -> int:
        async with self.pg.write() as conn:
            return await search.pending(conn)

    async def feed_head(self, name: str) -> FeedHead:
        return await history.head(self.pg, name)

    async def feed_history(
        self, name: str, *, include_deleted: bool
    ) -> AsyncIterator[ArchivedEntry]:
        async for entry in history.entries(self.pg, name, include_deleted=include_deleted):
            yield entry

    async def query_readonly(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run SQL in a read-only transaction: a write statement fails, changing nothing."""
        try:
            async with self.pg.pool.connection() as conn:
                await conn.execute("SET TRANSACTION READ ONLY")
                cur = await conn.execute(sql)
                cols = [c.name for c in cur.description] if cur.description else []
                rows = await cur.fetchall() if cur.description else []
                await conn.rollback()
        except psycopg.Error as e:
            raise StoreError(f"query failed: {e}") from None
        return cols, [tuple(r.values()) for r in rows]

    # ---------------------------------------------------------------- retention, reads, health

    async def prune(self, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
        return await prune.prune(self.pg, policy, now, dry_run=dry_run)

    async def vacuum(self, *, incremental: bool) -> VacuumReport:
        # Plain VACUUM is already the kind that runs beside writers: both ask for it.
        return await vacuum.vacuum(self.pg)

    def reads(self) -> PostgresReads:
        return self._reads

    async def probe(self, timeout_s: float) -> str | None:
        try:
            async with self.pg.pool.connection(timeout=timeout_s) as conn:
                await conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (str(int(timeout_s * 1000)),),
                )
                await conn.execute("SELECT COUNT(*) FROM feeds")
                await conn.rollback()
        except (psycopg.Error, TimeoutError) as e:
            return f"store {self.location}: {e}"
        return None


async def _events(
    conn: Conn,
    feed_id: int,
    commit: PageCommit | PresenceCommit,
    now: datetime,
    versions: dict[str, tuple[int, dict[str, Any]]],
) -> list[int]:
    """The commit's events and their deliveries, last in its transaction and under the event
    lock: writes first, then deletions, as `PageCommit` orders them. `versions`: the version
    each write's event shows, by event id; a deletion shows its entry's newest."""
    items: list[tuple[Any, Sequence[str], tuple[int, dict[str, Any]] | None]] = []
    if isinstance(commit, PageCommit):
        items += [(w.event, w.sinks, versions.get(w.event.id)) for w in commit.writes if w.event]
    for d in _deletions(commit):
        items.append(
            (d.event, d.sinks, await entries.latest_version(conn, feed_id, d.event.entry_id))
        )
    if not items:
        return []
    await events.lock(conn)
    reserved = await events.reserve(conn, len(items))
    now_s = format_timestamp(now)
    seqs: list[int] = []
    for (event, sinks, version), seq in zip(items, reserved, strict=True):
        if await events.insert(conn, feed_id, event, now_s, version, seq):
            await outbox.enqueue(conn, seq, sinks, now)
            seqs.append(seq)
    return seqs


def _deletions(commit: PageCommit | PresenceCommit) -> tuple[EntryDeletion, ...]:
    return commit.deletions
