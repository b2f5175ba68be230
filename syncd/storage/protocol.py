"""The `Store` protocol: everything the rest of syncd may ask of storage, in the terms of
`syncd.model` and `syncd.storage.values`. The syncer, dispatcher, web app and commands depend on
this, never on a backend; the composition root (syncd.app) picks the backend.

Every write method is one transaction: it lands whole or raises StoreError, changing nothing.
Methods block (SQLite answers from a local file in microseconds); `reads()` and `probe()` are
safe to call from a worker thread while the owner keeps writing. Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from syncd.diff import DEFAULT_HASH_ONLY_CAP
from syncd.model import DeliveryState, FetchResult, StoredEntry
from syncd.storage.values import (
    ArchivedEntry,
    AttemptInfo,
    AttemptRecord,
    Claim,
    CrawlOutcome,
    DeliveryInfo,
    DueDelivery,
    EntryQuery,
    EventPage,
    FeedHead,
    FeedState,
    Hit,
    PageCommit,
    PageState,
    Policy,
    PresenceCommit,
    PruneReport,
    ReplayCounts,
    SearchQuery,
    SinkRow,
    Subscription,
)

SubscriptionCounter = Literal["pushes", "rejected"]


class Outbox(Protocol):
    """Deliveries, their attempts and the sinks' persisted state. Deliveries are *created* by
    `Store.commit_page`/`commit_presence` in the page's transaction and by `replay`."""

    # the dispatcher's side
    def claim_due(
        self,
        sink: str,
        now: datetime,
        limit: int,
        lease_until: datetime,
        *,
        probe: bool = False,
        peek: bool = True,
        strict: bool = False,
    ) -> list[DueDelivery]: ...
    def exchange(
        self,
        records: Sequence[AttemptRecord] = (),
        *,
        release: Sequence[DueDelivery] = (),
        claim: Claim | None = None,
    ) -> list[DueDelivery]: ...
    def release(self, deliveries: Sequence[DueDelivery]) -> None: ...
    def reclaim_leases(self) -> int: ...
    def next_due_at(self, sink: str) -> datetime | None: ...
    def record_attempts(self, records: Sequence[AttemptRecord]) -> list[DeliveryState]: ...

    # sink state
    def sink_row(self, name: str) -> SinkRow: ...
    def disable_sink(
        self, sink: str, reason: str, now: datetime, config_hash: str | None = None
    ) -> None: ...
    def enable_sink(self, sink: str, now: datetime) -> None: ...
    def request_resume(self, sink: str, now: datetime) -> None: ...
    def set_pause(
        self, sink: str, until: datetime | None, level: int, reason: str | None
    ) -> None: ...
    def sink_summaries(self) -> dict[str, dict[str, int]]: ...

    # the operator's side
    def list_deliveries(
        self,
        *,
        sink: str | None = None,
        states: Collection[str] = (),
        event: str | None = None,
        limit: int | None = 100,
    ) -> list[DeliveryInfo]: ...
    def delivery(self, delivery_id: int) -> DeliveryInfo | None: ...
    def attempts(self, delivery_id: int) -> list[AttemptInfo]: ...
    def load(self, delivery_id: int) -> DueDelivery | None: ...
    def recover(self, sink: str, now: datetime, since: datetime | None = None) -> int: ...
    def replay(
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
    """WebSub subscriptions, one per callback id."""

    def subscription_known(self, feed_id: int, hub: str, topic: str) -> bool:
        """A live subscription, or one the hub denied, exists for (feed, hub, topic)."""
        ...

    def add_subscription(
        self, sub_id: str, *, feed_id: int, hub: str, topic: str, secret: str | None,
        lease_s: int, now: datetime,
    ) -> None: ...  # fmt: skip
    def subscription(self, sub_id: str) -> Subscription | None: ...
    def update_subscription(self, sub_id: str, values: Mapping[str, str | int | None]) -> None: ...
    def count_push(self, sub_id: str, counter: SubscriptionCounter, now: datetime) -> None: ...


class Reads(Protocol):
    """The pull API's reads. Each runs in one consistent snapshot on a connection of its own, so
    a worker thread may call them while the store's owner writes. The cursor guarantee: a reader
    that always passes the `next` it was given never misses an event and never sees one twice."""

    def events(
        self, after: int, limit: int, feed: str | None = None, type: str | None = None
    ) -> EventPage: ...
    def feed_exists(self, name: str) -> bool: ...
    def entries(self, query: EntryQuery) -> list[dict[str, Any]]: ...
    def entry(self, entry_id: str, feed: str | None) -> list[dict[str, Any]]: ...


class Store(Protocol):
    """The store as syncd sees it. Not thread-safe (except `reads()` and `probe()`)."""

    @property
    def location(self) -> str:
        """Where the data is, for logs and messages (a path, or a URL without its password)."""
        ...

    @property
    def outbox(self) -> Outbox: ...
    @property
    def websub(self) -> WebSubStore: ...

    def close(self) -> None: ...

    # feeds, pages and the schedule
    def ensure_feed(self, name: str, url: str, now: datetime) -> FeedState: ...
    def feed_state(self, name: str) -> FeedState: ...
    def reschedule(self, feed_id: int, at: datetime, reason: str) -> None: ...
    def due_feeds(self, now: datetime, limit: int) -> list[str]: ...
    def finish_crawl(self, feed_id: int, now: datetime, outcome: CrawlOutcome) -> None: ...
    def page_state(self, feed_id: int, url: str) -> PageState | None: ...
    def record_unchanged_page(self, feed_id: int, result: FetchResult, now: datetime) -> None: ...

    # entries
    def known_entries(self, feed_id: int, entry_ids: Iterable[str]) -> dict[str, StoredEntry]: ...
    def live_entries(self, feed_id: int) -> dict[str, StoredEntry]: ...
    def recent_entries(self, feed_id: int, since: datetime) -> int: ...
    def newest_updated(self, feed_id: int) -> datetime | None: ...

    # commits: each one transaction, returning the seqs of the events it created
    def commit_page(self, commit: PageCommit) -> list[int]: ...
    def commit_presence(self, commit: PresenceCommit) -> list[int]: ...

    # the operator's views
    def feed_summaries(
        self, hash_only_cap: int = DEFAULT_HASH_ONLY_CAP
    ) -> list[dict[str, Any]]: ...
    def latest_events(self, feed: str | None, limit: int) -> list[dict[str, Any]]: ...
    def schedule_rows(self) -> list[dict[str, Any]]: ...
    def queue_figures(self, sinks: Sequence[str]) -> list[dict[str, Any]]: ...
    def search(self, query: SearchQuery) -> list[Hit]: ...
    def feed_head(self, name: str) -> FeedHead:
        """The feed's row (`syncd export`); NoSuchFeed when the store has none of that name."""
        ...

    def feed_history(self, name: str, *, include_deleted: bool) -> Iterator[ArchivedEntry]:
        """Every entry of the feed in its newest version, newest published first, from one
        read snapshot, one at a time (memory does not grow with the feed)."""
        ...

    def query_readonly(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]: ...

    # retention, reads for other threads, health
    def prune(self, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport: ...
    def reads(self) -> Reads: ...
    def probe(self, timeout_s: float) -> str | None:
        """None if the store answers a read and can start a write within `timeout_s`, else why
        not. Blocking, on a connection of its own: call it in a thread."""
        ...
