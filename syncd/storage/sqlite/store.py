"""`SqliteStore`: the `Store` protocol over one SQLite file, composed of the per-table modules
(feeds, entries, events, outbox, websub, prune; history for exports). One writer connection in
WAL mode; every write is one `BEGIN IMMEDIATE` transaction, so a page's entries, versions,
events and deliveries land together or not at all. It decides nothing: it records what the
pure modules decided.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.diff import DEFAULT_HASH_ONLY_CAP
from syncd.errors import StoreError
from syncd.model import ParsedEntry, StoredEntry
from syncd.storage.rows import search_stale
from syncd.storage.sqlite import (
    entries,
    events,
    feeds,
    outbox,
    search,
    workers,
)
from syncd.storage.sqlite.db import Db, Params, readonly_connection
from syncd.storage.sqlite.outbox import SqliteOutbox
from syncd.storage.sqlite.websub import SqliteWebSub
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
from syncd.timestamps import to_text

if TYPE_CHECKING:  # operators' reads and maintenance: imported when run, never by a crawl
    from syncd.storage.reports import (
        ArchivedEntry,
        FeedHead,
        Hit,
        Policy,
        PruneReport,
        SearchQuery,
        VacuumReport,
    )
    from syncd.storage.sqlite.reader import SqliteReads


class SqliteStore:
    """The writer's handle on the database file. Not thread-safe; one per process."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db)
        self._websub = SqliteWebSub(db)

    @classmethod
    def open(cls, path: Path) -> SqliteStore:
        """The store at `path` for reading and writing, created (with its directory) and
        migrated as needed."""
        return cls(Db.open(path))

    @classmethod
    def open_existing(cls, path: Path) -> SqliteStore:
        """The store at `path`, read-only: never created, never migrated; writes fail."""
        return cls(Db.open_existing(path))

    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def location(self) -> str:
        return str(self.db.path)

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    @property
    def websub(self) -> SqliteWebSub:
        return self._websub

    async def close(self) -> None:
        self.db.close()

    # SQL access for tests and benchmarks of this backend; syncd itself never calls these.
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self.db.write() as conn:
            yield conn

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return self.db.rows(sql, params)

    # ---------------------------------------------------------------- feeds and pages

    async def ensure_feed(self, name: str, url: str, now: datetime) -> FeedState:
        return feeds.ensure(self.db, name, url, now)

    async def ensure_feeds(self, named: Sequence[tuple[str, str]], now: datetime) -> None:
        feeds.ensure_many(self.db, named, now)

    async def overdue_since_synced(self, now: datetime) -> list[tuple[int, str]]:
        return feeds.overdue_since_synced(self.db, now)

    async def reschedule_many(self, due: Sequence[tuple[int, datetime, str]]) -> None:
        feeds.reschedule_many(self.db, due)

    async def feed_state(self, name: str) -> FeedState:
        return feeds.state(self.db, name)

    async def reschedule(
        self, feed_id: int, at: datetime, reason: str, *, fence: int | None = None
    ) -> None:
        feeds.reschedule(self.db, feed_id, at, reason, fence)

    async def due_feeds(self, now: datetime, limit: int) -> list[str]:
        return feeds.due(self.db, now, limit)

    async def finish_crawl(
        self,
        feed_id: int,
        now: datetime,
        outcome: CrawlOutcome,
        *,
        fence: int | None = None,
        release: bool = False,
    ) -> None:
        feeds.finish_crawl(self.db, feed_id, now, outcome, fence, release=release)

    async def page_state(self, feed_id: int, url: str) -> PageState | None:
        return feeds.page_state(self.db, feed_id, url)

    # ---------------------------------------------------------------- workers and leases

    async def heartbeat(self, worker: str, now: datetime, until: datetime) -> None:
        """In a thread, on a connection of its own: never stalls the loop on a locked file."""
        await asyncio.to_thread(self._heartbeat, worker, now, until)

    def _heartbeat(self, worker: str, now: datetime, until: datetime) -> None:
        db = Db.open_for_writes(self.db.path)
        try:
            workers.heartbeat(db, worker, now, until)
        finally:
            db.close()

    async def retire_worker(self, worker: str) -> None:
        workers.retire(self.db, worker)

    async def worker_ids(self, alive_at: datetime | None = None) -> list[str]:
        return workers.ids(self.db, alive_at)

    async def worker_summaries(self, now: datetime) -> list[dict[str, Any]]:
        return workers.summaries(self.db, now)

    async def claim_feeds(
        self, worker: str, now: datetime, until: datetime, limit: int
    ) -> list[FeedLease]:
        return feeds.claim(self.db, worker, now, until, limit) if limit > 0 else []

    async def lease_feed(
        self, worker: str, feed_id: int, now: datetime, until: datetime
    ) -> FeedLease | None:
        return feeds.lease_many(self.db, worker, (feed_id,), now, until).get(feed_id)

    async def lease_feeds(
        self, worker: str, feed_ids: Sequence[int], now: datetime, until: datetime
    ) -> dict[int, FeedLease]:
        return feeds.lease_many(self.db, worker, feed_ids, now, until)

    async def release_feed(self, lease: FeedLease) -> None:
        feeds.release(self.db, lease)

    async def reserve_host_slot(self, host: str, gap_s: float) -> float:
        return workers.reserve_host_slot(self.db, host, gap_s)

    # ---------------------------------------------------------------- entries

    async def known_entries(
        self,
        feed_id: int,
        entry_ids: Iterable[str],
        as_read: Mapping[str, ParsedEntry] | None = None,
    ) -> dict[str, StoredEntry]:
        return entries.known(self.db, feed_id, entry_ids, as_read)

    async def entries_by_key(self, feed_id: int, keys: Iterable[str]) -> dict[str, ParsedEntry]:
        return entries.by_key(self.db, feed_id, keys)

    async def live_entries(
        self, feed_id: int, entry_ids: Iterable[str] | None = None
    ) -> dict[str, StoredEntry]:
        return entries.live(self.db, feed_id, entry_ids)

    async def live_entry_ids(self, feed_id: int) -> list[str]:
        return entries.live_ids(self.db, feed_id)

    async def recent_entries(self, feed_id: int, since: datetime) -> int:
        return entries.recent(self.db, feed_id, since)

    async def newest_updated(self, feed_id: int) -> datetime | None:
        return entries.newest_updated(self.db, feed_id)

    # ---------------------------------------------------------------- commits

    async def commit_page(self, commit: PageCommit) -> list[int]:
        """Write one parsed page in one transaction; return the seqs of the events it created
        (an event whose id exists already creates nothing, its entry is still written)."""
        feed_id, now = commit.feed_id, commit.now
        now_s = to_text(now)
        seqs: list[int] = []
        with self.db.write() as conn:
            log = events.EventLog(conn, feed_id, now)
            feeds.check_fence(conn, feed_id, commit.fence)
            feeds.write_page(
                conn, feed_id, commit.result, commit.page, commit.next_url, now,
                partial=commit.partial,
            )  # fmt: skip
            for w in commit.writes:
                # The version first: the event names it rather than repeating its content.
                version = entries.write(
                    conn, feed_id, w.change, w.event.id if w.event else None, now_s, w.key
                )
                if w.event is not None:
                    seq = log.insert(w.event, version)
                    if seq is not None:
                        outbox.enqueue(conn, seq, w.sinks, now)
                        seqs.append(seq)
            written = {w.change.entry.entry_id for w in commit.writes}
            entries.seen(
                conn,
                feed_id,
                [e.entry_id for e in commit.page.entries if e.entry_id not in written],
                now_s,
            )
            entries.rekey(conn, feed_id, commit.rekeyed)
            seqs += _delete(conn, log, feed_id, commit.deletions, now)
            # The index catches up later (syncd.indexer): here, one statement for the page.
            search.mark_stale(conn, feed_id, search_stale(commit.writes, commit.deletions))
        return seqs

    async def commit_presence(self, commit: PresenceCommit) -> list[int]:
        """After a complete full crawl: absence counts and the deletions they condemn, in one
        transaction; the seqs of the events it created."""
        with self.db.write() as conn:
            feeds.check_fence(conn, commit.feed_id, commit.fence)
            entries.count_presence(conn, commit.feed_id, commit.seen, commit.missing)
            log = events.EventLog(conn, commit.feed_id, commit.now)
            search.mark_stale(conn, commit.feed_id, search_stale((), commit.deletions))
            return _delete(conn, log, commit.feed_id, commit.deletions, commit.now)

    # ---------------------------------------------------------------- the operator's views

    async def feed_summaries(
        self, hash_only_cap: int = DEFAULT_HASH_ONLY_CAP
    ) -> list[dict[str, Any]]:
        return feeds.summaries(self.db, hash_only_cap)

    async def latest_events(self, feed: str | None, limit: int) -> list[dict[str, Any]]:
        return events.latest(self.db, feed, limit)

    async def schedule_summary(self, now: datetime) -> ScheduleSummary:
        return feeds.schedule_summary(self.db, now)

    async def schedule_rows(self) -> list[dict[str, Any]]:
        return feeds.schedule_rows(self.db)

    async def queue_figures(self, sinks: Sequence[str]) -> list[dict[str, Any]]:
        return outbox.queue_figures(self.db, sinks)

    async def search(self, query: SearchQuery) -> list[Hit]:
        return search.search(self.db.conn, query)

    async def index_pending(self, limit: int) -> int:
        """In a thread, on a write connection of its own (as `heartbeat`): a batch's HTML parsing
        and tokenising never hold the event loop, and a read-only store can catch up too."""
        return await asyncio.to_thread(self._index_pending, limit)

    def _index_pending(self, limit: int) -> int:
        db = Db.open_for_writes(self.db.path)
        try:
            try:
                batch = search.read_pending(db.conn, limit)
            except sqlite3.Error as e:
                raise StoreError(f"database error in {str(self.db.path)!r}: {e}") from e
            if batch:
                with db.write() as conn:
                    search.apply_pending(conn, batch)
            return len(batch)
        finally:
            db.close()

    async def search_pending(self) -> int:
        try:
            return search.pending(self.db.conn)
        except sqlite3.Error as e:
            raise StoreError(f"database error in {str(self.db.path)!r}: {e}") from e

    async def feed_head(self, name: str) -> FeedHead:
        from syncd.storage.sqlite import history

        return history.head(self.db, name)

    async def feed_history(
        self, name: str, *, include_deleted: bool
    ) -> AsyncIterator[ArchivedEntry]:
        from syncd.storage.sqlite import history

        for entry in history.entries(self.db, name, include_deleted=include_deleted):
            yield entry

    async def query_readonly(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run SQL on a read-only connection of its own, in a thread: a write statement fails,
        changing nothing."""
        return await asyncio.to_thread(self._query_readonly, sql)

    def _query_readonly(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        conn = readonly_connection(self.db.path)
        try:
            cur = conn.execute(sql)
            cols = [c[0] for c in cur.description] if cur.description else []
            return cols, cur.fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"query failed: {e}") from None
        finally:
            conn.close()

    # ---------------------------------------------------------------- retention, reads, health

    async def prune(self, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
        from syncd.storage.sqlite import prune

        return prune.prune(self.db, policy, now, dry_run=dry_run)

    async def vacuum(self, *, incremental: bool) -> VacuumReport:
        from syncd.storage.sqlite import vacuum

        return vacuum.incremental(self.db) if incremental else vacuum.full(self.db)

    def reads(self) -> SqliteReads:
        from syncd.storage.sqlite.reader import SqliteReads

        return SqliteReads(self.db.path)

    async def probe(self, timeout_s: float) -> str | None:
        """In a thread: a locked database must not stall the event loop for the busy timeout."""
        return await asyncio.to_thread(self._probe, timeout_s)

    def _probe(self, timeout_s: float) -> str | None:
        path = self.db.path
        if not path.exists():
            return f"store {path} does not exist"
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=timeout_s)
        except sqlite3.Error as e:
            return f"store {path}: {e}"
        try:
            conn.execute("SELECT COUNT(*) FROM feeds").fetchone()
            conn.execute("BEGIN IMMEDIATE")  # takes the write lock, as every store write does
            conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            return f"store {path} not writable: {e}"
        finally:
            conn.close()
        return None


def _delete(
    conn: sqlite3.Connection,
    log: events.EventLog,
    feed_id: int,
    deletions: Sequence[EntryDeletion],
    now: datetime,
) -> list[int]:
    seqs: list[int] = []
    for d in deletions:
        # `entry.deleted` shows the entry as last stored: its newest version.
        version = entries.latest_version(conn, feed_id, d.deletion.entry.entry_id)
        seq = log.insert(d.event, version)
        if seq is not None:
            outbox.enqueue(conn, seq, d.sinks, now)
            seqs.append(seq)
        entries.delete(conn, feed_id, d.deletion, now)
    return seqs
