"""The pure change decision: parsed entries + what the store knows ─► changes (DESIGN §4.4–§4.6).

No I/O, no clock: everything the decision depends on is an argument, so every rule is tested by
table. Rules:
- a new id is `entry.created` (so is an id whose stored row was deleted: it came back);
- a known id whose `updated` instant differs, in either direction, is `entry.updated`;
- a known id with the same `updated` but another content hash is `entry.updated` (hash-only), unless
  the entry already had `hash_only_cap` hash-only updates in a row: then the new revision is stored
  silently, so a feed that embeds the time in its content cannot flood the sinks;
- anything else (a comment count, a feed-level `<updated>` bump) is no change.
Duplicates of an id within a crawl collapse to the copy with the latest `updated`.

Deletions (§4.7) are decided only on evidence: an RFC 6721 tombstone for a live entry, an
`fh:complete` document that no longer lists it, absence from a complete full crawl that listed
exactly the `openSearch:totalResults` every page stated, or absence from `ABSENCE_THRESHOLD`
consecutive complete full crawls. Paged feeds shift while being read, so a single absence proves
nothing unless the feed's own count vouches for the crawl.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime

from syncd.model import Change, ChangeKind, Deletion, ParsedEntry, StoredEntry, Tombstone

DEFAULT_HASH_ONLY_CAP = 5
ABSENCE_THRESHOLD = 2

# Fields compared to explain an update; "links" covers everything else the hash sees.
COMPARED_FIELDS = (
    "title",
    "link",
    "published",
    "updated",
    "authors",
    "categories",
    "summary",
    "content",
)


@dataclass(frozen=True, slots=True)
class PageDiff:
    """Changes that emit events, and changes stored without one (hash-only, over the cap)."""

    changes: tuple[Change, ...]
    silent: tuple[Change, ...]


def collapse_duplicates(entries: Iterable[ParsedEntry]) -> list[ParsedEntry]:
    """One copy per id: the latest `updated` wins (ties: the later copy); first-seen order."""
    chosen: dict[str, ParsedEntry] = {}
    for e in entries:
        prior = chosen.get(e.entry_id)
        if prior is None or not _older(e.updated, prior.updated):
            chosen[e.entry_id] = e
    return list(chosen.values())


def _older(a: datetime | None, b: datetime | None) -> bool:
    """Whether instant a is strictly older than b (a missing instant is older than any)."""
    if a is None:
        return b is not None
    return b is not None and a < b


def changed_fields(entry: ParsedEntry, stored: StoredEntry) -> tuple[str, ...]:
    fields = [f for f in COMPARED_FIELDS if getattr(entry, f) != getattr(stored, f)]
    if not fields and entry.content_hash != stored.content_hash:
        fields.append("links")
    return tuple(fields)


def stored_as_read(entry: ParsedEntry, stored: StoredEntry) -> bool:
    """Whether `stored` holds `entry` exactly as read: every field of it (a row read with its
    parsed columns, as known_entries reads it, and not deleted)."""
    return stored.deleted_at is None and (
        entry.entry_id,
        entry.id_source,
        entry.title,
        entry.link,
        entry.published,
        entry.updated,
        entry.authors,
        entry.categories,
        entry.summary,
        entry.content,
        entry.links,
        entry.base_url,
        entry.content_hash,
    ) == (
        stored.entry_id,
        stored.id_source,
        stored.title,
        stored.link,
        stored.published,
        stored.updated,
        stored.authors,
        stored.categories,
        stored.summary,
        stored.content,
        stored.links,
        stored.base_url,
        stored.content_hash,
    )


def diff_page(
    entries: Iterable[ParsedEntry],
    known: Mapping[str, StoredEntry],
    crawl_seen: MutableMapping[str, datetime | None],
    *,
    hash_only_cap: int = DEFAULT_HASH_ONLY_CAP,
) -> PageDiff:
    """Decide what changed on one page. `crawl_seen` (id → updated of the copy already handled in
    this crawl) is updated in place, so a copy that shifted onto a later page is not seen twice."""
    changes: list[Change] = []
    silent: list[Change] = []
    for entry in collapse_duplicates(entries):
        if entry.entry_id in crawl_seen and not _older(crawl_seen[entry.entry_id], entry.updated):
            continue  # an equal or older copy of one this crawl already handled
        crawl_seen[entry.entry_id] = entry.updated
        stored = known.get(entry.entry_id)
        if stored is None or stored.deleted_at is not None:
            changes.append(Change(ChangeKind.CREATED, entry, stored))
            continue
        if entry.updated != stored.updated:
            changes.append(Change(ChangeKind.UPDATED, entry, stored, changed_fields(entry, stored)))
        elif entry.content_hash != stored.content_hash:
            change = Change(
                ChangeKind.UPDATED, entry, stored, changed_fields(entry, stored), hash_only=True
            )
            (silent if stored.hash_only_updates >= hash_only_cap else changes).append(change)
    return PageDiff(tuple(changes), tuple(silent))


def tombstone_deletions(
    tombstones: Iterable[Tombstone],
    known: Mapping[str, StoredEntry],
    listed: Collection[str],
) -> tuple[Deletion, ...]:
    """Live entries the publisher declared deleted. A tombstone for an id the same document
    still lists as an entry is contradictory and ignored: the entry's presence wins."""
    out: dict[str, Deletion] = {}
    for t in tombstones:
        stored = known.get(t.ref)
        if stored is not None and stored.deleted_at is None and t.ref not in listed:
            out.setdefault(t.ref, Deletion(stored, "tombstone"))
    return tuple(out.values())


def complete_feed_deletions(
    live: Mapping[str, StoredEntry], listed: Collection[str]
) -> tuple[Deletion, ...]:
    """An `fh:complete` document lists every entry: a live one it omits is deleted."""
    return tuple(Deletion(e, "complete-feed") for i, e in live.items() if i not in listed)


@dataclass(frozen=True, slots=True)
class AbsenceDecision:
    """What a complete full crawl's absences prove: entries missed once more, and deletions."""

    missing: tuple[str, ...]  # absent this time: one more absence counted
    deletions: tuple[Deletion, ...]  # absent for the threshold-th time in a row: deleted


def absence_deletions(
    live: Mapping[str, StoredEntry],
    seen: Collection[str],
    *,
    threshold: int = ABSENCE_THRESHOLD,
    stated_total: int | None = None,
) -> AbsenceDecision:
    """After a *complete* full crawl (reached the end, every page well-formed): what its
    absences prove. The caller must not call this for a partial, failed or malformed crawl.

    `stated_total` is the openSearch:totalResults every page of the crawl stated (None when
    they disagreed or some page stated none). When the crawl listed exactly that many distinct
    ids, the feed has counted itself: what it did not list is deleted now."""
    missing = tuple(i for i in live if i not in seen)
    if stated_total is not None and len(set(seen)) == stated_total:
        return AbsenceDecision(
            missing, tuple(Deletion(live[i], "counted-complete-crawl") for i in missing)
        )
    deletions = tuple(
        Deletion(live[i], "absent-from-complete-crawls")
        for i in missing
        if live[i].missing_crawls + 1 >= threshold
    )
    return AbsenceDecision(missing, deletions)
