"""How the store's values become rows and rows become values, the same for every backend: the
columns an entry is written with, a feed row read as a `FeedState`, how
instants and JSON are written as text, and the column lists both backends select. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from syncd.errors import StoreError
from syncd.model import Change, Link, ParsedEntry, Person, StoredEntry, Validators
from syncd.storage.values import (
    EntryDeletion,
    EntryWrite,
    FeedState,
    PageState,
    ScheduleSummary,
    SinkRow,
    Subscription,
)
from syncd.timestamps import format_timestamp, from_text, to_text
from syncd.websub import PENDING

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import ArchivedEntry, EntryPage

# The columns `StoredEntry` is read from; for the diff also the rest of the parsed entry, and
# its parse key (KNOWN_COLUMNS).
ENTRY_COLUMNS = (
    "entry_id, updated, content_hash, title, link, published, authors, categories, summary,"
    " content, deleted_at, hash_only_updates, revision, base_url, missing_crawls"
)
KNOWN_COLUMNS = f"{ENTRY_COLUMNS}, id_source, links, parse_key"
# What an entry's row holds besides the entry as parsed: with the entry as read under the row's
# parse key, all of its `StoredEntry` (`known_from_heads`).
HEAD_COLUMNS = "entry_id, parse_key, deleted_at, hash_only_updates, revision, missing_crawls"
# An entry as the pull API shows it, from entries `e` joined to feeds `f`.
ENTRY_FIELDS = (
    "f.name AS feed, e.entry_id, e.title, e.link, e.published, e.updated, e.authors,"
    " e.categories, e.summary, e.content, e.links, e.first_seen, e.last_seen, e.deleted_at,"
    " e.deleted_reason, e.revision"
)
# The pull API lists entries newest first by this, ties broken by feed and entry id (both
# backends; the keyset below continues after a given key).
ENTRY_SORT = "COALESCE(e.published, e.first_seen)"
ENTRY_ORDER = f"{ENTRY_SORT} DESC, e.feed_id, e.entry_id"
JSON_FIELDS = ("authors", "categories", "links")
# Search snippets mark the matches like this: readable in a terminal and in JSON alike.
MARK = ("[", "]")
# One delivery as operators see it (`DeliveryInfo`), from deliveries `d` joined to events `e`.
DELIVERY_COLUMNS = """d.id, d.sink, d.event_seq, e.id AS event_id, e.type AS event_type, d.state,
    d.attempts, d.created_at, d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error,
    d.delivered_at"""

# How many deliveries each sink has in each state (`Outbox.sink_summaries`), in either dialect:
# every part is read along an index that a state change leaves alone or that holds only the few
# rows it counts (all of a sink's rows by name, its queue, its dead ones); delivered is the rest.
SUMMARY_SQL = """SELECT sink, '' AS state, COUNT(*) AS n FROM deliveries GROUP BY sink
    UNION ALL SELECT sink, state, COUNT(*) AS n FROM deliveries
        WHERE state IN ('pending', 'failed') GROUP BY sink, state
    UNION ALL SELECT sink, 'dead' AS state, COUNT(*) AS n FROM deliveries
        WHERE state = 'dead' GROUP BY sink"""


def summaries(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """`SUMMARY_SQL`'s rows as {sink: {state: count}}, states without deliveries left out."""
    out: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for r in rows:
        if r["state"] == "":
            totals[r["sink"]] = int(r["n"])
        else:
            out.setdefault(r["sink"], {})[r["state"]] = int(r["n"])
    for sink, total in totals.items():
        counts = out.setdefault(sink, {})
        delivered = total - sum(counts.values())
        if delivered:
            counts["delivered"] = delivered
    return out


def reclaim_query(now: datetime, everyone: bool) -> tuple[str, dict[str, Any]]:
    """`Outbox.reclaim_leases` in either dialect (`%(now)s`; SQLite renames it): the live
    delivery leases of workers with no live `workers` row (or of no named worker), or all."""
    sql = "UPDATE deliveries SET leased_until = NULL, leased_by = NULL WHERE leased_until > %(now)s"
    if not everyone:
        sql += (
            " AND (leased_by IS NULL OR leased_by NOT IN"
            " (SELECT id FROM workers WHERE expires_at > %(wnow)s))"
        )
    return sql, {"now": to_text(now), "wnow": ms(now)}


def ms(dt: datetime | None) -> str | None:
    """Bookkeeping instants (next due, last fetch) at a fixed millisecond precision, so that text
    comparison is instant order: "…12.5Z" would sort after "…12.123456Z"."""
    if dt is None:
        return None
    return format_timestamp(dt.replace(microsecond=dt.microsecond // 1000 * 1000))


def dump(value: Any) -> str:
    """Compact JSON, non-ASCII kept: `json.dumps(value, ensure_ascii=False, separators=(",",
    ":"))`. That is `JSONEncoder(…).encode(value)` with these options, which for anything but
    a string builds a new C encoder on every call (with a dict of the objects it is inside of,
    to report a circular reference) and joins its chunks. Here one C encoder, built with the
    same options, serves every call: the text is the same (the store never dumps a circular
    value), and a short list costs a third. A string goes straight to the string encoder, as
    `encode` does it."""
    if type(value) is str:
        return _STRING(value)
    return "".join(_CHUNKS(value, False))


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_STRING = json.encoder.encode_basestring
# Untyped in typeshed; None on a Python without json's C accelerator.
_C_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_CHUNKS: Callable[[Any, bool], Iterable[str]]
if _C_ENCODER is not None:
    # No markers (None): nothing to remember between calls, so the encoder can be shared.
    _CHUNKS = _C_ENCODER(
        None, _ENCODER.default, _STRING, None, _ENCODER.key_separator,
        _ENCODER.item_separator, _ENCODER.sort_keys, _ENCODER.skipkeys, _ENCODER.allow_nan,
    )  # fmt: skip
else:  # the pure-Python encoder, as json.dumps would use it there
    _CHUNKS = _ENCODER.iterencode


def person_dict(p: Person) -> dict[str, str | None]:
    return {"name": p.name, "email": p.email, "uri": p.uri}


def link_dict(link: Link) -> dict[str, str | None]:
    return {
        "href": link.href,
        "rel": link.rel,
        "type": link.type,
        "title": link.title,
        "length": link.length,
    }


# The `entries` columns `entry_values` sets, in its order.
ENTRY_VALUE_COLUMNS = (
    "feed_id", "entry_id", "id_source", "title", "link", "published", "updated", "authors",
    "categories", "summary", "content", "links", "base_url", "content_hash",
    "hash_only_updates", "first_seen", "last_seen", "parse_key",
)  # fmt: skip
# The columns a `ParsedEntry` is read back from (`ParsedEntryReader`), and the key it was written
# with. Every one of them is written by `entry_values`, and only there.
PARSED_COLUMNS = (
    "parse_key, entry_id, id_source, title, link, published, updated, authors, categories,"
    " summary, content, links, base_url, content_hash"
)
# What an upsert of them leaves as it was on an existing row.
_ENTRY_KEPT_COLUMNS = frozenset({"feed_id", "entry_id", "first_seen"})


def entry_upsert(param: Callable[[str], str], revision: str) -> str:
    """The statement writing `entry_values` as a new entry or over the stored one (undeleted,
    present, its revision moved on), with parameters written by `param` and the stored row's
    revision as the backend names it. Built once per backend, not per entry."""
    updates = ", ".join(
        f"{c} = excluded.{c}" for c in ENTRY_VALUE_COLUMNS if c not in _ENTRY_KEPT_COLUMNS
    )
    return (
        f"INSERT INTO entries ({', '.join(ENTRY_VALUE_COLUMNS)}, revision)"
        f" VALUES ({', '.join(param(c) for c in ENTRY_VALUE_COLUMNS)}, 1)"
        f" ON CONFLICT (feed_id, entry_id) DO UPDATE SET {updates}, deleted_at = NULL,"
        f" deleted_reason = NULL, missing_crawls = 0, revision = {revision} + 1"
    )


def entry_values(
    feed_id: int, change: Change, now_s: str | None, key: str | None = None
) -> dict[str, Any]:
    """The `entries` columns `change` writes (ENTRY_VALUE_COLUMNS; first_seen is kept on an
    existing row), with the entry's parse key (None: read by the feedparser path)."""
    e = change.entry
    hash_only = (
        (change.previous.hash_only_updates + 1) if change.hash_only and change.previous else 0
    )
    return {
        "feed_id": feed_id,
        "entry_id": e.entry_id,
        "id_source": e.id_source,
        "title": e.title,
        "link": e.link,
        "published": to_text(e.published),
        "updated": to_text(e.updated),
        "authors": dump([person_dict(p) for p in e.authors]),
        "categories": dump(list(e.categories)),
        "summary": e.summary,
        "content": e.content,
        "links": dump([link_dict(link) for link in e.links]),
        "base_url": e.base_url,
        "content_hash": e.content_hash,
        "hash_only_updates": hash_only,
        "first_seen": now_s,
        "last_seen": now_s,
        "parse_key": key,
    }


def text_changed(change: Change) -> bool:
    """The entry's indexed text (title, summary, content) differs from what the index holds: a
    hash-only update keeps its index row."""
    e, before = change.entry, change.previous
    return (
        before is None
        or before.deleted_at is not None
        or (before.title, before.summary, before.content) != (e.title, e.summary, e.content)
    )


def search_stale(writes: Iterable[EntryWrite], deletions: Iterable[EntryDeletion]) -> list[str]:
    """The entries whose index row a commit leaves stale, each once: text changed, or deleted."""
    changed = (w.change.entry.entry_id for w in writes if text_changed(w.change))
    return list(dict.fromkeys([*changed, *(d.deletion.entry.entry_id for d in deletions)]))


def as_stored_entry(r: Mapping[str, Any]) -> StoredEntry:
    return StoredEntry(
        entry_id=r["entry_id"],
        updated=from_text(r["updated"]),
        content_hash=r["content_hash"],
        title=r["title"],
        link=r["link"],
        published=from_text(r["published"]),
        authors=tuple(Person(**p) for p in json.loads(r["authors"] or "[]")),
        categories=tuple(json.loads(r["categories"] or "[]")),
        summary=r["summary"],
        content=r["content"],
        deleted_at=from_text(r["deleted_at"]),
        hash_only_updates=r["hash_only_updates"] or 0,
        revision=r["revision"] or 0,
        base_url=r["base_url"],
        missing_crawls=r["missing_crawls"] or 0,
        id_source=_optional(r, "id_source"),
        links=_links(_optional(r, "links")),
        parse_key=_optional(r, "parse_key"),
    )


def known_from_heads(
    heads: Iterable[Mapping[str, Any]], as_read: Mapping[str, ParsedEntry]
) -> tuple[dict[str, StoredEntry], list[str]]:
    """The `StoredEntry` of each row of HEAD_COLUMNS whose parse key names an entry as read
    (`as_read`, by key), and the ids of the other rows, to be read in full (`as_stored_entry`
    of KNOWN_COLUMNS). Equal to that full reading: a row stored with a key holds the entry
    that reading parsed to, field for field (it was written from it by `entry_values`, or
    re-keyed only when equal to it, parse.FastPage), and a key names one reading. So the
    diff of an edited page decodes only the entries that may have changed."""
    found: dict[str, StoredEntry] = {}
    rest: list[str] = []
    for r in heads:
        key = r["parse_key"]
        e = as_read.get(key) if key is not None else None
        if e is None or e.entry_id != r["entry_id"]:
            rest.append(r["entry_id"])
            continue
        found[e.entry_id] = StoredEntry(
            entry_id=e.entry_id,
            updated=e.updated,
            content_hash=e.content_hash,
            title=e.title,
            link=e.link,
            published=e.published,
            authors=e.authors,
            categories=e.categories,
            summary=e.summary,
            content=e.content,
            deleted_at=from_text(r["deleted_at"]),
            hash_only_updates=r["hash_only_updates"] or 0,
            revision=r["revision"] or 0,
            base_url=e.base_url,
            missing_crawls=r["missing_crawls"] or 0,
            id_source=e.id_source,
            links=e.links,
            parse_key=key,
        )
    return found, rest


def _optional(r: Mapping[str, Any], column: str) -> Any:
    """A column only some reads select (KNOWN_COLUMNS), None where not selected. A
    `sqlite3.Row` has no `get` and says IndexError."""
    try:
        return r[column]
    except (KeyError, IndexError):
        return None


def _links(text: str | None) -> tuple[Link, ...] | None:
    return None if text is None else tuple(Link(**link) for link in json.loads(text))


def _person(d: dict[str, Any]) -> Person:
    return Person(**d)


def _link(d: dict[str, Any]) -> Link:
    return Link(**d)


# Decoders that build each JSON object of the list as it is parsed (object_hook, called from
# C), instead of a Python loop over the decoded dicts: `json.loads` of the same text, each dict
# then given to Person(**) or Link(**). The texts hold flat objects only (`person_dict`,
# `link_dict`), so the hook sees exactly those dicts. Stateless, so shared.
_PERSONS = json.JSONDecoder(object_hook=_person)
_LINKS = json.JSONDecoder(object_hook=_link)


class ParsedEntryReader:
    """The `ParsedEntry` each row was written from (`entry_values`; every field round-trips),
    for the rows of one read (the edit skip's by-key lookup of a page's
    known entries, `by_key`): a JSON text that repeats among them (a feed's one author, an
    empty list, a shared category set) is decoded once. What it decodes to is frozen (tuples of
    frozen Person and Link), so rows sharing it give entries equal, field for field, to a
    decoding of each. Not to be kept across reads: its memos grow with every distinct text."""

    __slots__ = ("_authors", "_categories", "_links")

    def __init__(self) -> None:
        self._authors: dict[str, tuple[Person, ...]] = {}
        self._categories: dict[str, tuple[str, ...]] = {}
        self._links: dict[str, tuple[Link, ...]] = {}

    def entry(self, r: Mapping[str, Any]) -> ParsedEntry:
        authors_text, categories_text, links_text = r["authors"], r["categories"], r["links"]
        authors = self._authors.get(authors_text)
        if authors is None:
            authors = self._authors[authors_text] = tuple(_PERSONS.decode(authors_text))
        categories = self._categories.get(categories_text)
        if categories is None:
            categories = self._categories[categories_text] = tuple(json.loads(categories_text))
        links = self._links.get(links_text) if links_text is not None else ()
        if links is None:
            links = self._links[links_text] = tuple(_LINKS.decode(links_text))
        return ParsedEntry(
            entry_id=r["entry_id"],
            id_source=r["id_source"],
            title=r["title"],
            link=r["link"],
            published=from_text(r["published"]),
            updated=from_text(r["updated"]),
            authors=authors,
            categories=categories,
            summary=r["summary"],
            content=r["content"],
            links=links,
            base_url=r["base_url"],
            content_hash=r["content_hash"],
        )


def parsed_entries_by_key(rows: Iterable[Mapping[str, Any]]) -> dict[str, ParsedEntry]:
    """The `ParsedEntry` each row (PARSED_COLUMNS) was written from, by its parse key, decoding each
    distinct JSON text of the read once (`ParsedEntryReader`)."""
    reader = ParsedEntryReader()
    return {r["parse_key"]: reader.entry(r) for r in rows}


def as_feed_state(r: Mapping[str, Any], fence: int | None = None) -> FeedState:
    """A feed's row; `fence` the token of the lease whose update returned it (else None)."""
    return FeedState(
        id=r["id"],
        name=r["name"],
        url=r["url"],
        title=r["title"],
        first_synced_at=from_text(r["first_synced_at"]),
        last_fetch_at=from_text(r["last_fetch_at"]),
        last_outcome=r["last_outcome"],
        last_error=r["last_error"],
        consecutive_errors=r["consecutive_errors"] or 0,
        next_due_at=from_text(r["next_due_at"]),
        last_full_sync_at=from_text(r["last_full_sync_at"]),
        retry_after_until=from_text(r["retry_after_until"]),
        gone_at=from_text(r["gone_at"]),
        crawl_incomplete=bool(r["crawl_incomplete"]),
        adopted_url=r["adopted_url"],
        moved_to=r["moved_to"],
        moved_seen=r["moved_seen"] or 0,
        changes_base=r["changes_base"],
        changes_off_until=from_text(r["changes_off_until"]),
        changes_error=r["changes_error"],
        changes_since=from_text(r["changes_since"]),
        total_results=r["total_results"],
        page1_shortfall=r["page1_shortfall"],
        full_crawl_reason=r["full_crawl_reason"],
        publisher_interval_s=r["publisher_interval_s"],
        publisher_interval_why=r["publisher_interval_why"],
        fence=fence,
    )


def as_page_state(r: Mapping[str, Any]) -> PageState:
    return PageState(
        Validators(r["etag"], r["last_modified"], r["body_hash"]),
        r["next_url"],
        tuple(json.loads(r["entry_ids"] or "[]")),
        bool(r["archive"]),
        r["total_results"],
    )


def as_schedule_summary(r: Mapping[str, Any]) -> ScheduleSummary:
    return ScheduleSummary(
        due=int(r["due"] or 0),
        backing_off=int(r["backing_off"] or 0),
        oldest_due_at=from_text(r["oldest_due_at"]),
    )


def as_sink_row(name: str, r: Mapping[str, Any] | None) -> SinkRow:
    if r is None:
        return SinkRow(name)
    return SinkRow(
        name=name,
        disabled_at=from_text(r["disabled_at"]),
        disabled_reason=r["disabled_reason"],
        config_hash=r["config_hash"],
        paused_until=from_text(r["paused_until"]),
        pause_level=r["pause_level"] or 0,
        pause_reason=r["pause_reason"],
        resume_requested_at=r["resume_requested_at"],
    )


def resume_values(now: datetime) -> dict[str, Any]:
    """A sink's columns when an operator (or a recovered receiver) lifts its pause."""
    return {
        "paused_until": None,
        "pause_level": 0,
        "pause_reason": None,
        "resume_requested_at": to_text(now),
    }


def entries_after(param: Callable[[str], str]) -> str:
    """The condition "listed after the key in `at`, `fid`, `eid`", with parameters written by
    `param` (the backend's placeholder style)."""
    at, fid, eid = param("at"), param("fid"), param("eid")
    later = f"(e.feed_id, e.entry_id) > ({fid}, {eid})"
    return f"({ENTRY_SORT} < {at} OR ({ENTRY_SORT} = {at} AND {later}))"


def entry_page(rows: list[dict[str, Any]], limit: int) -> EntryPage:
    """Rows selected with ENTRY_FIELDS plus `sort_at` and `feed_id`, one more than `limit`, as
    a page: the entries and, when there are more, the key to continue after."""
    from syncd.storage.reports import EntryKey, EntryPage

    more = len(rows) > limit
    rows = rows[:limit]
    keys = [EntryKey(r.pop("sort_at"), r.pop("feed_id"), r["entry_id"]) for r in rows]
    return EntryPage([entry_row(r) for r in rows], keys[-1] if more else None)


def entry_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of entries (or versions) with its JSON columns decoded."""
    for key in JSON_FIELDS:
        if key in row:
            row[key] = json.loads(row[key] or "[]")
    return row


def as_archived_entry(r: Mapping[str, Any]) -> ArchivedEntry:
    from syncd.storage.reports import ArchivedEntry

    return ArchivedEntry(
        entry_id=r["entry_id"],
        title=r["title"],
        link=r["link"],
        published=from_text(r["published"]),
        updated=from_text(r["updated"]),
        authors=tuple(Person(**p) for p in json.loads(r["authors"] or "[]")),
        categories=tuple(json.loads(r["categories"] or "[]")),
        summary=r["summary"],
        content=r["content"],
        links=tuple(Link(**x) for x in json.loads(r["links"] or "[]")),
        base_url=r["base_url"],
        first_seen=from_text(r["first_seen"]),
        last_seen=from_text(r["last_seen"]),
        revision=r["revision"] or 0,
        deleted_at=from_text(r["deleted_at"]),
        deleted_reason=r["deleted_reason"],
    )


# WebSub subscriptions: the states still in play, the columns read and the ones an update may set.
OPEN_SUBSCRIPTION_STATES = (*PENDING, "active", "unsubscribing")
SUBSCRIPTION_COLUMNS = ", ".join(
    "f.name AS feed_name" if f.name == "feed_name" else f"s.{f.name}" for f in fields(Subscription)
)
_INSTANTS = frozenset(f.name for f in fields(Subscription) if f.name.endswith("_at"))
# The columns an update may set (never its identity, feed, hub, topic or secret).
SUBSCRIPTION_UPDATABLE = frozenset(
    {
        "state", "reason", "callback", "lease_seconds", "requested_at", "expires_at",
        "verified_at", "renew_at", "retry_at", "attempts", "unreliable_at", "unreliable_reason",
    }
)  # fmt: skip


def subscription_update(
    sub_id: str,
    values: Mapping[str, str | int | datetime | None],
    expect: Mapping[str, str | int | datetime | None] | None,
    *,
    mark: str,
    same: str,
) -> tuple[str, list[Any]]:
    """`Store.websub.update_subscription`'s statement in a backend's dialect (`mark`: its
    placeholder; `same`: its NULL-safe equality) and its parameters."""
    unknown = (set(values) | set(expect or {})) - SUBSCRIPTION_UPDATABLE
    if unknown:
        raise StoreError(f"websub subscription {sub_id!r}: cannot set {sorted(unknown)}")
    sets = ", ".join(f"{k} = {mark}" for k in values)
    checks = "".join(f" AND {k} {same} {mark}" for k in expect or {})
    params = [
        stamp(v) if isinstance(v, datetime) else v
        for v in (*values.values(), sub_id, *(expect or {}).values())
    ]
    return f"UPDATE websub_subscriptions SET {sets} WHERE id = {mark}{checks}", params


def stamp(dt: datetime | None) -> str | None:
    """Fixed-width UTC text, so that SQL compares these instants correctly as text."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00") if dt is not None else None


def as_subscription(row: dict[str, Any]) -> Subscription:
    values: dict[str, Any] = {
        k: (datetime.fromisoformat(v) if v else None) if k in _INSTANTS else v
        for k, v in row.items()
    }
    return Subscription(**values)
