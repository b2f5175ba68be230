"""Benchmark: deliveries per second from the outbox to a loopback webhook receiver, and to a file.

Prints figures, not verdicts. The receiver is `tests.support.receiver` in its own process (it
verifies every signature, as a real consumer would). The syncd figure is the real dispatcher: lease
from SQLite in seq order, sign, POST, record the attempt and its log row, `max_in_flight` at a time.
The baseline, run in this same process against the same receiver, signs and POSTs the same bodies
with the same concurrency and no store at all: the ratio is what the outbox's bookkeeping costs.
The file sink figure (batches of 100, fsync per batch) is compared with appending the same lines
in the same batches with one write and one fsync each. Each line also gives the CPU of this
process per event (the file sink's writer thread included, the receiver's process not): rates
follow loopback latency and the disk's fsync, which a shared machine moves by 10x within
minutes; CPU is the figure to compare between checkouts.

    .venv/bin/python bench/deliveries.py [--events 2000] [--in-flight 4] [--runs 3] [--breakdown]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.delivery import BoundSink, Dispatcher  # noqa: E402
from syncd.model import OutboundEvent  # noqa: E402
from syncd.sinks.file import FileSink  # noqa: E402
from syncd.sinks.webhook import WebhookSink, session_for_webhooks  # noqa: E402
from syncd.storage.sqlite import SqliteStore  # noqa: E402
from tests.support.outbox import seed_events, sink_config  # noqa: E402
from tests.support.receiver import TEST_SECRET, spawn_receiver  # noqa: E402


@dataclass(frozen=True)
class Run:
    """One run: events per second (wall), and CPU of this process per event in microseconds
    (the file sink's writer thread included; the receiver's process not)."""

    rate: float
    cpu_us: float


def timed(events: int, elapsed: float, cpu: float) -> Run:
    return Run(events / elapsed, cpu / events * 1e6)


def seeded_store(directory: Path, events: int, sink: str) -> SqliteStore:
    store = SqliteStore.open(directory / "bench.db")
    seed_events(store, events, sinks=[sink], now=datetime.now(UTC))
    return store


def time_store_writes(store: SqliteStore, breakdown: dict[str, float]) -> None:
    """Add up the seconds spent inside the store's write transactions in breakdown["store"]."""
    write = store.db.write

    @contextlib.contextmanager
    def timed_write() -> Iterator[sqlite3.Connection]:
        started = time.perf_counter()
        try:
            with write() as conn:
                yield conn
        finally:
            spent = time.perf_counter() - started
            breakdown["store"] = breakdown.get("store", 0.0) + spent

    store.db.write = timed_write  # type: ignore[method-assign]


def outbound(store: SqliteStore) -> list[OutboundEvent]:
    return [
        OutboundEvent(r["id"], r["seq"], r["type"], str(r["payload"]).encode())
        for r in store.rows("SELECT id, seq, type, payload FROM events ORDER BY seq")
    ]


async def syncd_webhook(
    url: str, events: int, in_flight: int, breakdown: dict[str, float] | None = None
) -> Run:
    """Deliveries per second through the dispatcher to the receiver; with `breakdown`, also the
    seconds spent inside store transactions (they block the event loop)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = seeded_store(Path(tmp), events, "hook")
        if breakdown is not None:
            time_store_writes(store, breakdown)
        try:
            async with session_for_webhooks(limit_per_host=0) as session:
                sink = WebhookSink("hook", url, [TEST_SECRET], session=session)
                bound = BoundSink(
                    sink,
                    sink_config("hook", "webhook", max_in_flight=in_flight, options={"url": url}),
                )
                dispatcher = Dispatcher(
                    store=store,
                    sinks=[bound],
                    clock=lambda: datetime.now(UTC),
                    rng=random.Random(1),
                )
                started, cpu = time.perf_counter(), time.process_time()
                [report] = await dispatcher.deliver_due()
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            if breakdown is not None:
                breakdown["total"] = elapsed
            if report.delivered != events:
                raise SystemExit(f"syncd delivered {report.delivered} of {events}: {report}")
        finally:
            store.db.close()
    return timed(events, elapsed, cpu)


async def baseline_webhook(url: str, events: int, in_flight: int) -> Run:
    """Sign and POST the same bodies, `in_flight` at a time, without any store."""
    with tempfile.TemporaryDirectory() as tmp:
        store = seeded_store(Path(tmp), events, "hook")
        bodies = outbound(store)
        store.db.close()
    async with session_for_webhooks(limit_per_host=0) as session:
        sink = WebhookSink("hook", url, [TEST_SECRET], session=session)
        queue = iter(bodies)

        async def worker() -> None:
            for event in queue:
                outcome = await sink.send(event)
                if not outcome.ok:
                    raise SystemExit(f"baseline POST failed: {outcome.error}")

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return timed(events, elapsed, cpu)


async def syncd_file(events: int, breakdown: dict[str, float] | None = None) -> Run:
    """Events per second through the dispatcher into a file sink. With `breakdown`, also adds up
    the seconds spent inside store transactions (they block the event loop)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = seeded_store(Path(tmp), events, "archive")
        if breakdown is not None:
            time_store_writes(store, breakdown)
        sink = FileSink("archive", Path(tmp) / "events.jsonl", fsync=True)
        dispatcher = Dispatcher(
            store=store,
            sinks=[BoundSink(sink, sink_config("archive", "file"))],
            clock=lambda: datetime.now(UTC),
            rng=random.Random(1),
        )
        started, cpu = time.perf_counter(), time.process_time()
        [report] = await dispatcher.deliver_due()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await sink.aclose()
        store.db.close()
    if report.delivered != events:
        raise SystemExit(f"file sink delivered {report.delivered} of {events}")
    if breakdown is not None:
        breakdown["total"] = elapsed
    return timed(events, elapsed, cpu)


def baseline_file(events: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        store = seeded_store(Path(tmp), events, "archive")
        lines = [e.body + b"\n" for e in outbound(store)]
        store.db.close()
        fd = os.open(Path(tmp) / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(lines), 100):
            os.write(fd, b"".join(lines[i : i + 100]))
            os.fsync(fd)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        os.close(fd)
    return timed(events, elapsed, cpu)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="one more run of each: its time in store transactions and in the rest",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        async with spawn_receiver(Path(tmp) / "receiver.jsonl") as rx:
            # Warm up both paths (connections, imports) before measuring.
            await baseline_webhook(rx.url, 50, args.in_flight)
            await syncd_webhook(rx.url, 50, args.in_flight)
            ours, base = [], []
            for _ in range(args.runs):
                base.append(await baseline_webhook(rx.url, args.events, args.in_flight))
                ours.append(await syncd_webhook(rx.url, args.events, args.in_flight))
            hook_parts: dict[str, float] = {}
            if args.breakdown:
                await syncd_webhook(rx.url, args.events, args.in_flight, hook_parts)
    file_ours, file_base = [], []
    await syncd_file(50)
    for _ in range(args.runs):  # interleaved, so a change in the machine's load hits both
        file_base.append(baseline_file(args.events))
        file_ours.append(await syncd_file(args.events))

    def line(label: str, runs: list[Run]) -> str:
        rates = [r.rate for r in runs]
        return (
            f"{label:<46} {statistics.median(rates):8.0f} /s   (runs: "
            + ", ".join(f"{r:.0f}" for r in rates)
            + f"; CPU {cpu(runs):.1f} us/event)"
        )

    def cpu(runs: list[Run]) -> float:
        return statistics.median(r.cpu_us for r in runs)

    def ratio(ours: list[Run], base: list[Run]) -> float:
        return statistics.median(r.rate for r in ours) / statistics.median(r.rate for r in base)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{args.events} events per run, {args.runs} runs, medians;"
        f" {os.cpu_count()} CPUs, load average {load}"
    )
    print(line(f"webhook via syncd outbox (max_in_flight={args.in_flight})", ours))
    print(line("baseline: signed POSTs, same concurrency, no store", base))
    print(
        f"{'webhook ratio syncd / baseline':<46} {ratio(ours, base):8.2f}   (target >= 0.80;"
        f" CPU per event baseline / syncd {cpu(base) / cpu(ours):.2f})"
    )
    print(line("file sink via syncd outbox (fsync per batch)", file_ours))
    print(line("baseline: write+fsync per 100 lines", file_base))
    print(
        f"{'file ratio syncd / baseline':<46} {ratio(file_ours, file_base):8.2f}   (target >= 0.50;"
        f" CPU per event baseline / syncd {cpu(file_base) / cpu(file_ours):.2f})"
    )
    if args.breakdown:
        total, store = hook_parts["total"] * 1000, hook_parts.get("store", 0.0) * 1000
        print(
            f"webhook breakdown, one run: {total:.1f} ms in all, {store:.1f} ms in store"
            f" transactions ({store * 1000 / args.events:.1f} us per delivery; the rest is"
            f" signing, POSTs and the dispatcher; the baseline's POSTs alone take"
            f" {args.events / statistics.median(r.rate for r in base) * 1000:.1f} ms)"
        )
        parts: dict[str, float] = {}
        await syncd_file(args.events, parts)
        total, store = parts["total"] * 1000, parts.get("store", 0.0) * 1000
        print(
            f"file sink breakdown, one run: {total:.1f} ms in all, {store:.1f} ms in store"
            f" transactions (claim, lease, record, attempt log), {total - store:.1f} ms the rest"
            " (dispatcher, sink calls, waiting for write+fsync)"
        )


if __name__ == "__main__":
    asyncio.run(main())
