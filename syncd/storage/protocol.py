"""The `Store` protocol: everything the rest of syncd may ask of storage, in the terms of
`syncd.model` and `syncd.storage.values`. The syncer, dispatcher, web app and commands depend on
this, never on a backend; the composition root (syncd.app) picks the backend.

Every write method is one transaction: it lands whole or raises StoreError, changing nothing.
Methods are coroutines: the PostgreSQL backend awaits its pool; the SQLite backend answers from a
local file in microseconds and runs on the event loop, except its `reads()` and `probe()`, which
take a connection of their own in a worker thread. Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from syncd.diff import DEFAULT_HASH_ONLY_CAP
from syncd.model import DeliveryState, ParsedEntry, StoredEntry
from syncd.storage.values import (
    AttemptRecord,
    Claim,
    CrawlOutcome,
    DueDelivery,
    FeedLease,
    FeedState,
    PageCommit,
    PageState,
    PresenceCommit,
    ScheduleSummary,
    SinkRow,
    Subscription,
)

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import (
        ArchivedEntry,
        AttemptInfo,
        DeliveryInfo,
        EntryPage,
        EntryQuery,
        EventPage,
        FeedHead,
        Hit,
        Policy,
        PruneReport,
        ReplayCounts,
        SearchQuery,
        VacuumReport,
    )

SubscriptionCounter = Literal["pushes", "rejected"]


class Outbox(Protocol):
    """Deliveries, their attempts and the sinks' persisted state. Deliveries are *created* by
    `Store.commit_page`/`commit_presence` in the page's transaction and by `replay`."""

    # the dispatcher's side
    async def claim_due(
        self,
        sink: str,
        now: datetime,
        limit: int,
        lease_until: datetime,
        *,
        probe: bool = False,
        peek: bool = True,
        strict: bool = False,
        owner: str | None = None,
    ) -> list[DueDelivery]: ...
    async def exchange(
        self,
        records: Sequence[AttemptRecord] = (),
        *,
        release: Sequence[DueDelivery] = (),
        claim: Claim | None = None,
    ) -> list[DueDelivery]: ...
    async def release(self, deliveries: Sequence[DueDelivery]) -> None: ...
    async def reclaim_leases(self, now: datetime, *, everyone: bool = False) -> int:
        """Hand back the delivery leases of workers that are gone (no `workers` row alive at
        `now`, or none named), never a live worker's; `everyone`: every lease (the caller
        knows no other dispatcher is alive: SQLite's owner lock). How many."""
        ...

    async def next_due_at(self, sink: str) -> datetime | None: ...
    async def record_attempts(self, records: Sequence[AttemptRecord]) -> list[DeliveryState]: ...

    # sink state
    async def sink_row(self, name: str) -> SinkRow: ...
    async def disable_sink(
        self, sink: str, reason: str, now: datetime, config_hash: str | None = None
    ) -> None: ...
    async def enable_sink(self, sink: str, now: datetime) -> None: ...
    async def request_resume(self, sink: str, now: datetime) -> None: ...
    async def set_pause(
        self, sink: str, until: datetime | None, level: int, reason: str | None
    ) -> None: ...
    async def sink_summaries(self) -> dict[str, dict[str, int]]: ...

    # the operator's side
    async def list_deliveries(
        self,
        *,
        sink: str | None = None,
        states: Collection[str] = (),
        event: str | None = None,
        limit: int | None = 100,
    ) -> list[DeliveryInfo]: ...
    async def delivery(self, delivery_id: int) -> DeliveryInfo | None: ...
    async def attempts(self, delivery_id: int) -> list[AttemptInfo]: ...
    async def load(self, delivery_id: int) -> DueDelivery | None: ...
    async def recover(self, sink: str, now: datetime, since: datetime | None = None) -> int: ...
    async def replay(
        self,
        sink: str,
        now: datetime,
        *,
        from_seq: int,
        to_seq: int | None = None,
        types: Collection[str] | None = None,
        feeds: Collection[str] | None = None,
    ) -> ReplayCounts: ...


class WebSubStore(Protocol):
    """WebSub subscriptions, one per callback id. Instants are compared as the store keeps them,
    so `due_subscriptions` is an index search, not a scan."""

    async def add_subscription(
        self, sub_id: str, *, feed_id: int, hub: str, topic: str, secret: str | None,
        callback: str, lease_s: int, now: datetime, retry_at: datetime,
    ) -> None:  # fmt: skip
        """A new row in `subscribing`, its first request counted (attempts = 1)."""
        ...

    async def subscription(self, sub_id: str) -> Subscription | None: ...
    async def feed_subscriptions(self, feed_id: int) -> list[Subscription]:
        """The feed's rows that are not closed (unsubscribed), the newest request first."""
        ...

    async def open_subscriptions(self) -> list[Subscription]:
        """Every row still pending, active or being unsubscribed."""
        ...

    async def due_subscriptions(self, now: datetime) -> list[Subscription]:
        """Rows whose retry (pending, unsubscribing) or renewal (active) time has come."""
        ...

    async def all_subscriptions(self) -> list[Subscription]:
        """Every row, the oldest request first (for `status`)."""
        ...

    async def update_subscription(
        self,
        sub_id: str,
        values: Mapping[str, str | int | datetime | None],
        *,
        expect: Mapping[str, str | int | datetime | None] | None = None,
    ) -> bool:
        """Set `values` on the row, only if its columns still hold `expect` (None equals NULL):
        whether it did. Two workers that read the same due row both try; one sends the request."""
        ...

    async def count_push(
        self, sub_id: str, counter: SubscriptionCounter, now: datetime
    ) -> None: ...


class Reads(Protocol):
    """The pull API's reads. Each runs in one consistent snapshot on a connection of its own,
    never blocking the store's writes. The cursor guarantee: a reader
    that always passes the `next` it was given never misses an event and never sees one twice."""

    async def events(
        self, after: int, limit: int, feed: str | None = None, type: str | None = None
    ) -> EventPage: ...
    async def feed_exists(self, name: str) -> bool: ...
    async def entries(self, query: EntryQuery) -> EntryPage: ...
    async def entry(self, entry_id: str, feed: str | None) -> list[dict[str, Any]]: ...


class Store(Protocol):
    """The store as syncd sees it, used from one event loop."""

    @property
    def location(self) -> str:
        """Where the data is, for logs and messages (a path, or a URL without its password)."""
        ...

    @property
    def outbox(self) -> Outbox: ...
    @property
    def websub(self) -> WebSubStore: ...

    async def close(self) -> None: ...

    # feeds, pages and the schedule
    async def ensure_feed(self, name: str, url: str, now: datetime) -> FeedState: ...
    async def ensure_feeds(self, named: Sequence[tuple[str, str]], now: datetime) -> None: ...
    async def overdue_since_synced(self, now: datetime) -> list[tuple[int, str]]: ...
    async def reschedule_many(self, due: Sequence[tuple[int, datetime, str]]) -> None: ...
    async def feed_state(self, name: str) -> FeedState: ...
    async def reschedule(
        self, feed_id: int, at: datetime, reason: str, *, fence: int | None = None
    ) -> None: ...
    async def due_feeds(self, now: datetime, limit: int) -> list[str]: ...
    async def finish_crawl(
        self,
        feed_id: int,
        now: datetime,
        outcome: CrawlOutcome,
        *,
        fence: int | None = None,
        release: bool = False,
    ) -> None:
        """Record a crawl's outcome. With `release`, the lease `fence` names ends in the same
        transaction (what `release_feed` would do after it, without a second transaction)."""
        ...

    async def page_state(self, feed_id: int, url: str) -> PageState | None: ...

    # Workers and feed leases. Every write above and every commit below that is given a `fence`
    # (the token of the crawl's FeedLease) checks it in its own transaction and raises LeaseLost,
    # writing nothing, if the feed's token moved on (another worker leased it since).
    async def heartbeat(self, worker: str, now: datetime, until: datetime) -> None:
        """The worker is alive until `until`: its `workers` row is written (created on the
        first beat) and every feed lease it holds is renewed to `until`."""
        ...

    async def retire_worker(self, worker: str) -> None:
        """The worker stops (or is known dead): its row goes and its feed leases are dropped."""
        ...

    async def worker_ids(self, alive_at: datetime | None = None) -> list[str]:
        """Every worker with a row, or (`alive_at`) only those whose row has not expired then."""
        ...

    async def worker_summaries(self, now: datetime) -> list[dict[str, Any]]:
        """Every worker with a row, for `syncd status`: id, started_at, seen_at, expires_at,
        `alive` (its row has not expired at `now`), `feeds_leased` (feed leases it holds at
        `now`) and `deliveries_leased` (deliveries it has in flight at `now`)."""
        ...

    async def claim_feeds(
        self, worker: str, now: datetime, until: datetime, limit: int
    ) -> list[FeedLease]:
        """Lease up to `limit` due feeds (as `due_feeds` orders them) that no lease holds at
        `now`, skipping rows another transaction has locked; each lease's token is one more
        than the feed's last."""
        ...

    async def lease_feed(
        self, worker: str, feed_id: int, now: datetime, until: datetime
    ) -> FeedLease | None:
        """Lease one feed whether due or not (a `syncd sync`, a WebSub push); None while
        another worker's lease holds it."""
        ...

    async def lease_feeds(
        self, worker: str, feed_ids: Sequence[int], now: datetime, until: datetime
    ) -> dict[int, FeedLease]:
        """`lease_feed` for many feeds in one transaction: the leases taken, by feed id (a feed
        another worker's lease holds is left out)."""
        ...

    async def release_feed(self, lease: FeedLease) -> None:
        """Drop the lease, unless it was taken over meanwhile (then the new holder keeps it)."""
        ...

    async def reserve_host_slot(self, host: str, gap_s: float) -> float:
        """Reserve the next request slot to `host`, `gap_s` after the one reserved before it
        by any worker; the seconds to wait for it (0: now). Instants are the store's clock."""
        ...

    # entries
    async def known_entries(
        self,
        feed_id: int,
        entry_ids: Iterable[str],
        as_read: Mapping[str, ParsedEntry] | None = None,
    ) -> dict[str, StoredEntry]:
        """The feed's entries of `entry_ids` as stored, with what they were parsed as. Given
        the entries this reading parsed, by parse key (`as_read`), a row stored under one of
        those keys is built from that entry instead of decoded: the same value, since a key
        names one reading (rows.known_from_heads)."""
        ...

    # entries stored with one of these parse keys (parse.FastPage), as parsed, by key
    async def entries_by_key(self, feed_id: int, keys: Iterable[str]) -> dict[str, ParsedEntry]: ...
    # the feed's entries not deleted (of `entry_ids`, if given); their ids alone, in that order
    async def live_entries(
        self, feed_id: int, entry_ids: Iterable[str] | None = None
    ) -> dict[str, StoredEntry]: ...
    async def live_entry_ids(self, feed_id: int) -> list[str]: ...
    async def recent_entries(self, feed_id: int, since: datetime) -> int: ...
    async def newest_updated(self, feed_id: int) -> datetime | None: ...

    # commits: each one transaction, returning the seqs of the events it created
    # (a commit with a `fence` raises LeaseLost, writing nothing, as the writes above)
    async def commit_page(self, commit: PageCommit) -> list[int]: ...
    async def commit_presence(self, commit: PresenceCommit) -> list[int]: ...

    # the operator's views
    async def feed_summaries(
        self, hash_only_cap: int = DEFAULT_HASH_ONLY_CAP
    ) -> list[dict[str, Any]]: ...
    async def latest_events(self, feed: str | None, limit: int) -> list[dict[str, Any]]: ...
    async def schedule_summary(self, now: datetime) -> ScheduleSummary: ...
    async def schedule_rows(self) -> list[dict[str, Any]]: ...
    async def queue_figures(self, sinks: Sequence[str]) -> list[dict[str, Any]]: ...
    async def search(self, query: SearchQuery) -> list[Hit]:
        """The index as it stands: entries still queued (`search_pending`) are found as they
        were when last indexed, or not at all. Callers catch up first (syncd.indexer)."""
        ...

    # the search index's catch-up (syncd.indexer): pages only queue what their writes left stale
    async def index_pending(self, limit: int) -> int:
        """Index up to `limit` queued entries, oldest first, in one transaction of their own;
        how many were taken (fewer than `limit`: the queue was empty, or on PostgreSQL the rest
        is held by another worker's indexer). Idempotent: a crash leaves the batch queued."""
        ...

    async def search_pending(self) -> int:
        """How many entries the search index is behind (0: up to date)."""
        ...

    async def feed_head(self, name: str) -> FeedHead:
        """The feed's row (`syncd export`); NoSuchFeed when the store has none of that name."""
        ...

    def feed_history(self, name: str, *, include_deleted: bool) -> AsyncIterator[ArchivedEntry]:
        """Every entry of the feed in its newest version, newest published first, from one
        read snapshot, one at a time (memory does not grow with the feed)."""
        ...

    async def query_readonly(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]: ...

    # retention, reads for other threads, health
    async def prune(self, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport: ...
    async def vacuum(self, *, incremental: bool) -> VacuumReport:
        """Give back (SQLite) or make reusable (PostgreSQL) the space deleted rows left;
        `incremental`: in short steps, beside a running daemon (SQLite)."""
        ...

    def reads(self) -> Reads: ...
    async def probe(self, timeout_s: float) -> str | None:
        """None if the store answers a read and can start a write within `timeout_s`, else why
        not, on a connection of its own."""
        ...
