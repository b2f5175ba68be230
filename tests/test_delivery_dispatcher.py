"""The dispatcher against real receivers on 127.0.0.1 and a real SQLite store.

Each receiver answers from a script (500s then 200, 429 with Retry-After, 410, a hang, a 301) and
records every request. Schedules that take minutes or hours run on an injected clock: the test
moves it to exactly the instant the dispatcher scheduled, so what is asserted is the schedule the
dispatcher wrote down and honoured, not how fast this machine is.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from syncd import delivery
from syncd.delivery import BoundSink, Dispatcher, OwnerLock, SinkReport
from syncd.model import OutboundEvent, SendOutcome
from syncd.retry import REJECTIONS_BEFORE_PAUSE, Health, SinkHealth
from syncd.sinks.base import Sink
from syncd.sinks.file import FileSink
from syncd.sinks.webhook import WebhookSink
from syncd.storage.sqlite import SqliteStore
from tests.support.envelopes import envelopes
from tests.support.outbox import (
    FakeClock,
    attempts_of,
    deliveries_of,
    seed_events,
    sink_config,
    when,
)
from tests.support.receiver import TEST_SECRET, ReceivedRequest, Receiver, Reply, serve_receiver


def webhook(
    url: str,
    session: aiohttp.ClientSession,
    clock: Any,
    name: str = "hook",
    *,
    secrets: Sequence[str] = (TEST_SECRET,),
    **config: Any,
) -> BoundSink:
    cfg = sink_config(name, options={"url": url}, **config)
    sink = WebhookSink(name, url, list(secrets), cfg.timeout_s, session=session, clock=clock)
    return BoundSink(sink, cfg)


def dispatcher(store: SqliteStore, sinks: Sequence[BoundSink], clock: Any, **kw: Any) -> Dispatcher:
    return Dispatcher(store=store, sinks=sinks, clock=clock, rng=random.Random(7), **kw)


def signature_valid(req: ReceivedRequest, secret: str = TEST_SECRET) -> bool:
    """The signature is right for the request's own timestamp (whatever the real time is)."""
    stamp = datetime.fromtimestamp(int(req.headers["webhook-timestamp"]), tz=UTC)
    expected = Webhook(secret).sign(str(req.webhook_id), stamp, req.body.decode())
    return expected in req.headers["webhook-signature"].split(" ")


def payload(store: SqliteStore, seq: int) -> bytes:
    [(_, _, envelope)] = envelopes(store.path, "e.seq = ?", (seq,))
    return envelope.encode()


def seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


async def test_500s_then_200_follow_the_retry_schedule(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[500, 500]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        [seq] = seed_events(store, 1, sinks=["hook"], now=clock())
        t0 = clock()

        [report] = await d.deliver_due()  # one pass: fails, is rescheduled, returns
        assert (report.delivered, report.failed) == (0, 1)
        [row] = deliveries_of(store, "hook")
        assert (row["state"], row["attempts"], row["last_status"]) == ("failed", 1, 500)
        t1 = when(row["next_attempt_at"])
        assert 4.5 <= seconds(t0, t1) <= 5.5  # 5 s ± 10 % jitter

        clock.set(t1 - timedelta(milliseconds=1))
        await d.deliver_due()
        assert len(rx.receiver.requests) == 1  # not before it is due

        clock.set(t1)
        await d.deliver_due()
        [row] = deliveries_of(store, "hook")
        t2 = when(row["next_attempt_at"])
        assert (row["state"], row["attempts"]) == ("failed", 2)
        assert 270 <= seconds(t1, t2) <= 330  # 5 min ± 10 %

        clock.set(t2)
        await d.deliver_due()
        requests = rx.receiver.requests

    assert [r.status for r in requests] == [500, 500, 200]
    assert {r.webhook_id for r in requests} == {f"evt_blog_{seq:06d}"}
    assert all(r.body == payload(store, seq) for r in requests)
    # A fresh timestamp on every attempt, each signed correctly.
    stamps = [int(r.headers["webhook-timestamp"]) for r in requests]
    assert stamps == [int(t.timestamp()) for t in (t0, t1, t2)]
    assert all(signature_valid(r) for r in requests)
    [row] = deliveries_of(store, "hook")
    assert (row["state"], row["attempts"], row["delivered_at"]) == (
        "delivered",
        3,
        row["delivered_at"],
    )
    assert when(row["delivered_at"]) == t2
    log = attempts_of(store, row["id"])
    assert [(a["status"], a["result"]) for a in log] == [
        (500, "failed"),
        (500, "failed"),
        (200, "delivered"),
    ]
    assert [when(a["attempted_at"]) for a in log] == [t0, t1, t2]
    assert all(a["latency_ms"] is not None and a["latency_ms"] >= 0 for a in log)


async def test_429_retry_after_seconds_pauses_the_sink(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[Reply(429, {"Retry-After": "120"})]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seqs = seed_events(store, 3, sinks=["hook"], now=clock())
        t0 = clock()
        [report] = await d.deliver_due()
        assert len(rx.receiver.requests) == 1  # the receiver asked to wait: nothing else is sent
        assert report.paused_until == t0 + timedelta(seconds=120)
        head = deliveries_of(store, "hook")[0]
        # The schedule says 5 s; the receiver's 120 s wins.
        assert when(head["next_attempt_at"]) == t0 + timedelta(seconds=120)
        assert (await store.outbox.sink_row("hook")).paused_until == t0 + timedelta(seconds=120)

        clock.advance(60)
        await d.deliver_due()
        assert len(rx.receiver.requests) == 1

        clock.set(t0 + timedelta(seconds=120))
        [report] = await d.deliver_due()
        assert report.delivered == 3 and report.paused_until is None
        ids = [str(r.webhook_id) for r in rx.receiver.requests]
    # After the pause one probe goes first (the least-tried event: a refused one cannot keep the
    # sink paused), then the rest, the first one included.
    first, second, *rest = ids
    assert first == f"evt_blog_{seqs[0]:06d}" and second == f"evt_blog_{seqs[1]:06d}"
    assert sorted(rest) == [f"evt_blog_{seqs[0]:06d}", f"evt_blog_{seqs[2]:06d}"]
    assert (await store.outbox.sink_row("hook")).paused_until is None


async def test_503_retry_after_http_date(store, session) -> None:
    clock = FakeClock()
    date = format_datetime(clock() + timedelta(seconds=90), usegmt=True)
    async with serve_receiver(script=[Reply(503, {"Retry-After": date})]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seed_events(store, 1, sinks=["hook"], now=clock())
        t0 = clock()
        await d.deliver_due()
        [row] = deliveries_of(store, "hook")
        assert when(row["next_attempt_at"]) == t0 + timedelta(seconds=90)
        clock.advance(89)
        await d.deliver_due()
        assert len(rx.receiver.requests) == 1
        clock.advance(1)
        await d.deliver_due()
        assert [r.status for r in rx.receiver.requests] == [503, 200]


async def test_410_disables_the_sink_and_events_accumulate(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[410]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seed_events(store, 2, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
        assert report.disabled and len(rx.receiver.requests) == 1
        row = await store.outbox.sink_row("hook")
        assert row.disabled_at == clock()
        assert row.disabled_reason is not None and "410" in row.disabled_reason

        # A day later, more events: nothing is attempted, nothing is lost, nothing is dead.
        clock.advance(86400)
        seed_events(store, 2, sinks=["hook"], now=clock())
        await d.deliver_due()
        assert len(rx.receiver.requests) == 1
        states = [r["state"] for r in deliveries_of(store, "hook")]
        assert states == ["failed", "pending", "pending", "pending"]

        await store.outbox.enable_sink("hook", clock())
        [report] = await d.deliver_due()
        assert report.delivered == 4 and not report.disabled
        assert len(rx.receiver.accepted()) == 4
    assert {r["state"] for r in deliveries_of(store, "hook")} == {"delivered"}


async def test_a_config_change_re_enables_a_410_disabled_sink(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[410]) as rx:
        first = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seed_events(store, 1, sinks=["hook"], now=clock())
        await first.deliver_due()
        assert (await store.outbox.sink_row("hook")).disabled_at is not None

        same = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        [report] = await same.deliver_due()  # restarted with the same config: still disabled
        assert report.disabled and len(rx.receiver.requests) == 1

        moved = rx.url + "?v=2"  # the operator pointed the sink somewhere new
        changed = dispatcher(store, [webhook(moved, session, clock)], clock)
        [report] = await changed.deliver_due()
        assert not report.disabled and report.delivered == 1
    assert (await store.outbox.sink_row("hook")).disabled_at is None

    # An operator's own `sinks disable` is not undone by a config change.
    await store.outbox.disable_sink("hook", "disabled by operator", clock())
    other = dispatcher(store, [webhook(rx.url + "?v=3", session, clock)], clock)
    [report] = await other.deliver_due()
    assert report.disabled


async def test_a_hang_past_the_timeout_is_a_failed_attempt(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[Reply.hang()]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock, timeout_s=0.5)], clock)
        [seq] = seed_events(store, 1, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
        assert report.failed == 1 and report.paused_until is not None  # no answer: unavailable
        [row] = deliveries_of(store, "hook")
        assert row["last_error"] == "timed out after 0.5s" and row["last_status"] is None
        clock.set(max(when(row["next_attempt_at"]), report.paused_until))
        [report] = await d.deliver_due()
        assert report.delivered == 1
        requests = rx.receiver.requests
    assert [r.answered for r in requests] == [False, True]
    assert requests[0].webhook_id == requests[1].webhook_id == f"evt_blog_{seq:06d}"
    assert requests[0].body == requests[1].body == payload(store, seq)
    assert requests[0].headers["webhook-timestamp"] != requests[1].headers["webhook-timestamp"]


async def test_a_redirect_is_a_failure_and_not_followed(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver() as rx:
        rx.receiver.push(Reply(301, {"Location": rx.base + "/elsewhere"}))
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seed_events(store, 1, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
        assert report.failed == 1 and report.paused_until is None  # about this event only
        [row] = deliveries_of(store, "hook")
        assert row["last_status"] == 301
        assert row["last_error"] == f"redirect to {rx.base}/elsewhere not followed (HTTP 301)"
        clock.set(when(row["next_attempt_at"]))
        await d.deliver_due()
        paths = [r.path for r in rx.receiver.requests]
    assert paths == ["/hook", "/hook"]
    assert deliveries_of(store, "hook")[0]["state"] == "delivered"


async def test_after_the_last_attempt_a_delivery_is_dead_kept_and_recoverable(
    store, session
) -> None:
    clock = FakeClock()
    async with serve_receiver(default=500) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock, schedule=[1, 1])], clock)
        [seq] = seed_events(store, 1, sinks=["hook"], now=clock())
        for _ in range(3):
            [report] = await d.deliver_due()
            [row] = deliveries_of(store, "hook")
            if row["state"] == "failed":
                clock.set(when(row["next_attempt_at"]))
        assert report.dead == 1
        assert (row["state"], row["attempts"]) == ("dead", 3)
        assert [a["result"] for a in attempts_of(store, row["id"])] == ["failed", "failed", "dead"]
        clock.advance(3600)
        await d.deliver_due()
        assert len(rx.receiver.requests) == 3  # dead is dead: no more attempts on its own
        [listed] = await store.outbox.list_deliveries(sink="hook", states=["dead"])
        assert listed.id == row["id"] and listed.event_seq == seq

        rx.receiver.set_default(200)
        assert await store.outbox.recover("hook", clock()) == 1
        [row] = deliveries_of(store, "hook")
        assert (row["state"], row["attempts"]) == ("pending", 0)  # a fresh schedule
        [report] = await d.deliver_due()
        assert report.delivered == 1
    assert len(attempts_of(store, row["id"])) == 4  # the log keeps the whole history


async def test_one_refused_event_does_not_hold_back_the_others(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[200, 400]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock, max_in_flight=2)], clock)
        seqs = seed_events(store, 6, sinks=["hook"], now=clock())  # six different entries
        [report] = await d.deliver_due()
        ids = [r.webhook_id for r in rx.receiver.requests]
    assert (report.delivered, report.failed, report.paused_until) == (5, 1, None)
    assert sorted(str(i) for i in ids) == [f"evt_blog_{s:06d}" for s in seqs]
    states = {r["event_seq"]: r["state"] for r in deliveries_of(store, "hook")}
    assert sorted(states.values()) == ["delivered"] * 5 + ["failed"]


async def test_a_receiver_refusing_everything_is_not_sent_the_backlog(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(default=400) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seed_events(store, 20, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
        assert len(rx.receiver.requests) == REJECTIONS_BEFORE_PAUSE
        assert report.failed == REJECTIONS_BEFORE_PAUSE and report.paused_until is not None


async def test_an_outage_pauses_probes_and_recovers_everything(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(default=503) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seqs = seed_events(store, 10, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
        assert len(rx.receiver.requests) == 1  # one probe, not the whole backlog
        first_pause = report.paused_until
        assert first_pause is not None and 4.5 <= seconds(clock(), first_pause) <= 5.5

        clock.set(first_pause)
        [report] = await d.deliver_due()
        assert len(rx.receiver.requests) == 2  # one more probe, then a longer pause
        assert report.paused_until is not None
        assert 270 <= seconds(clock(), report.paused_until) <= 330
        # Probes take the least-tried events: the first two failed once each, not one twice.
        assert len({r.webhook_id for r in rx.receiver.requests}) == 2

        rx.receiver.set_default(200)
        clock.set(report.paused_until)
        [report] = await d.deliver_due()
        # The probe succeeded: everything goes, the two that failed during the outage included
        # (each failed once, so its own 5 s back-off is long over).
        assert report.delivered == 10
        accepted = {r.webhook_id for r in rx.receiver.accepted()}
    assert accepted == {f"evt_blog_{s:06d}" for s in seqs}
    assert (await store.outbox.sink_row("hook")).paused_until is None


class CountingReceiver(Receiver):
    """Tracks how many requests are being handled at once."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.current = 0
        self.peak = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            return await super().handle(request)
        finally:
            self.current -= 1


async def test_in_flight_attempts_are_bounded_per_sink(store, session) -> None:
    clock = FakeClock()
    recorder = CountingReceiver(default=Reply(delay=0.5))
    async with serve_receiver(receiver=recorder) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock, max_in_flight=3)], clock)
        seed_events(store, 7, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
    assert report.delivered == 7
    assert recorder.peak == 3  # the first is a lone probe, then three at a time, never more


async def test_a_hanging_receiver_never_delays_another_sink(store, session) -> None:
    """Isolation: one sink's receiver hangs (15 s default timeout), the other gets every event
    while the hanging request is still open."""
    hanging = Receiver(default=Reply.hang())
    async with serve_receiver(receiver=hanging) as stuck, serve_receiver() as healthy:
        d = Dispatcher(
            store=store,
            sinks=[
                webhook(stuck.url, session, None, "stuck"),
                webhook(healthy.url, session, None, "healthy"),
            ],
            clock=lambda: datetime.now(UTC),
            rng=random.Random(1),
            shutdown_grace_s=0.2,
        )
        seqs = seed_events(store, 30, sinks=["stuck", "healthy"], now=datetime.now(UTC))
        stop = asyncio.Event()
        running = asyncio.create_task(d.run(stop))
        try:
            await healthy.wait_for(30, timeout=14)
            # The hanging sink's first attempt is still open: nothing recorded for it yet.
            assert len(hanging.requests) == 1 and not hanging.requests[0].answered
            assert (
                store.rows(
                    "SELECT COUNT(*) AS n FROM delivery_attempts a JOIN deliveries d"
                    " ON d.id = a.delivery_id WHERE d.sink = 'stuck'"
                )[0]["n"]
                == 0
            )
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)
    assert sorted(healthy.ids()) == [f"evt_blog_{s:06d}" for s in seqs]
    # Shut down mid-attempt: the lease was handed back, so a restart sends it at once.
    rows = deliveries_of(store, "stuck")
    assert all(r["leased_until"] is None and r["attempts"] == 0 for r in rows)


async def test_key_rotation_sends_a_signature_per_secret(store, session) -> None:
    old = TEST_SECRET
    new = "whsec_" + "bmV3LXNlY3JldC1mb3ItdGhlLXJvdGF0aW9uLXRlc3Q="
    clock = FakeClock()
    async with serve_receiver(new) as rx:  # the receiver already moved to the new secret
        d = dispatcher(store, [webhook(rx.url, session, clock, secrets=[old, new])], clock)
        seed_events(store, 2, sinks=["hook"], now=clock())
        await d.deliver_due()
        requests = rx.receiver.requests
    assert [r.verified for r in requests] == [True, True]
    for r in requests:
        assert len(r.headers["webhook-signature"].split(" ")) == 2
        assert signature_valid(r, old) and signature_valid(r, new)


class ExplodingSink:
    name = "broken"

    async def send(self, event: OutboundEvent) -> SendOutcome:
        raise RuntimeError("boom")

    async def aclose(self) -> None:
        return None


async def test_a_sink_that_raises_is_a_failed_attempt_not_a_dead_dispatcher(
    store, session, tmp_path: Path
) -> None:
    clock = FakeClock()
    archive = FileSink("archive", tmp_path / "archive.jsonl")
    broken: Sink = ExplodingSink()
    d = dispatcher(
        store,
        [
            BoundSink(broken, sink_config("broken", "exploding")),
            BoundSink(archive, sink_config("archive", "file")),
        ],
        clock,
    )
    seed_events(store, 3, sinks=["broken", "archive"], now=clock())
    broken_report, archive_report = await d.deliver_due()
    await archive.aclose()
    assert archive_report.delivered == 3
    assert broken_report.failed == 1
    [first, *_] = deliveries_of(store, "broken")
    assert first["last_error"] == "sink error: RuntimeError: boom"


async def test_a_lease_left_by_a_crashed_process_runs_out(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver() as rx:
        seed_events(store, 2, sinks=["hook"], now=clock())
        # Another process claimed the first one and died before recording anything.
        lease = clock() + timedelta(seconds=25)
        [claimed] = await store.outbox.claim_due("hook", clock(), 1, lease)
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        await d.deliver_due()
        assert [r.webhook_id for r in rx.receiver.requests] == ["evt_blog_000002"]
        clock.set(lease)
        await d.deliver_due()
        assert [r.webhook_id for r in rx.receiver.requests][-1] == claimed.event.id
    assert {r["state"] for r in deliveries_of(store, "hook")} == {"delivered"}


async def test_the_first_dispatcher_to_start_reclaims_stale_leases_at_once(
    store, session, tmp_path: Path
) -> None:
    clock = FakeClock()
    async with serve_receiver() as rx:
        seed_events(store, 2, sinks=["hook"], now=clock())
        lease = clock() + timedelta(seconds=25)
        await store.outbox.claim_due("hook", clock(), 2, lease)  # a process that died mid-send
        # A dispatcher that holds the owner lock knows the lease holder is gone.
        lock_path = tmp_path / "syncd.db-dispatcher.lock"
        alive_elsewhere = OwnerLock(lock_path)
        assert alive_elsewhere.try_acquire()  # ... unless another dispatcher holds it
        second = dispatcher(
            store, [webhook(rx.url, session, clock)], clock, owner_lock=OwnerLock(lock_path)
        )
        await second.deliver_due()
        assert rx.receiver.requests == []  # it respects the leases
        alive_elsewhere.release()

        owner = dispatcher(
            store, [webhook(rx.url, session, clock)], clock, owner_lock=OwnerLock(lock_path)
        )
        [report] = await owner.deliver_due()
        assert report.delivered == 2  # without waiting for the leases to run out
        assert owner.owner_lock is not None
        owner.owner_lock.release()


async def test_file_sink_gets_batches_in_seq_order(store, tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "archive.jsonl"
    archive = FileSink("archive", path, fsync=True)
    d = dispatcher(store, [BoundSink(archive, sink_config("archive", "file"))], clock)
    seqs = seed_events(store, 250, sinks=["archive"], now=clock())
    [report] = await d.deliver_due()
    await archive.aclose()
    assert report.delivered == 250
    lines = path.read_bytes().splitlines()
    assert lines == [payload(store, s) for s in seqs]


ROUND_TRIP_TURNS = 40
ENTRIES = 700
BATCH_TURNS = 1


class _RemoteOutbox:
    """The store's outbox, with every write awaiting a round trip first, as PostgreSQL's does:
    attempts finish while the dispatcher waits for the store."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def exchange(self, *args: Any, **kw: Any) -> Any:
        for _ in range(ROUND_TRIP_TURNS):  # turns of the event loop, not time: deterministic
            await asyncio.sleep(0)
        return await self._inner.exchange(*args, **kw)


class _QueuedBatches:
    """A batch sink that takes its batches one after another, a turn of the event loop each (as
    the file sink's writer thread takes them in turn), and keeps the seqs in arrival order."""

    name = "archive"

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self._writer = asyncio.Lock()

    async def send(self, event: OutboundEvent) -> SendOutcome:
        return (await self.send_batch([event]))[0]

    async def send_batch(self, events: Sequence[OutboundEvent]) -> list[SendOutcome]:
        async with self._writer:
            for _ in range(BATCH_TURNS):
                await asyncio.sleep(0)
            self.seqs.extend(e.seq for e in events)
        return [SendOutcome(ok=True)] * len(events)

    async def aclose(self) -> None:
        pass


async def test_one_pass_sends_everything_due_when_attempts_finish_during_store_writes(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`syncd sync`'s pass ends only when nothing is due: attempts that all finish while the
    store is being written (a remote store) are recorded, and what they unblock (an entry's
    next event) is claimed, in the same pass. Per-entry order holds throughout."""
    # Every finished attempt is written at once, so writes that only record happen while the
    # window is full (with the defaults, they need 256 finished or 50 ms: timing, not steps).
    monkeypatch.setattr(delivery, "RECORD_BATCH", 1)
    clock = FakeClock()
    seqs = seed_events(store, 3000, sinks=["archive"], now=clock(), entries=ENTRIES)
    sink = _QueuedBatches()
    remote = type("RemoteStore", (), {"outbox": _RemoteOutbox(store.outbox)})()
    d = Dispatcher(
        store=remote,
        sinks=[BoundSink(sink, sink_config("archive", "file"))],
        clock=clock,
        rng=random.Random(7),
    )
    [report] = await d.deliver_due()
    assert report.delivered == len(seqs)
    assert sorted(sink.seqs) == seqs
    assert {r["state"] for r in deliveries_of(store, "archive")} == {"delivered"}
    entry_of = {s: (s - seqs[0]) % ENTRIES for s in seqs}
    for entry in range(ENTRIES):
        mine = [s for s in sink.seqs if entry_of[s] == entry]
        assert mine == sorted(mine)


async def test_send_now_resends_even_a_delivered_delivery(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver() as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        [seq] = seed_events(store, 1, sinks=["hook"], now=clock())
        await d.deliver_due()
        [row] = deliveries_of(store, "hook")
        clock.advance(30)
        due, outcome, state = await d.send_now(row["id"])
        requests = rx.receiver.requests
    assert outcome.ok and str(state) == "delivered" and due.event.seq == seq
    assert [r.webhook_id for r in requests] == [due.event.id] * 2
    assert requests[0].body == requests[1].body
    assert deliveries_of(store, "hook")[0]["attempts"] == 2


async def test_enable_makes_waiting_and_failed_deliveries_due_now(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[500, 410]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock, schedule=[3600])], clock)
        first, second, third = seed_events(store, 3, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
        # A 500 on the first (its retry an hour away), then a 410: the sink is disabled.
        assert report.disabled and len(rx.receiver.requests) == 2
        rows = {r["event_seq"]: r for r in deliveries_of(store, "hook")}
        assert when(rows[first]["next_attempt_at"]) > clock() + timedelta(minutes=50)

        clock.advance(60)
        await store.outbox.enable_sink("hook", clock())
        rows = {r["event_seq"]: r for r in deliveries_of(store, "hook")}
        assert when(rows[first]["next_attempt_at"]) == clock()  # pulled forward
        assert all(when(rows[s]["next_attempt_at"]) <= clock() for s in (second, third))
        [report] = await d.deliver_due()  # without waiting out the hour
        assert report.delivered == 3 and not report.disabled
    assert {r["state"] for r in deliveries_of(store, "hook")} == {"delivered"}


async def test_a_resume_request_makes_a_paused_sinks_backlog_due_now(store, session) -> None:
    clock = FakeClock()
    async with serve_receiver(script=[Reply(503, {"Retry-After": "7200"})]) as rx:
        d = dispatcher(store, [webhook(rx.url, session, clock)], clock)
        seed_events(store, 3, sinks=["hook"], now=clock())
        [report] = await d.deliver_due()
        assert report.paused_until == clock() + timedelta(seconds=7200)
        [failed] = [r for r in deliveries_of(store, "hook") if r["state"] == "failed"]
        assert when(failed["next_attempt_at"]) == clock() + timedelta(seconds=7200)

        clock.advance(30)
        await store.outbox.request_resume("hook", clock())
        [failed] = [r for r in deliveries_of(store, "hook") if r["state"] == "failed"]
        assert when(failed["next_attempt_at"]) == clock()
        [report] = await d.deliver_due()
        assert report.delivered == 3 and report.paused_until is None


async def test_a_pausing_sink_hands_back_what_it_leased_ahead(store, session) -> None:
    """A healthy sink leases several windows ahead; when the receiver goes down mid-stream the
    running daemon hands those leases back (another process may send them, probes choose
    freely) and records what finished."""
    receiver = Receiver(script=[200] * 6, default=503)
    async with serve_receiver(receiver=receiver) as rx:
        d = Dispatcher(
            store=store,
            sinks=[webhook(rx.url, session, None)],
            clock=lambda: datetime.now(UTC),
            rng=random.Random(1),
        )
        seed_events(store, 60, sinks=["hook"], now=datetime.now(UTC))
        stop = asyncio.Event()
        running = asyncio.create_task(d.run(stop))

        async def settled() -> bool:
            rows = deliveries_of(store, "hook")
            paused = (await store.outbox.sink_row("hook")).paused_until is not None
            return paused and all(r["leased_until"] is None for r in rows)

        try:
            await receiver.wait_for_requests(7)
            for _ in range(500):
                if await settled():
                    break
                await asyncio.sleep(0.01)
            rows = deliveries_of(store, "hook")
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)
    assert (await store.outbox.sink_row("hook")).paused_until is not None
    assert [r["id"] for r in rows if r["leased_until"] is not None] == []
    delivered = [r for r in rows if r["state"] == "delivered"]
    assert len(delivered) == len(receiver.accepted()) == 6
    assert sum(r["attempts"] for r in rows) == len(receiver.requests)  # every attempt recorded


class _GoesDown:
    """A single-event sink whose receiver goes down after `up` attempts: each attempt takes a few
    turns of the event loop, then succeeds, or answers 503 once the receiver is down. Counts
    the attempts started after the first 503 was answered (the sink was paused by then)."""

    name = "hook"

    def __init__(self, up: int) -> None:
        self.up = up
        self.sent = 0
        self.down_answered = False
        self.started_after_down = 0

    async def send(self, event: OutboundEvent) -> SendOutcome:
        self.sent += 1
        number = self.sent
        if self.down_answered:
            self.started_after_down += 1
        for _ in range(3):
            await asyncio.sleep(0)
        if number <= self.up:
            return SendOutcome(ok=True, status=200)
        self.down_answered = True
        return SendOutcome(ok=False, status=503, error="HTTP 503")

    async def aclose(self) -> None:
        pass


async def _pass_into_outage(store: SqliteStore, sink: _GoesDown, outbox: Any) -> SinkReport:
    """One delivery pass of 400 events, 8 in flight, through `outbox` (a remote store's), to a
    receiver that goes down after its first 40."""
    clock = FakeClock()
    seed_events(store, 400, sinks=["hook"], now=clock())
    d = Dispatcher(
        store=type("RemoteStore", (), {"outbox": outbox})(),
        sinks=[BoundSink(sink, sink_config("hook", max_in_flight=8))],
        clock=clock,
        rng=random.Random(3),
    )
    [report] = await d.deliver_due()
    return report


async def test_no_attempt_starts_once_a_failure_during_a_store_write_paused_the_sink(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempts that finish while the store is written (a remote store) can pause the sink;
    what that write leased must then go back, not be sent to the receiver that just said it
    is unavailable."""
    monkeypatch.setattr(delivery, "RECORD_BATCH", 1)  # a write after every finished attempt
    sink = _GoesDown(up=40)
    report = await _pass_into_outage(store, sink, _RemoteOutbox(store.outbox))
    assert report.paused_until is not None and sink.down_answered
    assert sink.started_after_down == 0
    assert report.delivered == 40
    rows = deliveries_of(store, "hook")
    assert [r["id"] for r in rows if r["leased_until"] is not None] == []
    assert sum(r["attempts"] for r in rows) == sink.sent  # every attempt recorded


class _LeaseChecking:
    """A single-event sink that notes, for every attempt, whether the delivery's lease outlasts
    the attempt's timeout at the moment it starts (by the store's row and the dispatcher's
    clock)."""

    name = "hook"

    def __init__(self, store: SqliteStore, clock: FakeClock, timeout_s: float) -> None:
        self.store, self.clock, self.timeout_s = store, clock, timeout_s
        self.sent = 0
        self.short_leases = 0

    async def send(self, event: OutboundEvent) -> SendOutcome:
        self.sent += 1
        [row] = self.store.rows(
            "SELECT leased_until FROM deliveries WHERE event_seq = ?", (event.seq,)
        )
        if when(row["leased_until"]) < self.clock() + timedelta(seconds=self.timeout_s):
            self.short_leases += 1
        await asyncio.sleep(0)
        return SendOutcome(ok=True, status=200)

    async def aclose(self) -> None:
        pass


class _SlowWrites(_RemoteOutbox):
    """A remote outbox whose writes (claims and exchanges) each take `seconds` of the clock,
    the first `slow` of them, or all when `slow` is None (a store that stays slow: a busy
    PostgreSQL, SQLite waiting on its busy timeout). What was leased before a slow write has
    that much less of its lease left when the write returns."""

    def __init__(
        self, inner: Any, clock: FakeClock, seconds: float, slow: int | None = None
    ) -> None:
        super().__init__(inner)
        self.clock, self.seconds, self.slow, self.writes = clock, seconds, slow, 0

    async def exchange(self, *args: Any, **kw: Any) -> Any:
        return await self._timed(super().exchange(*args, **kw))

    async def claim_due(self, *args: Any, **kw: Any) -> Any:
        return await self._timed(self._inner.claim_due(*args, **kw))

    async def _timed(self, write: Any) -> Any:
        result = await write
        if self.slow is None or self.writes < self.slow:
            self.clock.advance(self.seconds)
        self.writes += 1
        return result


async def test_what_a_slow_store_write_leased_starts_only_with_its_lease_left(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt starts only while its delivery's lease outlasts the attempt's timeout, judged
    at the time the store's write returned, not when it began: a lease that ran short during a
    slow write goes back and is claimed again, so no attempt can outlive its lease (another
    process could then send the same delivery at once)."""
    monkeypatch.setattr(delivery, "RECORD_BATCH", 1)
    clock = FakeClock()
    seqs = seed_events(store, 300, sinks=["hook"], now=clock())
    config = sink_config("hook", timeout_s=15.0)
    sink = _LeaseChecking(store, clock, config.timeout_s)
    # Past what a lease taken ahead keeps beyond the timeout (ahead × timeout + margin).
    slow = delivery.CLAIM_AHEAD_WINDOWS * config.timeout_s + delivery.LEASE_MARGIN_S + 5
    outbox = _SlowWrites(store.outbox, clock, slow, slow=2)  # the probe's claim, then a write
    remote = type("RemoteStore", (), {"outbox": outbox})()
    d = Dispatcher(store=remote, sinks=[BoundSink(sink, config)], clock=clock, rng=random.Random(5))
    [report] = await d.deliver_due()
    assert outbox.writes > 2  # the slow writes happened
    assert sink.short_leases == 0
    assert report.delivered == len(seqs) == sink.sent


@pytest.mark.parametrize("max_in_flight", [1, 4])
async def test_a_store_that_stays_slow_still_delivers(
    store: SqliteStore, max_in_flight: int
) -> None:
    """Every write takes longer than a probe's or a strict sink's lease has to spare beyond the
    attempt's timeout: claims are leased longer by the writes' length instead of being given
    back and claimed again forever (which also held the event loop with a local store)."""
    clock = FakeClock()
    seqs = seed_events(store, 20, sinks=["hook"], now=clock())
    config = sink_config("hook", timeout_s=15.0, max_in_flight=max_in_flight)
    sink = _LeaseChecking(store, clock, config.timeout_s)
    outbox = _SlowWrites(store.outbox, clock, delivery.LEASE_MARGIN_S - 4)
    remote = type("RemoteStore", (), {"outbox": outbox})()
    d = Dispatcher(store=remote, sinks=[BoundSink(sink, config)], clock=clock, rng=random.Random(5))
    async with asyncio.timeout(30):
        [report] = await d.deliver_due()
    assert report.delivered == len(seqs) == sink.sent
    assert sink.short_leases == 0
    assert outbox.writes < 10 * len(seqs)


class _DisablingRemote(_RemoteOutbox):
    """A remote outbox whose disabling of a sink awaits a round trip too."""

    async def disable_sink(self, *args: Any, **kw: Any) -> Any:
        for _ in range(ROUND_TRIP_TURNS):
            await asyncio.sleep(0)
        return await self._inner.disable_sink(*args, **kw)


class _Gone(_GoesDown):
    """The receiver answers 410 Gone after `up` attempts."""

    async def send(self, event: OutboundEvent) -> SendOutcome:
        outcome = await super().send(event)
        if outcome.ok:
            return outcome
        return SendOutcome(ok=False, status=410, error="HTTP 410", disable_sink=True)


async def test_no_attempt_starts_once_a_410_disabled_the_sink_on_a_remote_store(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 410 disables the sink at once: attempts do not go on while a remote store writes the
    sink's disabled state."""
    monkeypatch.setattr(delivery, "RECORD_BATCH", 1)
    sink = _Gone(up=40)
    report = await _pass_into_outage(store, sink, _DisablingRemote(store.outbox))
    assert report.disabled and sink.down_answered
    assert sink.started_after_down == 0
    assert report.delivered == 40
    assert (await store.outbox.sink_row("hook")).disabled_at is not None


class _Hanging:
    """A single-event sink whose attempts wait until released."""

    name = "hook"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def send(self, event: OutboundEvent) -> SendOutcome:
        self.started += 1
        await self.release.wait()
        return SendOutcome(ok=True, status=200)

    async def aclose(self) -> None:
        return None


async def test_a_sink_with_every_slot_busy_leases_ahead_but_looks_before_taking_the_write_lock(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every slot busy and nothing leased ahead, a healthy sink leases ahead at once (the
    store's work overlaps the attempts); once nothing more is due, the wakes of a sink whose
    receiver hangs look without the write lock instead of taking it each time."""
    clock = FakeClock()
    sink = _Hanging()
    bound = BoundSink(sink, sink_config("hook", max_in_flight=2, options={"url": "http://x/"}))
    bound.health = SinkHealth(Health.CLOSED)  # healthy: leases ahead
    d = Dispatcher(store=store, sinks=[bound], clock=clock, rng=random.Random(1))
    seed_events(store, 5, sinks=["hook"], now=clock())
    writes = 0
    write = store.db.write

    def counted() -> Any:
        nonlocal writes
        writes += 1
        return write()

    monkeypatch.setattr(store.db, "write", counted)
    report = delivery.SinkReport("hook")
    await d._fill(bound, report)
    await asyncio.sleep(0)
    assert len(bound.in_flight) == 2 and sink.started == 2
    # Two started, three leased ahead in the same claim; nothing left to lease.
    assert [d_.event.seq for d_ in bound.ready] == [3, 4, 5]
    bound.ready.clear()  # as if started elsewhere: every slot busy, nothing leased ahead
    before = writes
    for _ in range(5):
        await d._fill(bound, report)
    assert writes == before  # looked (no rows free), took no write lock
    sink.release.set()
    await asyncio.gather(*bound.in_flight)
