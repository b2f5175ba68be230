"""Delivery order: per entry always, per sink with `max_in_flight = 1` (docs/design.md, "Order").

Events of a few entries are interleaved in the outbox, so consecutive events often belong to the
same entry. The receiver (`tests.support.ordering.OrderingReceiver`) answers after random delays,
so the requests the dispatcher lets overlap really do finish out of order; it flags two requests of
one entry in flight at once and checks the order in which it applied each entry's events. Retry
schedules run on an injected clock moved to the instants the dispatcher wrote down.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.delivery import CLAIM_AHEAD_MIN_EVENTS, BoundSink, Dispatcher, OwnerLock
from syncd.sinks.file import FileSink
from syncd.sinks.webhook import WebhookSink
from syncd.storage.sqlite import SqliteStore
from tests.support.ordering import (
    Arrival,
    OrderingReceiver,
    arrival_of,
    order_violations,
    per_entry,
)
from tests.support.outbox import FakeClock, deliveries_of, seed_events, sink_config, when
from tests.support.receiver import TEST_SECRET, serve_receiver


def dispatcher(
    store: SqliteStore,
    url: str,
    session: aiohttp.ClientSession,
    clock: Any,
    *,
    owner_lock: OwnerLock | None = None,
    **config: Any,
) -> Dispatcher:
    cfg = sink_config("hook", options={"url": url}, **config)
    sink = WebhookSink("hook", url, [TEST_SECRET], cfg.timeout_s, session=session, clock=clock)
    return Dispatcher(
        store=store,
        sinks=[BoundSink(sink, cfg)],
        clock=clock,
        rng=random.Random(7),
        owner_lock=owner_lock,
    )


def event_id(seq: int) -> str:
    return f"evt_blog_{seq:06d}"


def entry_seqs(seqs: Sequence[int], entries: int) -> dict[str, list[int]]:
    """The seqs `seed_events(..., entries=entries)` gave each entry, in order."""
    out: dict[str, list[int]] = {}
    for i, seq in enumerate(seqs):
        out.setdefault(f"blog/tag:test,2026:blog.post-{i % entries + 1}", []).append(seq)
    return out


async def test_events_of_one_entry_are_never_in_flight_together_and_arrive_in_seq_order(
    store, session
) -> None:
    clock = FakeClock()
    rx_ = OrderingReceiver(seed=3, max_delay=0.03)
    async with serve_receiver(receiver=rx_) as rx:
        d = dispatcher(store, rx.url, session, clock, max_in_flight=8)
        seqs = seed_events(store, 60, sinks=["hook"], now=clock(), entries=5)
        [report] = await d.deliver_due()
    assert report.delivered == 60
    assert rx_.overlaps == []
    assert order_violations(rx_.applied) == []
    assert per_entry(rx_.applied) == entry_seqs(seqs, 5)  # each once, in seq order
    # The entries really went in parallel (one event of each at a time), not one by one.
    assert rx_.peak == 5


async def test_claims_far_ahead_keep_each_entrys_order(store, session) -> None:
    """A single-event sink leases at least CLAIM_AHEAD_MIN_EVENTS ahead per transaction: with
    more entries than that, each with two events, a claim holds many entries' first events and
    none of their second ones; every second event still goes only after its first is recorded."""
    entries = CLAIM_AHEAD_MIN_EVENTS + 20
    clock = FakeClock()
    rx_ = OrderingReceiver(seed=11, max_delay=0.005)
    async with serve_receiver(receiver=rx_) as rx:
        d = dispatcher(store, rx.url, session, clock, max_in_flight=8)
        seqs = seed_events(store, 2 * entries, sinks=["hook"], now=clock(), entries=entries)
        [report] = await d.deliver_due()
    assert report.delivered == 2 * entries
    assert rx_.overlaps == []
    assert order_violations(rx_.applied) == []
    assert per_entry(rx_.applied) == entry_seqs(seqs, entries)
    assert rx_.peak == 8  # the window was used in full


async def test_a_failed_event_holds_back_its_entry_not_the_others(store, session) -> None:
    clock = FakeClock()
    rx_ = OrderingReceiver(seed=4)
    async with serve_receiver(receiver=rx_) as rx:
        d = dispatcher(store, rx.url, session, clock, max_in_flight=4)
        seqs = seed_events(store, 24, sinks=["hook"], now=clock(), entries=4)
        by_entry = entry_seqs(seqs, 4)
        held = by_entry["blog/tag:test,2026:blog.post-2"]
        rx_.refuse(event_id(held[1]), 500, 500)  # the entry's second event fails twice

        [report] = await d.deliver_due()
        assert (report.delivered, report.failed) == (18 + 1, 1)
        # Its later events were not sent while it waits for its retry; the other entries were.
        assert [rx_.sent(event_id(s)) for s in held] == [1, 1, 0, 0, 0, 0]
        row = next(r for r in deliveries_of(store, "hook") if r["event_seq"] == held[1])
        assert row["state"] == "failed"

        clock.set(when(row["next_attempt_at"]))  # 5 s later: fails again, 5 min back-off
        [report] = await d.deliver_due()
        assert report.failed == 1 and rx_.sent(event_id(held[2])) == 0
        row = next(r for r in deliveries_of(store, "hook") if r["event_seq"] == held[1])
        clock.set(when(row["next_attempt_at"]))
        [report] = await d.deliver_due()
        assert report.delivered == 5
    assert order_violations(rx_.applied) == []
    assert per_entry(rx_.applied) == by_entry
    assert {r["state"] for r in deliveries_of(store, "hook")} == {"delivered"}


async def test_order_holds_through_a_receiver_outage(store, session) -> None:
    clock = FakeClock()
    rx_ = OrderingReceiver(seed=5, default=503)
    async with serve_receiver(receiver=rx_) as rx:
        d = dispatcher(store, rx.url, session, clock, max_in_flight=8)
        seqs = seed_events(store, 40, sinks=["hook"], now=clock(), entries=4)
        [report] = await d.deliver_due()  # down: one probe, then a pause
        pause = report.paused_until
        assert pause is not None
        clock.set(pause)
        [report] = await d.deliver_due()  # still down: another probe, a longer pause
        assert report.paused_until is not None
        assert len(rx_.requests) == 2
        # Probes spread over the entries' first events, never a later event of an entry.
        first_events = {s[0] for s in entry_seqs(seqs, 4).values()}
        assert {int(str(r.webhook_id)[-6:]) for r in rx_.requests} <= first_events

        rx_.set_default(200)
        clock.set(report.paused_until)
        [report] = await d.deliver_due()
        assert report.delivered == 40
    assert rx_.overlaps == []
    assert order_violations(rx_.applied) == []
    assert per_entry(rx_.applied) == entry_seqs(seqs, 4)


async def test_a_dead_event_lets_the_later_events_of_its_entry_go(store, session) -> None:
    clock = FakeClock()
    rx_ = OrderingReceiver(seed=6)
    async with serve_receiver(receiver=rx_) as rx:
        d = dispatcher(store, rx.url, session, clock, schedule=[1])  # two attempts, then dead
        seqs = seed_events(store, 9, sinks=["hook"], now=clock(), entries=3)
        doomed, *later = entry_seqs(seqs, 3)["blog/tag:test,2026:blog.post-1"]
        rx_.refuse(event_id(doomed), 400, 400)

        [report] = await d.deliver_due()
        assert report.failed == 1 and [rx_.sent(event_id(s)) for s in later] == [0, 0]
        row = next(r for r in deliveries_of(store, "hook") if r["event_seq"] == doomed)
        clock.set(when(row["next_attempt_at"]))
        [report] = await d.deliver_due()
        # Dead after its last attempt: the entry's later events go out in the same pass.
        assert (report.dead, report.delivered) == (1, 2)
    assert [a.seq for a in rx_.applied if a.seq in later] == later
    states = {r["event_seq"]: r["state"] for r in deliveries_of(store, "hook")}
    assert states[doomed] == "dead" and {states[s] for s in later} == {"delivered"}


async def test_max_in_flight_1_keeps_strict_seq_order_for_the_whole_sink(store, session) -> None:
    clock = FakeClock()
    rx_ = OrderingReceiver(seed=7)
    async with serve_receiver(receiver=rx_) as rx:
        d = dispatcher(store, rx.url, session, clock, max_in_flight=1)
        seqs = seed_events(store, 6, sinks=["hook"], now=clock())  # six different entries
        rx_.refuse(event_id(seqs[1]), 400)

        [report] = await d.deliver_due()
        # The refused second event holds the whole sink, not just its own entry.
        assert (report.delivered, report.failed) == (1, 1)
        assert [r.webhook_id for r in rx_.requests] == [event_id(s) for s in seqs[:2]]

        [row] = [r for r in deliveries_of(store, "hook") if r["state"] == "failed"]
        clock.set(when(row["next_attempt_at"]))
        [report] = await d.deliver_due()
        assert report.delivered == 5
    assert [a.seq for a in rx_.applied] == seqs  # strictly in seq order
    assert rx_.peak == 1


async def test_after_a_restart_reclaimed_leases_go_first(store, session, tmp_path: Path) -> None:
    """A dispatcher died with the head of every entry leased (sent, never recorded): the next one
    to start reclaims them and resends them before their entries' later events."""
    clock = FakeClock()
    rx_ = OrderingReceiver(seed=8)
    async with serve_receiver(receiver=rx_) as rx:
        seqs = seed_events(store, 30, sinks=["hook"], now=clock(), entries=3)
        heads = await store.outbox.claim_due("hook", clock(), 10, clock().replace(year=2100))
        assert [h.event.seq for h in heads] == seqs[:3]  # one per entry, never two
        lock = OwnerLock(tmp_path / "syncd.db-dispatcher.lock")
        d = dispatcher(store, rx.url, session, clock, max_in_flight=8, owner_lock=lock)
        [report] = await d.deliver_due()
        lock.release()
    assert report.delivered == 30
    assert order_violations(rx_.applied) == []
    assert per_entry(rx_.applied) == entry_seqs(seqs, 3)


def test_order_violations_flags_an_entry_going_backwards() -> None:
    a1, a2, b1 = Arrival("a", 1, "e1"), Arrival("a", 3, "e3"), Arrival("b", 2, "e2")
    assert order_violations([a1, b1, a2, a2]) == []  # a redelivery of the latest is fine
    assert order_violations([a2, b1, a1]) == ["a: seq 1 (e1) after seq 3"]


@pytest.mark.parametrize("max_in_flight", [4, 1])
async def test_a_file_sink_keeps_entry_order_and_max_in_flight_1_keeps_seq_order(
    store, tmp_path: Path, max_in_flight: int
) -> None:
    clock = FakeClock()
    path = tmp_path / "archive.jsonl"
    archive = FileSink("archive", path, fsync=True)
    d = Dispatcher(
        store=store,
        sinks=[BoundSink(archive, sink_config("archive", "file", max_in_flight=max_in_flight))],
        clock=clock,
        rng=random.Random(7),
        batch_size=8,
    )
    seqs = seed_events(store, 60, sinks=["archive"], now=clock(), entries=4)
    [report] = await d.deliver_due()
    await archive.aclose()
    assert report.delivered == 60
    written = [arrival_of(line) for line in path.read_bytes().splitlines()]
    assert order_violations(written) == []
    assert per_entry(written) == entry_seqs(seqs, 4)
    if max_in_flight == 1:
        assert [a.seq for a in written] == seqs
