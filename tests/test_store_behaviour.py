"""What every store backend must do, the same on each: these tests run against SQLite (a file)
and PostgreSQL (a scratch schema; skipped with one line where no server answers), through the
`Store` protocol only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from syncd.diff import diff_page
from syncd.errors import CursorGone, LeaseLost, StoreError
from syncd.events import build_deletion_event, build_event
from syncd.indexer import catch_up
from syncd.model import (
    Deletion,
    EventDraft,
    FeedRef,
    FetchResult,
    ParsedEntry,
    ParsedPage,
    Person,
    SendOutcome,
)
from syncd.storage import Store
from syncd.storage.envelopes import envelope
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.reports import EntryKey, EntryQuery, Policy, SearchQuery
from syncd.storage.sqlite import SqliteStore
from syncd.storage.values import (
    AttemptRecord,
    ChangesOutcome,
    CrawlOutcome,
    EntryDeletion,
    EntryWrite,
    PageCommit,
    PresenceCommit,
    UnchangedPage,
)
from tests.support.postgres import backend_store, scratch_schema

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
URL = "http://blog.test/feed"
REF = FeedRef("blog", URL, "Blog")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with backend_store(request.param, tmp_path) as s:
        yield s


def entry(
    n: int, *, title: str | None = None, updated: datetime = NOW, body: str | None = None
) -> ParsedEntry:
    title = title or f"Post {n}"
    body = body or f"<p>body of post {n}</p>"
    return ParsedEntry(
        entry_id=f"tag:blog.test,2026:{n}",
        id_source="id",
        title=title,
        link=f"http://blog.test/{n}",
        published=NOW - timedelta(days=n),
        updated=updated,
        authors=(),
        categories=("news",),
        summary=None,
        content=body,
        links=(),
        base_url=None,
        content_hash=hashlib.sha256(f"{title}{body}".encode()).hexdigest(),
    )


async def commit(
    store: Store,
    feed_id: int,
    entries: Sequence[ParsedEntry],
    *,
    now: datetime = NOW,
    sinks: tuple[str, ...] = ("hook",),
    url: str = URL,
) -> list[int]:
    """Diff `entries` against the store and commit them as one page, as the syncer does."""
    known = await store.known_entries(feed_id, [e.entry_id for e in entries])
    decided = diff_page(entries, known, {})
    writes = tuple(
        EntryWrite(c, build_event(c, REF, initial=False, now=now), sinks) for c in decided.changes
    )
    page = ParsedPage(url=url, feed_title="Blog", next_url=None, entries=tuple(entries))
    result = FetchResult(url, url, 200, b"", {}, '"v1"', None, "hash", 1.0)
    return await store.commit_page(PageCommit(feed_id, result, page, None, now, writes))


async def delete(store: Store, feed_id: int, entry_ids: Sequence[str], now: datetime) -> list[int]:
    known = await store.known_entries(feed_id, entry_ids)
    doomed = [Deletion(known[i], "tombstone") for i in entry_ids]
    deletions = tuple(
        EntryDeletion(d, build_deletion_event(d, REF, initial=False, now=now), ("hook",))
        for d in doomed
    )
    return await store.commit_presence(PresenceCommit(feed_id, now, deletions=deletions))


async def feed(store: Store) -> int:
    return (await store.ensure_feed("blog", URL, NOW)).id


async def test_a_page_commit_writes_entries_events_and_deliveries(store: Store) -> None:
    feed_id = await feed(store)
    seqs = await commit(store, feed_id, [entry(1), entry(2), entry(3)])
    assert seqs == sorted(seqs) and len(seqs) == 3
    known = await store.known_entries(feed_id, ["tag:blog.test,2026:2", "nope"])
    assert set(known) == {"tag:blog.test,2026:2"} and known["tag:blog.test,2026:2"].revision == 1
    page = await store.page_state(feed_id, URL)
    assert page is not None and page.validators.etag == '"v1"' and len(page.entry_ids) == 3
    assert (await store.outbox.sink_summaries()) == {"hook": {"pending": 3}}
    latest = await store.latest_events("blog", 10)
    assert [e["seq"] for e in latest] == seqs[::-1] and latest[0]["title"] == "Post 3"
    [summary] = await store.feed_summaries()
    assert summary["entries"] == 3 and bool(summary["crawl_incomplete"])
    # The same page again: nothing changed, so no event and no delivery.
    assert await commit(store, feed_id, [entry(1), entry(2), entry(3)]) == []
    assert (await store.outbox.sink_summaries()) == {"hook": {"pending": 3}}


async def test_updates_and_deletions_keep_history(store: Store) -> None:
    feed_id = await feed(store)
    [created] = await commit(store, feed_id, [entry(1)])
    later = NOW + timedelta(hours=1)
    [updated] = await commit(store, feed_id, [entry(1, title="Walrus", updated=later)], now=later)
    stored = (await store.known_entries(feed_id, ["tag:blog.test,2026:1"]))["tag:blog.test,2026:1"]
    assert (stored.title, stored.revision) == ("Walrus", 2)
    # The page's transaction only queued the entry; the index catches up afterwards.
    assert await store.search_pending() == 1
    assert await store.search(SearchQuery("walrus")) == []
    assert await catch_up(store) == 1
    assert [h.entry_id for h in await store.search(SearchQuery("walrus"))] == [stored.entry_id]
    [deleted] = await delete(store, feed_id, [stored.entry_id], later)
    assert await store.search_pending() == 1
    assert await catch_up(store) == 1 and await store.search_pending() == 0
    assert created < updated < deleted
    assert await store.live_entries(feed_id) == {}
    gone = (await store.known_entries(feed_id, [stored.entry_id]))[stored.entry_id]
    assert gone.deleted_at == later and gone.revision == 3
    assert await store.search(SearchQuery("walrus")) == []  # a deleted entry leaves the index
    page = await store.reads().events(0, 10)
    assert [e["type"] for e in page.events] == ["entry.created", "entry.updated", "entry.deleted"]
    [found] = await store.reads().entry(stored.entry_id, "blog")
    assert [v["title"] for v in found["versions"]] == ["Post 1", "Walrus"]


async def test_search_ranks_a_title_match_above_body_repetition(store: Store) -> None:
    feed_id = await feed(store)
    repeated = entry(1, title="Something else", body="<p>otter otter otter otter</p>")
    await commit(store, feed_id, [repeated, entry(2, title="Otter"), entry(3)])
    await catch_up(store)
    hits = await store.search(SearchQuery("otter"))
    assert [h.title for h in hits] == ["Otter", "Something else"]
    assert "[otter]" in hits[1].snippet.lower()
    assert [h.title for h in await store.search(SearchQuery("otter", feed="other"))] == []


async def test_the_outbox_claims_in_entry_order_and_records_outcomes(store: Store) -> None:
    feed_id = await feed(store)
    first = await commit(store, feed_id, [entry(1), entry(2)])
    later = NOW + timedelta(hours=1)
    edited = [entry(1, title="v2", updated=later), entry(2, title="v2", updated=later)]
    second = await commit(store, feed_id, edited, now=later)
    lease = later + timedelta(minutes=5)
    claimed = await store.outbox.claim_due("hook", later, 10, lease)
    # An entry's second event waits until its first is done: one event per entry per claim.
    assert [d.event.seq for d in claimed] == first
    assert await store.outbox.claim_due("hook", later, 10, lease) == []  # leased: not again
    ok = SendOutcome(ok=True, status=200, latency_ms=3.0)
    records = [AttemptRecord((claimed[0].id,), ok, None, later)]
    dead = AttemptRecord((claimed[1].id,), SendOutcome(ok=False, error="no"), None, later)
    states = await store.outbox.record_attempts([*records, dead])
    assert [str(s) for s in states] == ["delivered", "dead"]
    nxt = await store.outbox.claim_due("hook", later, 10, lease)
    assert [d.event.seq for d in nxt] == second  # both unblocked: delivered, and dead
    await store.outbox.release(nxt)
    assert (await store.outbox.next_due_at("hook")) == later
    assert await store.outbox.sink_summaries() == {
        "hook": {"delivered": 1, "dead": 1, "pending": 2}
    }
    attempts = await store.outbox.attempts(claimed[1].id)
    assert [(a.result, a.error) for a in attempts] == [("dead", "no")]
    assert await store.outbox.recover("hook", later) == 1
    counts = await store.outbox.replay("hook", later, from_seq=first[0])
    assert (counts.created, counts.requeued) == (0, 4)


async def test_sink_summaries_and_recover_count_every_state_of_every_sink(store: Store) -> None:
    """The counts are read along indexes a state change leaves alone (a sink's rows, its
    queue, its dead ones; delivered is the rest): each state of each sink still counts exactly,
    and `recover` requeues the failed (queue index) and the dead (their index), `since` too."""
    feed_id = await feed(store)
    seqs = await commit(store, feed_id, [entry(n) for n in range(1, 7)], sinks=("a", "b"))
    later = NOW + timedelta(minutes=1)
    lease = later + timedelta(minutes=5)
    claimed = {s: await store.outbox.claim_due(s, later, 10, lease) for s in ("a", "b")}
    assert [d.event.seq for d in claimed["a"]] == seqs
    ok = SendOutcome(ok=True, status=200)
    no = SendOutcome(ok=False, error="no")
    a = [d.id for d in claimed["a"]]
    await store.outbox.record_attempts(
        [
            AttemptRecord((a[0], a[1]), ok, None, later),  # a batch, delivered as a whole
            AttemptRecord((a[2],), ok, None, later),
            AttemptRecord((a[3],), no, later + timedelta(hours=1), later),  # failed
            AttemptRecord((a[4],), no, None, later),  # dead
        ]
    )
    await store.outbox.release([claimed["a"][5], *claimed["b"]])
    b = [d.id for d in claimed["b"]]
    await store.outbox.record_attempts([AttemptRecord((b[0],), no, None, later)])
    assert await store.outbox.sink_summaries() == {
        "a": {"delivered": 3, "failed": 1, "dead": 1, "pending": 1},
        "b": {"dead": 1, "pending": 5},
    }

    async def listed(sink: str | None, *states: str) -> list[int]:
        return [d.id for d in await store.outbox.list_deliveries(sink=sink, states=states)]

    def newest(*ids: int) -> list[int]:
        return sorted(ids, reverse=True)

    # Only dead, or only queued, are read along their partial indexes (SQLite): same rows,
    # newest first, as any other filter.
    assert await listed("a", "dead") == [a[4]]
    assert await listed(None, "dead") == newest(b[0], a[4])
    assert await listed("a", "failed") == [a[3]]
    assert await listed("a", "pending", "failed") == newest(a[5], a[3])
    assert await listed(None, "pending") == newest(a[5], *b[1:])
    assert await listed("a", "delivered") == newest(*a[:3])
    assert await listed("a", "dead", "failed") == newest(a[4], a[3])
    assert await store.outbox.recover("a", later, since=later) == 0  # created before `since`
    assert await store.outbox.recover("a", later) == 2
    assert await store.outbox.sink_summaries() == {
        "a": {"delivered": 3, "pending": 3},
        "b": {"dead": 1, "pending": 5},
    }


async def test_a_cursor_reader_sees_every_event_once_in_order(store: Store) -> None:
    feed_id = await feed(store)
    seqs: list[int] = []
    for n in range(1, 8):
        seqs += await commit(store, feed_id, [entry(n)], now=NOW + timedelta(minutes=n))
    seqs += await delete(store, feed_id, ["tag:blog.test,2026:3"], NOW + timedelta(hours=1))
    seen: list[int] = []
    after = 0
    while True:
        page = await store.reads().events(after, 3)
        if not page.events:
            break
        seen += [e["data"]["seq"] for e in page.events]
        after = page.next
    assert seen == seqs
    deleted = await store.reads().events(0, 100, type="entry.deleted")
    assert [e["data"]["seq"] for e in deleted.events] == seqs[-1:]
    assert deleted.next == seqs[-1]


async def test_entry_pages_continue_after_a_key_through_ties_and_arrivals(store: Store) -> None:
    feed_id = await feed(store)
    # nine entries, three to a published instant: the tie is broken by feed and entry id
    nine = [replace(entry(n), published=NOW - timedelta(days=n // 3)) for n in range(9)]
    await commit(store, feed_id, nine)
    first = await store.reads().entries(EntryQuery(limit=4))
    assert len(first.entries) == 4 and first.next is not None
    # an entry newer than all arrives between pages: it is not in the rest, and nothing repeats
    await commit(store, feed_id, [replace(entry(99), published=NOW + timedelta(days=1))])
    seen = [e["entry_id"] for e in first.entries]
    after: EntryKey | None = first.next
    while after is not None:
        page = await store.reads().entries(EntryQuery(limit=4, after=after))
        seen += [e["entry_id"] for e in page.entries]
        after = page.next
    expected = sorted(nine, key=lambda e: (NOW - (e.published or NOW), e.entry_id))
    assert seen == [e.entry_id for e in expected]
    whole = await store.reads().entries(EntryQuery(limit=100))
    assert whole.next is None and len(whole.entries) == 10
    assert whole.entries[0]["entry_id"] == "tag:blog.test,2026:99"
    assert set(whole.entries[0]) >= {"feed", "entry_id", "title", "published"}
    assert "sort_at" not in whole.entries[0] and "feed_id" not in whole.entries[0]


async def test_prune_lets_go_of_a_done_prefix_and_tells_cursors(store: Store) -> None:
    feed_id = await feed(store)
    seqs = [s for n in (1, 2, 3) for s in await commit(store, feed_id, [entry(n)])]
    later = NOW + timedelta(days=10)
    claimed = await store.outbox.claim_due("hook", later, 2, later + timedelta(minutes=1))
    ok = SendOutcome(ok=True, status=200)
    await store.outbox.record_attempts([AttemptRecord((d.id,), ok, None, later) for d in claimed])
    policy = Policy(keep_versions=1, keep_events_s=86400.0, keep_deliveries_s=None)
    dry = await store.prune(policy, later, dry_run=True)
    assert (dry.events, dry.deliveries, dry.attempts, dry.events_through) == (2, 2, 2, seqs[1])
    done = await store.prune(policy, later, dry_run=False)
    assert done == dry
    with pytest.raises(CursorGone) as gone:
        await store.reads().events(0, 10)
    assert gone.value.restart_from == seqs[1]
    rest = await store.reads().events(seqs[1], 10)
    assert [e["data"]["seq"] for e in rest.events] == seqs[2:]


async def test_concurrent_writers_never_let_a_cursor_skip(store: Store, tmp_path: Path) -> None:
    """Writers commit pages at once (on PostgreSQL each through a pool of its own, so their
    transactions really overlap) while a reader follows `after = next`: it sees each event
    exactly once."""
    feed_ids = [(await store.ensure_feed(f"f{i}", f"{URL}/{i}", NOW)).id for i in range(3)]
    writers: list[Store] = [store]
    if isinstance(store, PostgresStore):
        writers += [await PostgresStore.open(store.pg.url) for _ in range(2)]
    written: list[int] = []
    done = asyncio.Event()

    async def write(w: Store, feed_id: int, base: int) -> None:
        for n in range(base, base + 15):
            written.extend(await commit(w, feed_id, [entry(n), entry(n + 1000)], url=f"{URL}/{n}"))
            await asyncio.sleep(0)

    async def read() -> list[int]:
        seen: list[int] = []
        after = 0
        while True:
            finished = done.is_set()
            page = await store.reads().events(after, 4)
            seen += [e["data"]["seq"] for e in page.events]
            after = page.next
            if finished and not page.events:
                return seen
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    try:
        await asyncio.gather(
            *(write(writers[i % len(writers)], fid, 100 * i) for i, fid in enumerate(feed_ids))
        )
    finally:
        done.set()
        seen = await reader
        for w in writers[1:]:
            await w.close()
    assert len(written) == 90
    assert seen == sorted(written)


async def test_a_feeds_history_streams_newest_first(store: Store) -> None:
    feed_id = await feed(store)
    await commit(store, feed_id, [entry(1), entry(2), entry(3)])
    await delete(store, feed_id, ["tag:blog.test,2026:2"], NOW + timedelta(hours=1))
    head = await store.feed_head("blog")
    assert (head.name, head.url) == ("blog", URL)
    live = [e.entry_id async for e in store.feed_history("blog", include_deleted=False)]
    assert live == ["tag:blog.test,2026:1", "tag:blog.test,2026:3"]  # newest published first
    every = [e async for e in store.feed_history("blog", include_deleted=True)]
    assert [e.deleted_reason for e in every] == [None, "tombstone", None]
    assert every[0].categories == ("news",)


async def test_websub_subscriptions_round_trip_and_come_due(store: Store) -> None:
    feed_id = await feed(store)
    ws = store.websub
    await ws.add_subscription(
        "cb1", feed_id=feed_id, hub="https://hub.test/", topic=URL, secret="s3cret",
        callback="https://syncd.test/websub/cb1", lease_s=600, now=NOW,
        retry_at=NOW + timedelta(minutes=5),
    )  # fmt: skip
    sub = await ws.subscription("cb1")
    assert sub is not None
    assert (sub.feed_name, sub.state, sub.attempts, sub.requested_at) == (
        "blog", "subscribing", 1, NOW
    )  # fmt: skip
    # Pending: due once its retry time has come, not before.
    assert await ws.due_subscriptions(NOW) == []
    assert [s.id for s in await ws.due_subscriptions(NOW + timedelta(minutes=5))] == ["cb1"]
    # Verified: active, due again at its renewal instant (kept to the microsecond).
    renew = NOW + timedelta(seconds=300, microseconds=123_456)
    await ws.update_subscription(
        "cb1", {"state": "active", "verified_at": NOW, "renew_at": renew, "attempts": 0}
    )
    assert await ws.due_subscriptions(renew - timedelta(microseconds=1)) == []
    assert [s.id for s in await ws.due_subscriptions(renew)] == ["cb1"]
    with pytest.raises(StoreError, match=r"cb1.*secret"):
        await ws.update_subscription("cb1", {"secret": "other"})
    await ws.count_push("cb1", "pushes", NOW + timedelta(minutes=1))
    await ws.count_push("cb1", "rejected", NOW + timedelta(minutes=2))
    sub = await ws.subscription("cb1")
    assert sub is not None
    assert (sub.pushes, sub.rejected, sub.last_push_at, sub.renew_at) == (
        1, 1, NOW + timedelta(minutes=1), renew
    )  # fmt: skip
    assert [s.id for s in await ws.open_subscriptions()] == ["cb1"]
    await ws.update_subscription("cb1", {"state": "unsubscribed"})
    assert await ws.open_subscriptions() == []
    assert await ws.feed_subscriptions(feed_id) == []
    assert [s.state for s in await ws.all_subscriptions()] == ["unsubscribed"]


# What JSON and JavaScript disagree on (U+2028/U+2029), a non-BMP character (a surrogate pair in
# UTF-16, four bytes in UTF-8), escapes, a control character and markup.
TRICKY = 'a\u2028b\u2029c \U0001d11e \U0001f600 "q" \\ </script>\x01 é'


async def test_delivered_envelopes_are_the_events_byte_for_byte(store: Store) -> None:
    """Sinks (claims and operator resends) and the pull API get exactly the envelope built from
    each event, for created, updated and deleted events, although the store keeps the content
    once, in the version the event names."""
    feed_id = await feed(store)
    tricky = replace(
        entry(1, title=f"T {TRICKY}", body=f"<p>{TRICKY}</p>"),
        authors=(Person(f"Ann {TRICKY}", None, "http://a.test/\u2028"),),
        categories=(TRICKY, "news"),
        summary=TRICKY,
        base_url="http://blog.test/base/",
    )
    drafts: list[EventDraft] = []

    async def page(entries: list[ParsedEntry], now: datetime) -> list[int]:
        known = await store.known_entries(feed_id, [e.entry_id for e in entries])
        changes = diff_page(entries, known, {}).changes
        writes = [
            EntryWrite(c, build_event(c, REF, initial=False, now=now), ("hook",)) for c in changes
        ]
        drafts.extend(w.event for w in writes if w.event)
        parsed = ParsedPage(url=URL, feed_title="Blog", next_url=None, entries=tuple(entries))
        result = FetchResult(URL, URL, 200, b"", {}, None, None, "h", 1.0)
        return await store.commit_page(
            PageCommit(feed_id, result, parsed, None, now, tuple(writes))
        )

    seqs = await page([tricky, entry(2)], NOW)
    later = NOW + timedelta(hours=1)
    seqs += await page([replace(tricky, title=f"U {TRICKY}", updated=later), entry(2)], later)
    stored = (await store.known_entries(feed_id, [tricky.entry_id]))[tricky.entry_id]
    deletion = Deletion(stored, "tombstone")
    gone = build_deletion_event(deletion, REF, initial=False, now=later)
    drafts.append(gone)
    seqs += await store.commit_presence(
        PresenceCommit(feed_id, later, deletions=(EntryDeletion(deletion, gone, ("hook",)),))
    )
    expected = {seq: envelope(d, seq).encode() for seq, d in zip(seqs, drafts, strict=True)}
    assert [d.type for d in drafts] == ["entry.created"] * 2 + ["entry.updated", "entry.deleted"]

    loaded = {}
    for info in await store.outbox.list_deliveries(sink="hook"):
        due = await store.outbox.load(info.id)
        assert due is not None
        loaded[due.event.seq] = due.event.body
    assert loaded == expected
    claimed = await store.outbox.claim_due("hook", later, 10, later + timedelta(minutes=1))
    assert {d.event.seq: d.event.body for d in claimed} == {s: expected[s] for s in seqs[:2]}
    pulled = (await store.reads().events(0, 10)).events
    assert pulled == [json.loads(expected[s]) for s in seqs]
    assert TRICKY in pulled[-1]["data"]["entry"]["categories"]
    # The content is stored once: each event names its version and keeps only the rest.
    [(named, whole)] = await _stored_payloads(store)
    assert (named, whole) == (4, 0)


async def _stored_payloads(store: Store) -> list[tuple[int, int]]:
    """(events naming a version, events storing their whole envelope)."""
    _, rows = await store.query_readonly(
        "SELECT COUNT(version_id), COUNT(*) - COUNT(version_id) FROM events"
        " WHERE payload LIKE '%\"entry\":null%' OR version_id IS NULL"
    )
    return [(int(a), int(b)) for a, b in rows]


async def test_concurrent_prunes_delete_each_row_once(store: Store, tmp_path: Path) -> None:
    """Every worker of a shared store prunes: two prunes at once (two store handles, as two
    workers have) neither fail nor count a row twice, and together they delete what one would."""
    feed_id = await feed(store)
    for n in range(1, 13):
        await commit(store, feed_id, [entry(n)], now=NOW + timedelta(minutes=n))
    sent = NOW + timedelta(days=1)
    claimed = await store.outbox.claim_due("hook", sent, 100, sent + timedelta(hours=1))
    assert len(claimed) == 12
    ok = SendOutcome(ok=True, status=200)
    await store.outbox.record_attempts([AttemptRecord((d.id,), ok, None, sent) for d in claimed])
    policy = Policy(keep_events_s=60.0, keep_deliveries_s=60.0, batch=3)
    later = NOW + timedelta(days=3)
    other = await _second_handle(store, tmp_path)
    try:
        one, two = await asyncio.gather(
            store.prune(policy, later, dry_run=False), other.prune(policy, later, dry_run=False)
        )
    finally:
        await other.close()
    # one at a time: the first deletes everything, the second finds nothing left (interleaved
    # batches would split the work, and on PostgreSQL could deadlock on each other's rows)
    assert sorted([one.events, two.events]) == [0, 12]
    assert sorted([one.deliveries, two.deliveries]) == [0, 12]
    assert one.events_through == two.events_through > 0
    with pytest.raises(CursorGone):
        await store.reads().events(0, 10)


async def _second_handle(store: Store, tmp_path: Path) -> Store:
    """Another store object on the same database, as a second worker has."""
    if isinstance(store, PostgresStore):
        return await PostgresStore.open(store.pg.url)
    return SqliteStore.open(tmp_path / "syncd.db")


async def test_prune_keeps_every_version_an_event_is_built_from(store: Store) -> None:
    """keep_versions lets a version go only once no remaining event names it: an event's
    envelope is built from its version, so pruning never changes what a sink or reader gets."""
    feed_id = await feed(store)
    times = [NOW + timedelta(hours=h) for h in range(4)]
    for n, at in enumerate(times[:3]):
        await commit(store, feed_id, [entry(1, title=f"v{n}", updated=at)], now=at)
    await commit(store, feed_id, [entry(2)])
    await delete(store, feed_id, ["tag:blog.test,2026:2"], times[3])
    await commit(store, feed_id, [entry(2, title="back", updated=times[3])], now=times[3])
    before = (await store.reads().events(0, 100)).events
    keep_one = Policy(keep_versions=1, keep_events_s=None, keep_deliveries_s=None)
    assert (await store.prune(keep_one, times[3], dry_run=True)).versions == 0
    assert (await store.prune(keep_one, times[3], dry_run=False)).versions == 0
    assert (await store.reads().events(0, 100)).events == before
    # Once the events are done with and pruned, their versions go in the same run.
    later = times[3] + timedelta(days=30)
    claimed = await store.outbox.claim_due("hook", later, 100, later + timedelta(minutes=1))
    while claimed:
        ok = SendOutcome(ok=True, status=200)
        await store.outbox.record_attempts(
            [AttemptRecord((d.id,), ok, None, later) for d in claimed]
        )
        claimed = await store.outbox.claim_due("hook", later, 100, later + timedelta(minutes=1))
    everything = Policy(keep_versions=1, keep_events_s=86400.0, keep_deliveries_s=None)
    dry = await store.prune(everything, later, dry_run=True)
    assert (dry.events, dry.versions) == (len(before), 3)
    assert await store.prune(everything, later, dry_run=False) == dry
    [one] = await store.reads().entry("tag:blog.test,2026:1", "blog")
    [two] = await store.reads().entry("tag:blog.test,2026:2", "blog")
    assert [v["title"] for v in one["versions"] + two["versions"]] == ["v2", "back"]


@pytest.fixture(params=["sqlite", "postgres"])
async def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Store]]:
    """Two empty stores of one backend."""
    if request.param == "sqlite":
        pair: tuple[Store, Store] = (
            SqliteStore.open(tmp_path / "a.db"),
            SqliteStore.open(tmp_path / "b.db"),
        )
        yield pair
        for s in pair:
            await s.close()
        return
    async with scratch_schema() as a, scratch_schema() as b:
        pair = (await PostgresStore.open(a), await PostgresStore.open(b))
        yield pair
        for s in pair:
            await s.close()


async def count_deletes(store: Store) -> Callable[[], Awaitable[list[int]]]:
    """Start counting the rows each write transaction of `store` deletes; what to call for the
    counts, one per transaction that deleted anything (SQLite: changed anything)."""
    if isinstance(store, SqliteStore):
        db, sqlite_write = store.db, store.db.write
        counts: list[int] = []

        @contextmanager
        def counted() -> Iterator[sqlite3.Connection]:
            with sqlite_write() as conn:
                before = conn.total_changes
                yield conn
                counts.append(conn.total_changes - before)

        db.write = counted  # type: ignore[method-assign]

        async def sqlite_counts() -> list[int]:
            return [n for n in counts if n]

        return sqlite_counts
    # PostgreSQL: a row trigger notes the transaction of every deleted row.
    assert isinstance(store, PostgresStore)
    async with await psycopg.AsyncConnection.connect(store.pg.url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE deleted_rows (xid BIGINT NOT NULL)")
        await conn.execute(
            "CREATE FUNCTION note_delete() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO deleted_rows VALUES (txid_current()); RETURN OLD; END $$"
        )
        for table in ("entry_versions", "events", "deliveries", "delivery_attempts"):
            await conn.execute(
                f"CREATE TRIGGER note_delete AFTER DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION note_delete()"
            )

    async def pg_counts() -> list[int]:
        _, rows = await store.query_readonly(
            "SELECT COUNT(*) FROM deleted_rows GROUP BY xid ORDER BY MIN(xid)"
        )
        return [int(r[0]) for r in rows]

    return pg_counts


async def history(store: Store) -> list[tuple[Any, ...]]:
    """Every row a prune may delete, as (table, key) pairs."""
    _, rows = await store.query_readonly(
        "SELECT 'version', id FROM entry_versions UNION ALL SELECT 'event', seq FROM events"
        " UNION ALL SELECT 'delivery', id FROM deliveries"
        " UNION ALL SELECT 'attempt', id FROM delivery_attempts ORDER BY 1, 2"
    )
    return rows


async def test_prune_deletes_in_bounded_batches_with_the_one_shot_result(
    two_stores: tuple[Store, Store],
) -> None:
    """The same store pruned in one transaction per table (a batch larger than everything) and
    in batches of 7: the same report and the same rows left, and no transaction of the batched
    prune deletes more than 7 rows."""
    later = NOW + timedelta(days=10)
    for store in two_stores:
        feed_id = await feed(store)
        await commit(store, feed_id, [entry(n) for n in range(1, 31)])
        edited = [entry(n, title="edited", updated=NOW + timedelta(hours=1)) for n in range(1, 31)]
        await commit(store, feed_id, edited, now=NOW + timedelta(hours=1))
        await commit(store, feed_id, [entry(31)], now=later)  # recent: stays, with its version
        await deliver_everything(store, later)
    policy = Policy(keep_versions=1, keep_events_s=86400.0, keep_deliveries_s=None)
    whole, batched = two_stores
    deletes = await count_deletes(batched)
    one_shot = await whole.prune(replace(policy, batch=10_000), later, dry_run=False)
    in_batches = await batched.prune(replace(policy, batch=7), later, dry_run=False)
    assert in_batches == one_shot
    assert (one_shot.events, one_shot.deliveries, one_shot.attempts, one_shot.versions) == (
        60, 60, 60, 30,
    )  # fmt: skip
    assert await history(batched) == await history(whole)
    per_transaction = await deletes()
    assert max(per_transaction) <= 7
    assert sum(per_transaction) >= 210  # every deleted row was counted (+1: prune_state)
    assert len(per_transaction) >= 210 // 7


async def deliver_everything(store: Store, at: datetime) -> None:
    """Claim and deliver every queued delivery (one attempt each)."""
    ok = SendOutcome(ok=True, status=200)
    while claimed := await store.outbox.claim_due("hook", at, 100, at + timedelta(minutes=1)):
        await store.outbox.record_attempts([AttemptRecord((d.id,), ok, None, at) for d in claimed])


# ---------------------------------------------------------------- workers and leases

LEASE = timedelta(seconds=60)


async def twin(store: Store, tmp_path: Path) -> Store:
    """A second handle on the same store, as another worker process would open it."""
    if isinstance(store, PostgresStore):
        return await PostgresStore.open(store.pg.url)
    assert isinstance(store, SqliteStore)
    return SqliteStore.open(store.path)


async def test_a_stalled_workers_writes_are_refused_once_another_took_the_feed_over(
    store: Store, tmp_path: Path
) -> None:
    """Worker A leases the feed and stalls past its lease; B leases it (a new token) and
    commits; every write A then tries, fenced with its old token, is refused whole."""
    feed_id = await feed(store)
    other = await twin(store, tmp_path)
    try:
        [a] = await store.claim_feeds("A", NOW, NOW + LEASE, 10)
        assert await other.claim_feeds("B", NOW + LEASE / 2, NOW + LEASE * 2, 10) == []
        later = NOW + LEASE + timedelta(seconds=1)
        [b] = await other.claim_feeds("B", later, later + LEASE, 10)
        assert (a.feed_id, b.feed_id) == (feed_id, feed_id) and b.token == a.token + 1
        seqs = await commit_fenced(other, feed_id, [entry(1)], fence=b.token, now=later)
        assert len(seqs) == 1

        with pytest.raises(LeaseLost):
            await commit_fenced(store, feed_id, [entry(2), entry(3)], fence=a.token, now=later)
        with pytest.raises(LeaseLost):
            await store.commit_presence(PresenceCommit(feed_id, later, fence=a.token))
        with pytest.raises(LeaseLost):
            await store.reschedule(feed_id, later + LEASE * 10, "stale", fence=a.token)
        outcome = CrawlOutcome(
            outcome="ok", error=None, next_due_at=later + LEASE * 10, next_due_reason="stale",
            consecutive_errors=0, full=False, completed=True,
        )  # fmt: skip
        # A's 304 would refresh the page's validators with its outcome: refused with it.
        stale = UnchangedPage(URL, '"stale"', None, later)
        with pytest.raises(LeaseLost):
            await store.finish_crawl(
                feed_id, later, replace(outcome, unchanged_pages=(stale,)), fence=a.token
            )

        # Nothing of A's landed: B's entry alone, B's validators, the schedule untouched.
        known = await store.known_entries(feed_id, [entry(n).entry_id for n in (1, 2, 3)])
        assert set(known) == {entry(1).entry_id}
        page = await store.page_state(feed_id, URL)
        assert page is not None and page.validators.etag == '"v1"'
        state = await store.feed_state("blog")
        assert state.next_due_at is None and state.first_synced_at is None
        # B's own writes pass, and its release does not free a lease it no longer holds.
        await other.finish_crawl(feed_id, later, outcome, fence=b.token)
        await store.release_feed(a)
        assert await store.claim_feeds("C", later, later + LEASE, 10) == []
    finally:
        await other.close()


async def commit_fenced(
    store: Store, feed_id: int, entries: Sequence[ParsedEntry], *, fence: int, now: datetime
) -> list[int]:
    known = await store.known_entries(feed_id, [e.entry_id for e in entries])
    decided = diff_page(entries, known, {})
    writes = tuple(
        EntryWrite(c, build_event(c, REF, initial=False, now=now), ("hook",))
        for c in decided.changes
    )
    page = ParsedPage(url=URL, feed_title="Blog", next_url=None, entries=tuple(entries))
    result = FetchResult(URL, URL, 200, b"", {}, '"v1"', None, "hash", 1.0)
    return await store.commit_page(
        PageCommit(feed_id, result, page, None, now, writes, fence=fence)
    )


async def test_a_record_that_releases_ends_its_own_lease_and_never_a_successors(
    store: Store, tmp_path: Path
) -> None:
    """`finish_crawl(release=True)` frees the feed with the outcome, in one transaction; under
    a stale fence it writes nothing and the new holder keeps its lease; a crawl without a
    lease has nothing to release."""
    feed_id = await feed(store)
    other = await twin(store, tmp_path)
    outcome = CrawlOutcome(
        outcome="not_modified", error=None, next_due_at=NOW + LEASE * 10, next_due_reason="t",
        consecutive_errors=0, full=False, completed=True,
    )  # fmt: skip
    try:
        lease = await store.lease_feed("A", feed_id, NOW, NOW + LEASE)
        assert lease is not None
        await store.finish_crawl(feed_id, NOW, outcome, fence=lease.token, release=True)
        assert (await store.feed_state("blog")).last_outcome == "not_modified"
        taken = await other.lease_feed("B", feed_id, NOW, NOW + LEASE)  # free at once
        assert taken is not None and taken.token == lease.token + 1

        with pytest.raises(LeaseLost):
            await store.finish_crawl(
                feed_id, NOW, replace(outcome, outcome="ok"), fence=lease.token, release=True
            )
        assert (await store.feed_state("blog")).last_outcome == "not_modified"
        assert await store.lease_feed("C", feed_id, NOW, NOW + LEASE) is None  # still B's
        with pytest.raises(ValueError):
            await store.finish_crawl(feed_id, NOW, outcome, release=True)
    finally:
        await other.close()


async def test_a_lease_carries_its_feeds_row_as_the_lease_left_it(store: Store) -> None:
    """The crawl takes the feed's state from its lease instead of reading the row again: the
    lease's state is what a read gives right after it, whether claimed or leased one by one."""
    feed_id = await feed(store)
    outcome = CrawlOutcome(
        outcome="not_modified", error=None, next_due_at=NOW, next_due_reason="t",
        consecutive_errors=0, full=True, completed=True, title="Blog",
        changes=ChangesOutcome("http://blog.test/changes", None, None, None),
    )  # fmt: skip
    await store.finish_crawl(feed_id, NOW, outcome)
    [claimed] = await store.claim_feeds("A", NOW, NOW + LEASE, 10)
    assert claimed.state == replace(await store.feed_state("blog"), fence=claimed.token)
    assert claimed.state is not None and claimed.state.title == "Blog"
    await store.release_feed(claimed)
    one = await store.lease_feed("B", feed_id, NOW, NOW + LEASE)
    assert one is not None
    assert one.state == replace(await store.feed_state("blog"), fence=one.token)


async def test_workers_claiming_at_once_share_the_due_feeds_without_overlap(
    store: Store, tmp_path: Path
) -> None:
    ids = {(await store.ensure_feed(f"f{i}", f"{URL}/{i}", NOW)).id for i in range(30)}
    await store.reschedule(min(ids), NOW + LEASE, "not due yet")
    other = await twin(store, tmp_path)
    try:
        a, b = await asyncio.gather(
            store.claim_feeds("A", NOW, NOW + LEASE, 20),
            other.claim_feeds("B", NOW, NOW + LEASE, 20),
        )
    finally:
        await other.close()
    got_a, got_b = {x.feed_id for x in a}, {x.feed_id for x in b}
    assert not got_a & got_b
    assert got_a | got_b == ids - {min(ids)}
    # Everything due is leased now: nothing more to claim until a lease ends.
    assert await store.claim_feeds("C", NOW, NOW + LEASE, 50) == []


async def test_a_heartbeat_renews_a_workers_leases_and_retiring_drops_them(
    store: Store,
) -> None:
    feed_id = await feed(store)
    await store.heartbeat("A", NOW, NOW + LEASE)
    [lease] = await store.claim_feeds("A", NOW, NOW + LEASE, 1)
    assert await store.lease_feed("B", feed_id, NOW, NOW + LEASE) is None
    # Renewed before it ran out: past the first lease period it is still A's.
    await store.heartbeat("A", NOW + LEASE / 2, NOW + LEASE * 2)
    assert await store.lease_feed("B", feed_id, NOW + LEASE * 1.5, NOW + LEASE * 3) is None
    await store.retire_worker("A")
    taken = await store.lease_feed("B", feed_id, NOW + LEASE * 1.5, NOW + LEASE * 3)
    assert taken is not None and taken.token == lease.token + 1
    await store.release_feed(taken)
    again = await store.lease_feed("C", feed_id, NOW + LEASE * 1.5, NOW + LEASE * 3)
    assert again is not None and again.token == taken.token + 1


async def test_leasing_many_feeds_takes_the_free_ones_as_leasing_each_would(
    store: Store,
) -> None:
    """`lease_feeds` (a `syncd sync`'s one transaction) against `lease_feed` one by one: the
    same feeds taken, the same tokens, the row as a fresh read gives it; a held feed left out."""
    ids = [(await store.ensure_feed(f"f{i}", f"{URL}/{i}", NOW)).id for i in range(4)]
    held = await store.lease_feed("A", ids[1], NOW, NOW + LEASE)
    assert held is not None
    assert await store.lease_feeds("B", [], NOW, NOW + LEASE) == {}
    many = await store.lease_feeds("B", ids, NOW, NOW + LEASE)
    assert sorted(many) == [ids[0], ids[2], ids[3]]
    for feed_id, lease in many.items():
        fresh = await store.feed_state(lease.name)
        assert lease.feed_id == feed_id and lease.until == NOW + LEASE
        assert lease.state == replace(fresh, fence=lease.token) and fresh.id == feed_id
        await store.release_feed(lease)
        one = await store.lease_feed("C", feed_id, NOW, NOW + LEASE)
        assert one is not None and one.token == lease.token + 1
    # All held now (by A and C): nothing to take until a lease ends, then everything.
    assert await store.lease_feeds("B", ids, NOW, NOW + LEASE) == {}
    later = await store.lease_feeds("B", ids, NOW + LEASE, NOW + LEASE * 2)
    assert sorted(later) == sorted(ids) and later[ids[1]].token == held.token + 1


async def test_reclaiming_takes_back_only_the_delivery_leases_of_gone_workers(
    store: Store,
) -> None:
    feed_id = await feed(store)
    await commit(store, feed_id, [entry(n) for n in range(1, 5)])
    later = NOW + timedelta(seconds=1)
    lease = later + timedelta(minutes=10)
    await store.heartbeat("alive", later, later + LEASE)
    mine = await store.outbox.claim_due("hook", later, 2, lease, owner="alive")
    theirs = await store.outbox.claim_due("hook", later, 2, lease, owner="killed")
    assert len(mine) == 2 and len(theirs) == 2
    assert await store.outbox.reclaim_leases(later) == 2  # the killed worker's, not the live one's
    again = await store.outbox.claim_due("hook", later, 10, lease, owner="new")
    assert {d.id for d in again} == {d.id for d in theirs}
    # Once the live worker's row runs out, it counts as gone too.
    assert await store.outbox.reclaim_leases(later + LEASE * 2) == 4
    assert await store.outbox.reclaim_leases(later, everyone=True) == 0


async def test_host_slots_space_requests_to_one_host_across_workers(
    store: Store, tmp_path: Path
) -> None:
    other = await twin(store, tmp_path)
    try:
        waits = [await s.reserve_host_slot("blog.test", 100.0) for s in (store, other, store)]
        elsewhere = await other.reserve_host_slot("other.test", 100.0)
    finally:
        await other.close()
    # The first goes now, the next one gap later, the one after two gaps (less the moments
    # the reservations themselves took), whichever worker asked; another host waits for none.
    assert waits[0] == 0.0
    assert 90 < waits[1] <= 100 and 190 < waits[2] <= 200
    assert elsewhere == 0.0


async def test_the_schedule_summary_agrees_with_the_overview(store: Store) -> None:
    """The status line's aggregates say what the overview's row per feed says: due (never
    polled, or due by now), backing off (failing, not gone), and the most overdue due time."""
    from syncd.overview import take
    from syncd.storage.values import CrawlOutcome

    assert (await store.schedule_summary(NOW)).lag_s(NOW) == 0.0
    plan = [
        ("new", None, 0, False),
        ("late", NOW - timedelta(minutes=5), 0, False),
        ("later", NOW - timedelta(minutes=1), 2, False),
        ("soon", NOW + timedelta(minutes=3), 1, False),
        ("gone", NOW - timedelta(hours=1), 4, True),
    ]
    for name, due, errors, gone in plan:
        state = await store.ensure_feed(name, f"{URL}/{name}", NOW)
        if due is None:
            continue
        outcome = "gone" if gone else "error" if errors else "ok"
        await store.finish_crawl(
            state.id,
            NOW,
            CrawlOutcome(outcome, None, due, errors, full=False, completed=not errors),
        )
    summary = await store.schedule_summary(NOW)
    overview = await take(store, NOW, [])
    assert (summary.due, summary.backing_off) == (overview.due, overview.backing_off) == (3, 2)
    assert summary.lag_s(NOW) == overview.schedule_lag_s == 300.0


async def test_feeds_are_registered_and_spread_in_bulk(store: Store) -> None:
    """What a starting daemon does for all its feeds at once: register them (a changed URL is
    taken, the id kept), find those synced before and overdue, and move their due times."""
    from syncd.storage.values import CrawlOutcome

    await store.ensure_feeds([("a", f"{URL}/a"), ("b", f"{URL}/b")], NOW)
    a = await store.feed_state("a")
    await store.ensure_feeds([("a", f"{URL}/a2"), ("b", f"{URL}/b"), ("c", f"{URL}/c")], NOW)
    moved = await store.feed_state("a")
    assert (moved.id, moved.url) == (a.id, f"{URL}/a2")
    assert (await store.feed_state("c")).first_synced_at is None
    for name, due in (("a", NOW - timedelta(hours=1)), ("b", NOW + timedelta(hours=1))):
        state = await store.feed_state(name)
        await store.finish_crawl(
            state.id, NOW, CrawlOutcome("ok", None, due, 0, full=True, completed=True)
        )
    assert await store.overdue_since_synced(NOW) == [(a.id, "a")]  # c: never synced
    await store.reschedule_many([(a.id, NOW + timedelta(minutes=5), "spread")])
    assert (await store.feed_state("a")).next_due_at == NOW + timedelta(minutes=5)
    assert await store.overdue_since_synced(NOW) == []
