"""Crash safety of delivery: SIGKILL `syncd run` again and again while it delivers hundreds of
events to a slow receiver (its own process), then let one last run finish.

Afterwards every event in the store reached the receiver at least once, and every request for an
event carried the same id and byte-identical body. The kill points are drawn from a seeded
`random.Random` and anchored on progress (the receiver's log growing), not on wall-clock guesses,
so a slow machine kills at the same phases as a fast one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import random
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from syncd.storage.sqlite import SqliteStore
from tests.conftest import webhook_sink, write_config
from tests.support.envelopes import read_envelopes
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.ordering import arrival_of, order_violations
from tests.support.outbox import seed_events
from tests.support.process import start_syncd
from tests.support.receiver import SpawnedReceiver, spawn_receiver

EVENTS = 300
KILLS = 8
SEED = 20261128


def store_counts(db: Path) -> tuple[int, int]:
    """(events, deliveries not yet delivered), read without disturbing the writer."""
    if not db.exists():
        return 0, 0
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        open_ = conn.execute("SELECT COUNT(*) FROM deliveries WHERE state != 'delivered'")
        return int(events), int(open_.fetchone()[0])
    except sqlite3.OperationalError:  # schema not there yet (killed before the migrations)
        return 0, 0
    finally:
        conn.close()


async def start_daemon(config: Path) -> asyncio.subprocess.Process:
    # Its own process group: the kill takes the parser workers too.
    return await start_syncd(
        config,
        "run",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        new_session=True,
    )


def kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def dispatcher_running(db: Path) -> bool:
    """A daemon's dispatcher holds the store's owner lock once it is up (signal handlers too)."""
    lock = db.with_name(db.name + "-dispatcher.lock")
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if we got it
    return False


def grew(rx: SpawnedReceiver, seen: int) -> bool:
    return len(rx.records()) > seen


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_sigkill_during_delivery_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "syncd.db"
    log = tmp_path / "receiver.jsonl"
    async with (
        serve_feed(BloggerFeed(EVENTS)) as feed,
        spawn_receiver(log, delay=0.05) as rx,
    ):
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": feed.url, "interval": "1h"}],
            sinks=[webhook_sink(rx.url, initial="deliver", timeout="2s", max_in_flight=4)],
        )
        kills = kills_mid_delivery = 0
        while kills < KILLS:
            seen = len(rx.records())
            proc = await start_daemon(config)
            try:
                # Anchor: this run has started delivering (or, late on, has nothing left it may
                # send yet because the killed runs' leases still hold); then a random offset.
                await wait_until(functools.partial(grew, rx, seen), timeout=20)
                await asyncio.sleep(rng.uniform(0.0, 0.35))
                events, undelivered = store_counts(db)
                kill_group(proc)
            finally:
                kill_group(proc)
                await proc.wait()
            assert proc.returncode == -signal.SIGKILL
            kills += 1
            kills_mid_delivery += events > 0 and undelivered > 0

        # The last run: no kill. It takes over the leases the killed runs left and sends the rest.
        proc = await start_daemon(config)
        try:
            assert await wait_until(functools.partial(dispatcher_running, db), timeout=30)
            done = await wait_until(lambda: store_counts(db) == (EVENTS, 0), timeout=90)
            assert done, f"store: {store_counts(db)}"
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        assert proc.returncode == 0
        records = rx.records()

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        payloads = {eid: envelope for _, eid, envelope in read_envelopes(conn)}
    finally:
        conn.close()
    assert len(payloads) == EVENTS

    bodies: dict[str, set[str]] = defaultdict(set)
    for r in records:
        bodies[r["headers"]["webhook-id"]].add(r["body"])
    accepted = Counter(r["headers"]["webhook-id"] for r in records if r["accepted"])
    # Every event in the store reached the receiver at least once...
    assert set(accepted) == set(payloads)
    # ... and every request for it, redeliveries included, carried the same id and body.
    assert all(bodies[event_id] == {payloads[event_id]} for event_id in payloads)
    assert all(r["verified"] for r in records)
    assert kills_mid_delivery >= KILLS // 2  # most kills landed while deliveries were open

    duplicates = sum(accepted.values()) - len(accepted)
    print(
        f"\ncrash loop: {kills} SIGKILLs ({kills_mid_delivery} mid-delivery), {EVENTS} events,"
        f" {len(records)} requests, {sum(accepted.values())} accepted,"
        f" {duplicates} duplicate deliveries (same id and body)"
    )


ORDER_EVENTS = 120
ORDER_ENTRIES = 6
ORDER_KILLS = 4


async def test_sigkill_during_delivery_keeps_per_entry_order(tmp_path: Path) -> None:
    """Six entries with twenty events each wait in the outbox; `syncd run` (max_in_flight = 8)
    is SIGKILLed mid-delivery again and again. The receiver, answering after a delay, never
    applies an entry's event after a later one of the same entry: a restart resends what the
    killed run left unrecorded before anything that comes after it."""
    rng = random.Random(SEED + 1)
    db = tmp_path / "syncd.db"
    store = SqliteStore.open(db)
    seqs = seed_events(
        store, ORDER_EVENTS, sinks=["hook"], now=datetime.now(UTC), entries=ORDER_ENTRIES
    )
    store.db.close()
    log = tmp_path / "receiver.jsonl"
    async with serve_feed(BloggerFeed(2)) as feed, spawn_receiver(log, delay=0.03) as rx:
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": feed.url, "interval": "1h"}],
            sinks=[webhook_sink(rx.url, timeout="2s", max_in_flight=8)],
        )
        kills_mid_delivery = 0
        for _ in range(ORDER_KILLS):
            seen = len(rx.records())
            proc = await start_daemon(config)
            try:
                await wait_until(functools.partial(grew, rx, seen), timeout=20)
                await asyncio.sleep(rng.uniform(0.0, 0.2))
                kills_mid_delivery += store_counts(db)[1] > 0
            finally:
                kill_group(proc)
                await proc.wait()
            assert proc.returncode == -signal.SIGKILL

        proc = await start_daemon(config)
        try:
            done = await wait_until(lambda: store_counts(db)[1] == 0, timeout=60)
            assert done, f"store: {store_counts(db)}"
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        records = rx.records()

    applied = [arrival_of(r["body"]) for r in records if r["accepted"]]  # in answer order
    assert order_violations(applied) == []
    assert {a.seq for a in applied} >= set(seqs)
    assert kills_mid_delivery >= ORDER_KILLS // 2
