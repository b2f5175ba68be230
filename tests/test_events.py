"""The pure change ─► envelope mapping: deterministic ids and the documented shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.events import build_event, event_id
from syncd.model import Change, ChangeKind, FeedRef
from tests.test_diff import MS, T0, entry, stored

FEED = FeedRef("google-research", "http://127.0.0.1/feed", "Google Research Blog")
NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def test_same_change_same_id_whenever_detected() -> None:
    change = Change(ChangeKind.UPDATED, entry(updated=T0 + MS), stored(entry()), ("updated",))
    a = build_event(change, FEED, initial=False, now=NOW)
    b = build_event(change, FEED, initial=False, now=NOW + timedelta(hours=3))
    assert a.id == b.id and a.id.startswith("evt_")


def test_ids_differ_by_kind_instant_hash_previous_and_feed() -> None:
    base = Change(ChangeKind.UPDATED, entry(updated=T0 + MS), stored(entry()), ("updated",))
    variants = [
        base,
        Change(ChangeKind.CREATED, entry(updated=T0 + MS), None),
        Change(ChangeKind.UPDATED, entry(updated=T0 + 2 * MS), stored(entry()), ("updated",)),
        Change(ChangeKind.UPDATED, entry(updated=T0 + MS, h="h2"), stored(entry()), ("updated",)),
        Change(ChangeKind.UPDATED, entry(updated=T0 + MS), stored(entry(h="h0")), ("updated",)),
    ]
    ids = {event_id("f", c) for c in variants} | {event_id("g", base)}
    assert len(ids) == len(variants) + 1


def test_envelope_shape_for_update() -> None:
    change = Change(ChangeKind.UPDATED, entry(updated=T0 + MS), stored(entry()), ("updated",))
    draft = build_event(change, FEED, initial=False, now=NOW)
    assert draft.type is ChangeKind.UPDATED
    data = draft.data
    assert data["feed"] == {"name": FEED.name, "url": FEED.url, "title": FEED.title}
    assert data["entry"]["updated"] == "2017-07-21T19:45:12.145Z"
    assert data["previous"]["updated"] == "2017-07-21T19:45:12.144Z"
    assert data["changed_fields"] == ["updated"]
    assert "updated_backwards" not in data


def test_backwards_update_is_flagged() -> None:
    change = Change(ChangeKind.UPDATED, entry(updated=T0 - MS), stored(entry()), ("updated",))
    assert build_event(change, FEED, initial=False, now=NOW).data["updated_backwards"] is True


def test_created_has_no_previous() -> None:
    draft = build_event(Change(ChangeKind.CREATED, entry(), None), FEED, initial=True, now=NOW)
    assert "previous" not in draft.data and draft.data["initial"] is True
