"""The pure mapping from changes to event envelopes (DESIGN §5).

An event id is a hash of what the change *is* — feed, entry id, kind, the instant and content hash
it moved to, and the state it moved from — so detecting the same change twice (a retried crawl, a
restart after a crash) yields the same id and receivers can deduplicate. No I/O, no clock: `now` is
an argument. The store adds `seq` when it writes the event.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from syncd.model import (
    Change,
    ChangeKind,
    Deletion,
    EventDraft,
    FeedRef,
    ParsedEntry,
    Person,
    StoredEntry,
)
from syncd.timestamps import to_text


def _person(p: Person) -> dict[str, str | None]:
    return {"name": p.name, "email": p.email, "uri": p.uri}


def _id(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"evt_{digest[:32]}"


def event_id(feed_name: str, change: Change) -> str:
    """The id of a create/update. `previous.revision` tells apart two changes that look alike
    (deleted and re-created twice, an A→B→A revert); a change detected twice sees the same
    stored state, so it gets the same id."""
    prev = change.previous
    return _id(
        feed_name,
        change.entry.entry_id,
        str(change.kind),
        to_text(change.entry.updated) or "",
        change.entry.content_hash,
        (to_text(prev.updated) or "") if prev else "",
        prev.content_hash if prev else "",
        str(prev.revision) if prev else "0",
    )


def deletion_event_id(feed_name: str, deletion: Deletion) -> str:
    e = deletion.entry
    return _id(
        feed_name,
        e.entry_id,
        str(ChangeKind.DELETED),
        to_text(e.updated) or "",
        e.content_hash,
        str(e.revision),
    )


def entry_payload(e: ParsedEntry | StoredEntry) -> dict[str, Any]:
    return {
        "id": e.entry_id,
        "title": e.title,
        "link": e.link,
        "published": to_text(e.published),
        "updated": to_text(e.updated),
        "authors": [_person(p) for p in e.authors],
        "categories": list(e.categories),
        "summary": e.summary,
        "content": e.content,
        "base_url": e.base_url,
    }


def _data(feed: FeedRef, entry: ParsedEntry | StoredEntry, initial: bool) -> dict[str, Any]:
    """What every event carries: whether it is backfill, its feed, and the entry."""
    return {
        "initial": initial,
        "feed": {"name": feed.name, "url": feed.url, "title": feed.title},
        "entry": entry_payload(entry),
    }


def build_event(change: Change, feed: FeedRef, *, initial: bool, now: datetime) -> EventDraft:
    data = _data(feed, change.entry, initial)
    if change.kind is ChangeKind.UPDATED and change.previous is not None:
        prev = change.previous
        data["previous"] = {"updated": to_text(prev.updated), "content_hash": prev.content_hash}
        data["changed_fields"] = list(change.changed_fields)
        if prev.updated and change.entry.updated and change.entry.updated < prev.updated:
            # Publishers do move <updated> back (a reverted edit); say so rather than hide it.
            data["updated_backwards"] = True
    return EventDraft(
        event_id(feed.name, change), change.kind, now, change.entry.entry_id, initial, data
    )


def build_deletion_event(
    deletion: Deletion, feed: FeedRef, *, initial: bool, now: datetime
) -> EventDraft:
    """`entry.deleted` carries the entry as last stored, and the evidence for the deletion."""
    data = {**_data(feed, deletion.entry, initial), "reason": deletion.reason}
    eid = deletion_event_id(feed.name, deletion)
    return EventDraft(eid, ChangeKind.DELETED, now, deletion.entry.entry_id, initial, data)
