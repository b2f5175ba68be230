"""The values of the store's operator reads and maintenance: the deliveries listing and replay,
the entries and events listings, search, exports, prune and vacuum. Split from
`syncd.storage.values` so that a crawl (a pass of 304s above all) never creates these classes
(each frozen dataclass costs ~0.4 ms at import): the store's modules import them where they
build them, and under TYPE_CHECKING for their signatures. Plain frozen data, no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from syncd.model import Link, Person

# ---------------------------------------------------------------- deliveries (operators)


@dataclass(frozen=True)
class DeliveryInfo:
    """One delivery as operators see it (`syncd deliveries list`)."""

    id: int
    sink: str
    event_seq: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    created_at: str | None
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    delivered_at: str | None


@dataclass(frozen=True)
class AttemptInfo:
    """One row of the delivery log."""

    id: int
    delivery_id: int
    attempted_at: str
    result: str | None
    status: int | None
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True)
class ReplayCounts:
    """What a replay queued for a sink (`syncd deliveries replay`)."""

    created: int  # events the sink had no delivery for (filtered out, skipped initially, …)
    requeued: int  # existing deliveries, delivered or not, queued again


# ---------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class Policy:
    """What a prune keeps (the store's `keep_*` settings); None keeps everything of its kind."""

    keep_versions: int | None = None  # newest versions kept per entry; None: all
    keep_events_s: float | None = None  # events older than this may go; None: all kept
    keep_deliveries_s: float | None = None  # delivered deliveries older than this may go
    # Rows deleted per transaction: a prune of a large backlog never holds the writers long.
    batch: int = 500


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune deleted (or would delete, on a dry run), per table."""

    versions: int
    events: int
    deliveries: int
    attempts: int
    events_through: int  # events up to this seq are gone (0: none ever were)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class VacuumReport:
    """The store's size before and after a vacuum."""

    before_bytes: int  # the store's size before: the SQLite file, or syncd's PostgreSQL tables
    after_bytes: int
    note: str | None = None  # what the operator should know (how to switch an old store)

    def as_dict(self) -> dict[str, int | str | None]:
        return asdict(self)


# ---------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of the event log (the pull API's `/events`), and where the next one starts."""

    events: list[dict[str, Any]]  # the envelopes, exactly as sinks receive them
    next: int  # pass as `after` to continue


@dataclass(frozen=True, slots=True)
class EntryKey:
    """Where an entry sits in the newest-first listing: its published (or first seen) instant as
    stored, then feed and entry id to break ties. Entries after it are older."""

    sort_at: str
    feed_id: int
    entry_id: str


@dataclass(frozen=True, slots=True)
class EntryQuery:
    """What the entries listing asks for (the pull API's `/entries`)."""

    feed: str | None = None
    q: str | None = None
    since: datetime | None = None
    include_deleted: bool = False
    limit: int = 50
    after: EntryKey | None = None  # continue after this entry (keyset: no skips, no repeats)


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of the newest-first entries listing, and where the next one starts."""

    entries: list[dict[str, Any]]
    next: EntryKey | None  # the last entry's key when more may follow


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A full-text search over entries (`syncd search`, the pull API's `/search`)."""

    q: str
    feed: str | None = None
    since: datetime | None = None
    limit: int = 20
    snippet_tokens: int = 16


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the entry's headline fields and a snippet around the match."""

    feed: str
    entry_id: str
    title: str | None
    link: str | None
    published: str | None
    updated: str | None
    snippet: str
    rank: float  # lower is better

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed": self.feed,
            "entry_id": self.entry_id,
            "title": self.title,
            "link": self.link,
            "published": self.published,
            "updated": self.updated,
            "snippet": self.snippet,
            "rank": round(self.rank, 4),
        }


# ---------------------------------------------------------------- export


@dataclass(frozen=True, slots=True)
class FeedHead:
    """A feed as an export's header presents it."""

    name: str
    url: str
    title: str | None
    newest_updated: datetime | None  # the newest `updated` of its live entries


@dataclass(frozen=True, slots=True)
class ArchivedEntry:
    """An entry as the store holds it now (its newest version), with its bookkeeping."""

    entry_id: str
    title: str | None
    link: str | None
    published: datetime | None
    updated: datetime | None
    authors: tuple[Person, ...]
    categories: tuple[str, ...]
    summary: str | None
    content: str | None
    links: tuple[Link, ...]
    base_url: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    revision: int
    deleted_at: datetime | None
    deleted_reason: str | None
