"""Table-driven tests of the pure change decision (no I/O, `now` never needed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from syncd.diff import collapse_duplicates, diff_page
from syncd.model import ChangeKind, ParsedEntry, Person, StoredEntry

T0 = datetime(2017, 7, 21, 19, 45, 12, 144000, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def entry(
    eid: str = "a", *, updated: datetime | None = T0, h: str = "h1", **kw: object
) -> ParsedEntry:
    base = ParsedEntry(
        entry_id=eid,
        id_source="id",
        title="Title",
        link="http://x/a",
        published=T0 - timedelta(days=1),
        updated=updated,
        authors=(Person("Research Blog"),),
        categories=("ML",),
        summary=None,
        content="<p>body</p>",
        links=(),
        base_url=None,
        content_hash=h,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def stored(e: ParsedEntry, **kw: object) -> StoredEntry:
    base = StoredEntry(
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
    )
    return replace(base, **kw)  # type: ignore[arg-type]


CASES = [
    # (name, page entry, stored or None, expected kind or None, changed fields, hash_only)
    ("new id", entry(), None, ChangeKind.CREATED, (), False),
    ("identical", entry(), stored(entry()), None, (), False),
    (
        "updated +1ms",
        entry(updated=T0 + MS),
        stored(entry()),
        ChangeKind.UPDATED,
        ("updated",),
        False,
    ),
    (
        "updated -1ms (backwards)",
        entry(updated=T0 - MS),
        stored(entry()),
        ChangeKind.UPDATED,
        ("updated",),
        False,
    ),
    (
        "content edit with bump",
        entry(updated=T0 + MS, content="<p>new</p>", h="h2"),
        stored(entry()),
        ChangeKind.UPDATED,
        ("updated", "content"),
        False,
    ),
    (
        "content edit without bump",
        entry(content="<p>new</p>", h="h2"),
        stored(entry()),
        ChangeKind.UPDATED,
        ("content",),
        True,
    ),
    (
        "hash moved by links only",
        entry(h="h2"),
        stored(entry()),
        ChangeKind.UPDATED,
        ("links",),
        True,
    ),
    (
        "no updated on either side, same hash",
        entry(updated=None),
        stored(entry(updated=None)),
        None,
        (),
        False,
    ),
    (
        "updated appears",
        entry(),
        stored(entry(updated=None)),
        ChangeKind.UPDATED,
        ("updated",),
        False,
    ),
    (
        "deleted entry comes back",
        entry(),
        stored(entry(), deleted_at=T0),
        ChangeKind.CREATED,
        (),
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "new", "old", "kind", "fields", "hash_only"), CASES, ids=[c[0] for c in CASES]
)
def test_rules(name, new, old, kind, fields, hash_only) -> None:
    known = {old.entry_id: old} if old else {}
    result = diff_page([new], known, {})
    if kind is None:
        assert result.changes == () and result.silent == ()
        return
    assert len(result.changes) == 1
    change = result.changes[0]
    assert change.kind is kind
    assert change.changed_fields == fields
    assert change.hash_only is hash_only
    assert change.previous is old


def test_hash_only_updates_are_capped() -> None:
    old = stored(entry(), hash_only_updates=5)
    result = diff_page([entry(h="h9")], {"a": old}, {}, hash_only_cap=5)
    assert result.changes == ()
    assert len(result.silent) == 1 and result.silent[0].hash_only
    # Below the cap it is an event.
    result = diff_page(
        [entry(h="h9")], {"a": replace(old, hash_only_updates=4)}, {}, hash_only_cap=5
    )
    assert len(result.changes) == 1


def test_cap_does_not_apply_when_updated_moves() -> None:
    old = stored(entry(), hash_only_updates=50)
    result = diff_page([entry(updated=T0 + MS, h="h9")], {"a": old}, {}, hash_only_cap=5)
    assert len(result.changes) == 1 and not result.changes[0].hash_only


def test_duplicates_on_one_page_collapse_to_latest_updated() -> None:
    older, newer = entry(updated=T0, h="h1"), entry(updated=T0 + MS, h="h2")
    assert collapse_duplicates([newer, older]) == [newer]
    assert collapse_duplicates([older, newer]) == [newer]
    result = diff_page([older, newer], {}, {})
    assert len(result.changes) == 1 and result.changes[0].entry is newer


def test_duplicate_tie_keeps_later_document_copy() -> None:
    first, second = entry(h="h1"), entry(h="h2")
    assert collapse_duplicates([first, second]) == [second]


def test_copy_shifted_onto_a_later_page_is_not_seen_twice() -> None:
    seen: dict[str, datetime | None] = {}
    page1 = diff_page([entry("a"), entry("b")], {}, seen)
    assert len(page1.changes) == 2
    # The store now knows nothing new (the test passes no `known`), but the crawl has seen them.
    page2 = diff_page([entry("b"), entry("c")], {}, seen)
    assert [c.entry.entry_id for c in page2.changes] == ["c"]


def test_newer_copy_later_in_the_crawl_wins() -> None:
    seen: dict[str, datetime | None] = {}
    diff_page([entry("a")], {}, seen)
    later = diff_page([entry("a", updated=T0 + MS, h="h2")], {"a": stored(entry("a"))}, seen)
    assert len(later.changes) == 1 and later.changes[0].kind is ChangeKind.UPDATED
    stale = diff_page([entry("a")], {"a": stored(entry("a", updated=T0 + MS, h="h2"))}, seen)
    assert stale.changes == ()


# --- deletions: only on evidence ----------------------------------------------------------------


def test_tombstones_delete_only_live_known_unlisted_entries() -> None:
    from syncd.diff import tombstone_deletions
    from syncd.model import Tombstone

    live, gone = stored(entry("a")), stored(entry("b"), deleted_at=T0)
    known = {"a": live, "b": gone, "c": stored(entry("c"))}
    stones = [Tombstone("a"), Tombstone("a"), Tombstone("b"), Tombstone("zz"), Tombstone("c")]
    result = tombstone_deletions(stones, known, listed={"c"})
    assert [(d.entry.entry_id, d.reason) for d in result] == [("a", "tombstone")]


def test_complete_feed_deletes_what_it_omits() -> None:
    from syncd.diff import complete_feed_deletions

    live = {i: stored(entry(i)) for i in "abc"}
    result = complete_feed_deletions(live, listed={"a", "c"})
    assert [(d.entry.entry_id, d.reason) for d in result] == [("b", "complete-feed")]


@pytest.mark.parametrize(
    ("missing_before", "deleted"),
    [(0, False), (1, True), (5, True)],
    ids=["first", "second", "later"],
)
def test_absence_from_complete_crawls(missing_before: int, deleted: bool) -> None:
    from syncd.diff import absence_deletions

    live = {"a": stored(entry("a")), "b": stored(entry("b"), missing_crawls=missing_before)}
    decision = absence_deletions(live, seen={"a"})
    assert decision.missing == ("b",)
    assert [d.entry.entry_id for d in decision.deletions] == (["b"] if deleted else [])
    assert absence_deletions(live, seen={"a", "b"}).deletions == ()


def test_a_crawl_that_listed_exactly_the_stated_total_deletes_at_once() -> None:
    from syncd.diff import absence_deletions

    live = {i: stored(entry(i)) for i in "abc"}
    counted = absence_deletions(live, seen={"a", "c"}, stated_total=2)
    assert [(d.entry.entry_id, d.reason) for d in counted.deletions] == [
        ("b", "counted-complete-crawl")
    ]
    # A count the crawl does not match (the feed moved under it, or counts drafts) proves
    # nothing on its own: the two-crawl rule applies.
    assert absence_deletions(live, seen={"a", "c"}, stated_total=3).deletions == ()
    assert absence_deletions(live, seen={"a", "c"}, stated_total=None).deletions == ()
