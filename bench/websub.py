"""Benchmark: how long a WebSub push takes to reach a webhook sink.

Prints figures, not verdicts. The real daemon (`syncd run`, a subprocess) subscribes through the
local hub of the test support to a local Blogger-like feed polled hourly, with a local webhook
receiver as its sink. Each of N pushes is a signed fat ping of one edited entry; measured from
the hub's POST to the receiver's arrival (answered 2xx at once), and, side by side, from the
POST to the callback's own answer (the push committed). The baseline the push replaces is the
poll: the feed's interval (15 min by default) is the worst case, half of it the mean.

    .venv/bin/python bench/websub.py [--pushes 100]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.feedserver import BloggerFeed, serve_feed  # noqa: E402
from tests.support.hub import keep_entries, serve_hub, websub_config  # noqa: E402
from tests.support.process import free_port, start_syncd  # noqa: E402
from tests.support.receiver import serve_receiver  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def wait(probe: Callable[[], bool], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the daemon")
        await asyncio.sleep(0.01)


async def run(pushes: int) -> None:
    port = free_port()
    model = BloggerFeed()
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            serve_hub() as hub_server,
            serve_feed(model) as feed_server,
            serve_receiver() as receiver_server,
        ):
            hub, receiver = hub_server.hub, receiver_server.receiver
            model.set_headers({"Link": f'<{hub_server.url}>; rel="hub"'})
            feeds: list[dict[str, str | int]] = [
                {"name": "blog", "url": feed_server.url, "interval": "1h", "max_pages": 1}
            ]
            config = websub_config(
                Path(tmp), port, feeds, receiver_server.url, "max_pushes_per_minute = 100000\n"
            )
            proc = await start_syncd(
                config, "run", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            try:
                await wait(lambda: bool(hub.subscriptions))
                (sub,) = hub.subscriptions.values()
                polls = len(model.log)
                to_sink: list[float] = []
                to_answer: list[float] = []
                async with aiohttp.ClientSession() as s:
                    for i in range(pushes):
                        entry = model.ids()[i % 25]
                        model.edit_entry(entry, title=f"Pushed edit {i}")
                        async with s.get(feed_server.url) as r:
                            page = await r.read()
                        body = keep_entries(page, 1, start=i % 25)
                        seen = len(receiver.requests)
                        started = time.monotonic()
                        status = await hub.push(sub, body)
                        answered = time.monotonic()
                        assert status == 202, status
                        await wait(lambda: len(receiver.requests) > seen)  # noqa: B023
                        to_sink.append((receiver.requests[seen].monotonic - started) * 1000)
                        to_answer.append((answered - started) * 1000)
                own_reads = pushes  # the bench's own reads of page 1
                assert len(model.log) == polls + own_reads, "the daemon polled during the bench"
            finally:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
    print(f"WebSub push latency over {pushes} pushes (real daemon, local hub, feed interval 1h):")
    for label, values in (
        ("hub POST -> webhook receiver 2xx", to_sink),
        ("hub POST -> callback answered 202", to_answer),
    ):
        print(
            f"  {label:36s} p50 {percentile(values, 50):7.1f} ms   p95 "
            f"{percentile(values, 95):7.1f} ms   max {max(values):7.1f} ms"
            f"   mean {statistics.fmean(values):7.1f} ms"
        )
    p50 = percentile(to_sink, 50) / 1000
    print(
        f"  baseline (polling every 15 min): mean 450 s, worst 900 s;"
        f" push p50 is {450 / p50:,.0f}x sooner than the mean poll"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=100)
    asyncio.run(run(parser.parse_args().pushes))


if __name__ == "__main__":
    main()
