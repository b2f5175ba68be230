"""The values that cross the store's interface: what callers hand it to write (a `PageCommit` of
`EntryWrite`s and `EntryDeletion`s, a `CrawlOutcome`, an `AttemptRecord`, …) and what it hands
back (`FeedState`, `DueDelivery`, …). Plain frozen data, the same for every backend; no I/O and
no SQL here. What only operator commands read or run (listings, search, exports, prune, vacuum)
is in `syncd.storage.reports`, which a crawl never imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from syncd.model import (
    Change,
    Deletion,
    DeliveryState,
    EventDraft,
    FetchResult,
    OutboundEvent,
    ParsedPage,
    SendOutcome,
    Validators,
)
from syncd.moves import MoveState

# ---------------------------------------------------------------- feeds and pages


@dataclass(frozen=True)
class FeedState:
    """A feed's row: what the scheduler and the syncer need to know about its history."""

    id: int
    name: str
    url: str
    title: str | None
    first_synced_at: datetime | None
    last_fetch_at: datetime | None
    last_outcome: str | None
    last_error: str | None
    consecutive_errors: int
    next_due_at: datetime | None
    last_full_sync_at: datetime | None
    retry_after_until: datetime | None
    gone_at: datetime | None
    crawl_incomplete: bool = False  # a crawl committed pages and has not completed since
    adopted_url: str | None = None  # where the feed moved for good (301/308, stable)
    moved_to: str | None = None  # a permanent-redirect target not yet stable
    moved_seen: int = 0
    changes_base: str | None = None  # where the feed answers the changes query (detected)
    changes_off_until: datetime | None = None  # a refused changes query is not asked till then
    changes_error: str | None = None  # why the changes query was turned off
    changes_since: datetime | None = None  # an unfinished changes query resumes from here
    total_results: int | None = None  # openSearch:totalResults page 1 last stated
    page1_shortfall: int | None = None  # entries page 1 lacked for its stated page size
    full_crawl_reason: str | None = None  # set: the next poll walks the whole chain
    publisher_interval_s: float | None = None  # the feed's stated cadence (ttl, sy:*)
    publisher_interval_why: str | None = None
    # The fencing token of the lease this crawl holds (the row a lease's update returned carries
    # it, the syncer sets it on any other): every write of the crawl is refused once the token
    # moved on. None on a plain read of the row.
    fence: int | None = None


@dataclass(frozen=True, slots=True)
class FeedLease:
    """A feed leased to one worker until `until`; `token` grows with every acquisition, so a
    write fenced with an older one is refused (see Store.claim_feeds)."""

    feed_id: int
    name: str
    token: int
    until: datetime
    # The feed's row as the lease's own transaction left it. Every column a crawl reads is
    # written only under the feed's lease (crawls, pushes) or with its URL (registration), so
    # until this lease ends it is what a fresh read would give, for the URL it names: the
    # crawl need not read the row again (one query per poll).
    state: FeedState | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PageState:
    """A page's row as the crawl reads it: validators for the next conditional GET and what
    the page listed when last parsed."""

    validators: Validators
    next_url: str | None  # where the walk continues: rel="next", else rel="prev-archive"
    entry_ids: tuple[str, ...]  # the ids the page listed when last parsed
    archive: bool  # an RFC 5005 archive document: immutable, never fetched again
    total_results: int | None = None  # openSearch:totalResults the page stated when parsed


@dataclass(frozen=True)
class ChangesOutcome:
    """What a poll learnt about a feed's changes query, recorded with its outcome."""

    base: str | None  # where the feed answers it (None: it does not)
    since: datetime | None  # pinned: the next query resumes here (None: from the store's newest)
    off_until: datetime | None = None
    error: str | None = None
    keep_pages: tuple[str, ...] | None = None  # changes-page URLs to keep (None: keep all)


@dataclass(frozen=True, slots=True)
class ScheduleSummary:
    """The schedule in three figures (the daemon's status line): feeds due now, feeds failing
    (not gone), and when the most overdue feed was due (None: none has a due time)."""

    due: int
    backing_off: int
    oldest_due_at: datetime | None

    def lag_s(self, now: datetime) -> float:
        """How late the most overdue feed is: 0 when every feed is polled on time."""
        if self.oldest_due_at is None:
            return 0.0
        return max((now - self.oldest_due_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class UnchangedPage:
    """A page a crawl found unchanged (a 304, or the stored bytes again): its validators (a 304
    may carry new ones) and fetch time, refreshed when the crawl's outcome is recorded, in the
    same transaction, so a poll that meets only 304s writes once."""

    url: str
    etag: str | None
    last_modified: str | None
    fetched_at: datetime


@dataclass(frozen=True)
class CrawlOutcome:
    """How a crawl ended, as recorded on the feed row."""

    outcome: str  # ok | not_modified | error | gone | throttled
    error: str | None
    next_due_at: datetime
    consecutive_errors: int
    full: bool  # a full crawl that completed
    completed: bool  # reached the end of the chain (or max_pages) without error
    retry_after_until: datetime | None = None
    title: str | None = None
    move: MoveState | None = None  # None: the first page was not fetched, keep what is known
    changes: ChangesOutcome | None = None  # None: the poll did not touch the changes query
    next_due_reason: str | None = None
    counted: tuple[int | None, int | None] | None = None  # page 1's (total, shortfall), if parsed
    full_crawl_reason: str | None = None  # ask for a full crawl at the next poll
    publisher: tuple[float | None, str | None] | None = None  # page 1's stated cadence, if parsed
    unchanged_pages: tuple[UnchangedPage, ...] = ()


# ---------------------------------------------------------------- what a commit writes


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """One entry to store, with the event it raises (None: stored silently, a hash-only update
    past the cap) and the sinks that want that event."""

    change: Change
    event: EventDraft | None
    sinks: tuple[str, ...] = ()
    key: str | None = None  # the entry's parse key (parse.FastPage), stored with it


@dataclass(frozen=True, slots=True)
class EntryDeletion:
    """One entry to mark deleted, with its event and the sinks that want it."""

    deletion: Deletion
    event: EventDraft
    sinks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PageCommit:
    """Everything one parsed page writes, in one transaction: the page's row, each entry with its
    event and deliveries, and the deletions it proves. Events get their `seq` in this order:
    `writes` first, then `deletions`. A `partial` page (a changes query's, a WebSub push) is no
    step of a crawl: it does not mark the crawl incomplete and proves no archive."""

    feed_id: int
    result: FetchResult
    page: ParsedPage
    next_url: str | None
    now: datetime
    writes: tuple[EntryWrite, ...] = ()
    deletions: tuple[EntryDeletion, ...] = ()
    partial: bool = False
    fence: int | None = None  # the crawl's lease token: refused (LeaseLost) once it moved on
    # (entry id, parse key) of entries read again and found as stored, to the byte: their key
    # moves to this reading's (after a parser upgrade, a new page URL), and the next is skipped.
    rekeyed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PresenceCommit:
    """After a complete full crawl: the entries it listed (`seen`), those it missed once more
    (`missing`) and the deletions the evidence condemns, in one transaction."""

    feed_id: int
    now: datetime
    seen: frozenset[str] = frozenset()
    missing: tuple[str, ...] = ()
    deletions: tuple[EntryDeletion, ...] = ()
    fence: int | None = None  # as PageCommit's


# ---------------------------------------------------------------- the outbox


# Not frozen: a claim makes hundreds, and a frozen dataclass sets each field through
# object.__setattr__ (0.41 against 0.09 us each). Nothing changes one after it is made.
@dataclass(slots=True)
class DueDelivery:
    """A delivery claimed for sending, with the event it carries."""

    id: int
    attempts: int
    event: OutboundEvent
    sink: str = ""
    leased_until: datetime | None = None  # the lease this process holds on it, if any


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What to write for a finished attempt: the deliveries it covered and what became of them
    (several: a batch that succeeded as a whole). `next_attempt_at=None` on a failure means dead.
    """

    delivery_ids: tuple[int, ...]
    outcome: SendOutcome
    next_attempt_at: datetime | None
    attempted_at: datetime

    @property
    def state(self) -> DeliveryState:
        if self.outcome.ok:
            return DeliveryState.DELIVERED
        return DeliveryState.DEAD if self.next_attempt_at is None else DeliveryState.FAILED


@dataclass(frozen=True)
class Claim:
    """What to lease: up to `limit` deliveries of `sink` claimable at `now` (see `claim_due`)."""

    sink: str
    now: datetime
    limit: int
    lease_until: datetime
    probe: bool = False
    strict: bool = False
    owner: str | None = None  # the claiming worker: its leases are reclaimed once it is gone


@dataclass(frozen=True)
class SinkRow:
    """A sink's persisted state; defaults when it has no row yet."""

    name: str
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    config_hash: str | None = None  # the sink's config when a 410 disabled it
    paused_until: datetime | None = None
    pause_level: int = 0
    pause_reason: str | None = None
    resume_requested_at: str | None = None  # bumped by operator commands; daemons watch it


# ---------------------------------------------------------------- websub


@dataclass(frozen=True)
class Subscription:
    """A WebSub subscription (one callback id), as its row says."""

    id: str
    feed_id: int
    feed_name: str
    hub: str
    topic: str
    secret: str | None
    state: str  # subscribing, renewing, active, denied, unsubscribing, unsubscribed (failed: old)
    reason: str | None = None
    callback: str | None = None  # the URL the hub was given
    lease_seconds: int | None = None
    requested_at: datetime | None = None
    expires_at: datetime | None = None
    verified_at: datetime | None = None  # the first verification
    renew_at: datetime | None = None
    retry_at: datetime | None = None
    attempts: int = 0  # requests sent and not verified (the back-off)
    last_push_at: datetime | None = None
    pushes: int = 0
    rejected: int = 0
    unreliable_at: datetime | None = None
    unreliable_reason: str | None = None
