"""Several workers on one store, in one test process (docs/design.md, "Many workers"): a crawl
whose lease was taken over is abandoned and writes nothing (both backends); two dispatchers on
two PostgreSQL pools racing over one sink's backlog keep each entry's events in order, each once;
per-host pacing holds across workers sharing a PostgreSQL store; a starting worker retires the
dead workers of its host. Real local HTTP servers, a real
SQLite file and a real PostgreSQL scratch schema (skipped with one line where none answers)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from syncd.app import build_app
from syncd.cli.status import describe_worker
from syncd.config import load_config
from syncd.delivery import CLAIM_AHEAD_MIN_EVENTS, CLAIM_AHEAD_WINDOWS, BoundSink, Dispatcher
from syncd.diff import diff_page
from syncd.events import build_event
from syncd.fetch import Fetcher, FetchLimits
from syncd.model import FeedRef, FetchResult, ParsedEntry, ParsedPage
from syncd.sinks.webhook import WebhookSink
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.sqlite import SqliteStore
from syncd.storage.values import EntryWrite, PageCommit
from syncd.throttle import ClusterThrottle
from syncd.timestamps import format_timestamp
from syncd.workers import Worker, new_worker_id
from tests.conftest import write_config
from tests.support.feedfarm import FeedFarm, serve_farm
from tests.support.ordering import OrderingReceiver, order_violations, per_entry
from tests.support.outbox import seed_events, sink_config
from tests.support.postgres import scratch_schema
from tests.support.receiver import HOOK_PATH, TEST_SECRET, serve_receiver
from tests.test_e2e_daemon import wait_until

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with scratch_schema() as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_crawl_whose_lease_was_taken_over_is_abandoned_and_writes_nothing(
    tmp_path: Path, backend: str
) -> None:
    """Worker A leases the feed and hangs on its fetch past the lease; B takes the feed over and
    crawls it; the feed gains an entry; A's fetch returns it, and A's commit is refused: one
    line naming the feed, nothing of A's crawl in the store, B's outcome kept."""
    async with serve_farm(FeedFarm(feeds=1)) as farm, scratch_or_file(tmp_path, backend) as store:
        config = load_config(
            write_config(
                tmp_path,
                feeds=[{"name": "farm", "url": farm.feed_url(0)}],
                store={**store, "lease_seconds": 30},
            )
        )
        a_clock, b_clock = Clock(T0), Clock(T0 + timedelta(seconds=31))
        async with build_app(config, clock=a_clock) as a, build_app(config, clock=b_clock) as b:
            assert a.worker is not None and b.worker is not None
            await a.store.ensure_feed("farm", farm.feed_url(0), T0)
            [lease_a] = await a.worker.claim(10)
            gate = farm.hold(0)
            crawl_a = asyncio.create_task(a.syncer.sync(config.feeds[0], lease=lease_a))
            await wait_until(lambda: len(farm.arrivals.get(0, [])) == 1)
            # A's lease ran out by B's clock (A stalled: its heartbeat renews it on A's clock).
            [lease_b] = await b.worker.claim(10)
            assert lease_b.token == lease_a.token + 1
            del farm.gates[0]
            report_b = await b.syncer.sync(config.feeds[0], lease=lease_b)
            assert report_b.created == 3 and not report_b.lease_lost
            farm.bump(0)  # what A's fetch will now see: a fourth entry
            with capture_logs() as logs:
                gate.set()
                report_a = await crawl_a
            assert report_a.lease_lost and report_a.created == 0
            [line] = [r for r in logs if r["log_level"] in ("warning", "error")]
            assert line["feed"] == "farm" and "took the feed over" in line["event"]
            live = await b.store.live_entries(lease_b.feed_id)
            assert len(live) == 3  # B's three; A's fourth was not written
            state = await b.store.feed_state("farm")
            assert state.last_fetch_at == b_clock() and state.last_outcome == "ok"


@asynccontextmanager
async def scratch_or_file(tmp_path: Path, backend: str) -> AsyncIterator[dict[str, str]]:
    """The `[store]` table of a fresh store on `backend`."""
    if backend == "sqlite":
        yield {"path": str(tmp_path / "syncd.db")}
        return
    async with scratch_schema() as url:
        yield {"url": url}


REF = FeedRef("blog", "http://blog.test/feed", "Blog")


def version(n: int, v: int) -> ParsedEntry:
    body = f"<p>entry {n}, version {v}</p>"
    return ParsedEntry(
        entry_id=f"tag:blog.test,2026:{n}", id_source="id", title=f"Post {n}",
        link=f"http://blog.test/{n}", published=T0, updated=T0 + timedelta(minutes=v),
        authors=(), categories=(), summary=None, content=body, links=(), base_url=None,
        content_hash=hashlib.sha256(body.encode()).hexdigest(),
    )  # fmt: skip


# A dispatcher's first claim is a probe (one delivery); a healthy one leases its window and
# CLAIM_AHEAD_WINDOWS more, at least CLAIM_AHEAD_MIN_EVENTS. One entry more than that leaves the
# other worker an entry to start with even if a fresh sink started healthy (see the test's
# docstring).
IN_FLIGHT = 4
ENTRIES = IN_FLIGHT + max(IN_FLIGHT * CLAIM_AHEAD_WINDOWS, CLAIM_AHEAD_MIN_EVENTS) + 1
VERSIONS = 3


async def test_two_dispatchers_on_two_pools_keep_each_entrys_order(pg_url: str) -> None:
    """Entries with three versions each, committed as events of one sink; two dispatchers, each on
    a pool of its own (two workers), drain the backlog at once into a receiver that answers after
    random delays: no entry has two events in flight, each arrives once, in seq order, and both
    workers did part of the work.

    Who claims what is up to scheduling (claims are serialised, not shared out: a worker that
    got its probe answered could lease everything before the other claims once), so the receiver
    holds every request until each worker has one in flight, and there are more entries than any
    one claim leases: whichever worker claims first, the other's first claim still finds an
    entry whose first event is free.

    Both are registered workers, as every process is before it delivers (`Worker.start`), and
    the second joins late, once the first has leased and started its attempts: a dispatcher's
    start reclaims only the leases of workers with no live row, never a live one's (those are
    in flight; taking them sent events twice, two of one entry at once)."""
    stores = [await PostgresStore.open(pg_url) for _ in range(2)]
    try:
        feed_id = (await stores[0].ensure_feed("blog", REF.url, T0)).id
        for v in range(VERSIONS):
            entries = [version(n, v) for n in range(ENTRIES)]
            known = await stores[0].known_entries(feed_id, [e.entry_id for e in entries])
            decided = diff_page(entries, known, {})
            writes = tuple(
                EntryWrite(c, build_event(c, REF, initial=False, now=T0), ("hook",))
                for c in decided.changes
            )
            page = ParsedPage(url=REF.url, feed_title="Blog", next_url=None, entries=tuple(entries))
            result = FetchResult(REF.url, REF.url, 200, b"", {}, None, None, f"h{v}", 1.0)
            await stores[0].commit_page(PageCommit(feed_id, result, page, None, T0, writes))
        events = await stores[0].latest_events(None, 1000)
        total = ENTRIES * VERSIONS
        assert len(events) == total
        expected: dict[str, list[int]] = {}
        for e in sorted(events, key=lambda e: e["seq"]):
            expected.setdefault(f"blog/{e['entry_id']}", []).append(e["seq"])
        for i, s in enumerate(stores):
            await s.heartbeat(f"w{i}", T0, T0 + timedelta(hours=1))
        paths = [f"{HOOK_PATH}/w{i}" for i in range(2)]
        receiver = OrderingReceiver(seed=5, max_delay=0.02, hold_until=paths)
        clock = Clock(T0 + timedelta(seconds=1))
        async with serve_receiver(receiver=receiver) as rx, aiohttp.ClientSession() as session:
            cfg = sink_config("hook", options={"url": rx.url}, max_in_flight=IN_FLIGHT)
            dispatchers = [
                Dispatcher(
                    store=s,
                    sinks=[
                        BoundSink(
                            WebhookSink(
                                "hook",
                                rx.base + paths[i],
                                [TEST_SECRET],
                                10,
                                session=session,
                                clock=clock,
                            ),
                            cfg,
                        )
                    ],
                    clock=clock,
                    rng=random.Random(i),
                    worker=f"w{i}",
                )
                for i, s in enumerate(stores)
            ]

            async def drain(d: Dispatcher) -> int:
                sent = 0
                if d is dispatchers[1]:
                    # Joins once the first worker's requests are held at the receiver.
                    await receiver.arrived.wait()
                while len(receiver.applied) < total:
                    [report] = await d.deliver_due()
                    sent += report.delivered
                    await asyncio.sleep(0.005)
                return sent

            async with asyncio.timeout(60):
                sent = await asyncio.gather(*(drain(d) for d in dispatchers))
    finally:
        for s in stores:
            await s.close()
    assert receiver.overlaps == []
    assert order_violations(receiver.applied) == []
    assert per_entry(receiver.applied) == expected  # each once, in seq order
    assert sum(sent) == total and all(n > 0 for n in sent), sent


async def test_per_host_pacing_holds_across_workers_on_postgresql(pg_url: str) -> None:
    """Three workers (each its own pool and fetcher) fetch from one host at once, at most 5
    requests/s: the server sees their requests spaced 0.2 s apart, not three times as dense."""
    stores = [await PostgresStore.open(pg_url) for _ in range(3)]
    limits = FetchLimits(timeout_s=10, max_body_bytes=1_000_000, max_redirects=0, user_agent="t")
    try:
        async with serve_farm(FeedFarm(feeds=12)) as farm, aiohttp.ClientSession() as session:
            fetchers = [
                Fetcher(session, ClusterThrottle(5.0, s.reserve_host_slot), limits) for s in stores
            ]
            await asyncio.gather(*(fetchers[n % 3].fetch(farm.feed_url(n)) for n in range(12)))
    finally:
        for s in stores:
            await s.close()
    times = sorted(t for ts in farm.arrivals.values() for t in ts)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 12
    # Each slot is 0.2 s after the previous one; a request reaches the server a moment after its
    # slot begins, so a gap may come out a few milliseconds short, never anywhere near 0.
    assert min(gaps) > 0.15, gaps


async def test_a_starting_worker_retires_the_dead_workers_of_its_host(tmp_path: Path) -> None:
    """A worker of this host whose process is gone (here: a child that exited) loses its row and
    its feed leases as soon as another worker starts there; one of another host keeps them
    until they run out."""
    child = await asyncio.create_subprocess_exec("true")
    await child.wait()
    here = socket.gethostname()
    dead, remote = f"{here}:{child.pid}:0bad", "elsewhere.example:1:0ff"
    store = SqliteStore.open(tmp_path / "syncd.db")
    try:
        for name, holder in (("a", dead), ("b", remote)):
            feed_id = (await store.ensure_feed(name, f"http://x.test/{name}", T0)).id
            await store.heartbeat(holder, T0, T0 + timedelta(minutes=1))
            assert await store.lease_feed(holder, feed_id, T0, T0 + timedelta(minutes=1))
        worker = Worker(store, Clock(T0), 60, new_worker_id())
        await worker.start()
        try:
            assert sorted(await store.worker_ids()) == sorted([remote, worker.id])
            assert [lease.name for lease in await worker.claim(10)] == ["a"]
        finally:
            await worker.stop()
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_status_names_each_worker_alive_or_gone_with_the_leases_it_holds(
    tmp_path: Path, backend: str
) -> None:
    """`syncd status` lists every worker row: a live one with the feed leases and deliveries in
    flight it holds at `now` (an expired lease of its own is not counted), a gone one as GONE."""
    alive, gone = "here.example:10:aaa", "here.example:11:bbb"
    until, past = T0 + timedelta(minutes=1), T0 - timedelta(seconds=1)
    async with scratch_or_file(tmp_path, backend) as table:
        store = (
            SqliteStore.open(Path(table["path"]))
            if backend == "sqlite"
            else await PostgresStore.open(table["url"])
        )
        try:
            ids = [(await store.ensure_feed(n, f"http://x.test/{n}", T0)).id for n in "abcd"]
            await store.heartbeat(alive, T0 - timedelta(minutes=2), T0 - timedelta(minutes=1))
            assert await store.lease_feed(alive, ids[0], T0 - timedelta(minutes=2), past)
            await store.heartbeat(alive, T0, until)  # renews the lease on "a" to `until`
            assert await store.lease_feed(alive, ids[1], T0, until)
            await store.heartbeat(gone, T0 - timedelta(minutes=5), past)
            assert await store.lease_feed(gone, ids[2], T0 - timedelta(minutes=5), past)
            if isinstance(store, SqliteStore):
                # Deliveries in flight: one leased by the live worker until later, one whose
                # lease ran out; the dispatcher's own claim writes these two columns.
                seqs = seed_events(store, 2, sinks=["hook"], now=T0)
                with store.write() as conn:
                    for seq, lease in zip(seqs, (until, past), strict=True):
                        conn.execute(
                            "UPDATE deliveries SET leased_by = ?, leased_until = ?"
                            " WHERE event_seq = ?",
                            (alive, format_timestamp(lease), seq),
                        )
            rows = {w["id"]: w for w in await store.worker_summaries(T0)}
            # What a starting WebSub subscriber asks: which rows are alive now, no counts.
            assert await store.worker_ids(alive_at=T0) == [alive]
            assert await store.worker_ids() == [alive, gone]
        finally:
            await store.close()
    assert sorted(rows) == [alive, gone]
    assert rows[alive]["alive"] is True and rows[gone]["alive"] is False
    assert rows[alive]["feeds_leased"] == 2
    assert rows[gone]["feeds_leased"] == 0  # its lease on "c" ran out with it
    assert rows[alive]["deliveries_leased"] == (1 if backend == "sqlite" else 0)
    line = describe_worker(rows[alive])
    assert line.startswith(f"{alive}: alive since ") and ", 2 feeds leased," in line
    assert describe_worker(rows[gone]).startswith(f"{gone}: GONE, last seen ")
