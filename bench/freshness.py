"""Benchmark: how many polls and requests until a deep edit and a deletion are reported.

Prints figures, not verdicts. The 515-post, 21-page Blogger-like feed is served locally; the
real app polls it every 15 minutes of an injected clock (a full crawl every 24 h, as
configured by default). Each scenario runs twice side by side: the baseline without what
issue 9 added (`changes = "off"`, and a feed whose totalResults never adds up, so deletions
fall back to the two-crawl rule), then as shipped. Also printed: the requests an incremental
poll makes when nothing changed.

    .venv/bin/python bench/freshness.py
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.app import App, build_app  # noqa: E402
from syncd.config import load_config  # noqa: E402
from tests.conftest import write_config  # noqa: E402
from tests.support.feedserver import BloggerFeed, serve_feed  # noqa: E402
from tests.support.outbox import FakeClock  # noqa: E402

POLL = timedelta(minutes=15)
GIVE_UP = 4 * 24 * 4  # polls: four days


def Clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))


@dataclass
class Latency:
    polls: int
    requests: int
    hours: float


def deep_edit(feed: BloggerFeed) -> Callable[[App], Awaitable[bool]]:
    entry_id = feed.ids()[18 * 25 + 3]  # page 19
    feed.edit_entry(entry_id, title="Edited", updated_ms=feed.newest_updated_ms + 60_000)

    async def seen(app: App) -> bool:
        row = (await app.store.known_entries((await app.store.feed_state("f")).id, [entry_id]))[
            entry_id
        ]
        return row.title == "Edited"

    return seen


def deletion(feed: BloggerFeed) -> Callable[[App], Awaitable[bool]]:
    entry_id = feed.ids()[11 * 25 + 7]  # page 12
    feed.delete_entry(entry_id)

    async def seen(app: App) -> bool:
        row = (await app.store.known_entries((await app.store.feed_state("f")).id, [entry_id]))[
            entry_id
        ]
        return row.deleted_at is not None

    return seen


async def latency(
    change: Callable[[BloggerFeed], Callable[[App], Awaitable[bool]]],
    *,
    baseline: bool,
    hours_in: float,
) -> Latency:
    """Backfill, poll quietly for `hours_in` hours, make the change, poll until it is seen."""
    feed = BloggerFeed(515)
    if baseline:
        feed.set_total_results(9999)  # a feed that does not count itself
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        async with serve_feed(feed, next_host="alternate") as server:
            spec = {"name": "f", "url": server.url, "changes": "off" if baseline else "auto"}
            config = load_config(write_config(Path(tmp), feeds=[spec]))
            async with build_app(config, clock=clock, rng=random.Random(1)) as app:
                await app.sync_feeds(config.feeds, full=False, force=True)
                for _ in range(int(hours_in * 4)):
                    clock.now += POLL
                    await app.sync_feeds(config.feeds, full=False, force=True)
                seen = change(feed)
                feed.reset_log()
                started = clock.now
                for polls in range(1, GIVE_UP + 1):
                    clock.now += POLL
                    await app.sync_feeds(config.feeds, full=False, force=True)
                    if await seen(app):
                        hours = (clock.now - started).total_seconds() / 3600
                        return Latency(polls, len(feed.log), hours)
    return Latency(GIVE_UP, -1, float("inf"))


async def quiet_requests() -> tuple[float, float]:
    """Mean requests per incremental poll with nothing changed: baseline, shipped."""
    out: list[float] = []
    for baseline in (True, False):
        feed = BloggerFeed(515)
        clock = Clock()
        with tempfile.TemporaryDirectory() as tmp:
            async with serve_feed(feed, next_host="alternate") as server:
                spec = {"name": "f", "url": server.url, "changes": "off" if baseline else "auto"}
                config = load_config(write_config(Path(tmp), feeds=[spec]))
                async with build_app(config, clock=clock) as app:
                    await app.sync_feeds(config.feeds, full=False, force=True)
                    feed.reset_log()
                    polls = 20
                    for _ in range(polls):
                        clock.now += POLL
                        await app.sync_feeds(config.feeds, full=False, force=True)
                    out.append(len(feed.log) / polls)
    return out[0], out[1]


async def main() -> None:
    print("scenario (change made 6 h after the last full crawl; polls every 15 min)")
    print(f"{'':34} {'baseline':>26} {'issue 9':>26}")
    for name, change in (("deep edit (page 19)", deep_edit), ("deletion (page 12)", deletion)):
        before = await latency(change, baseline=True, hours_in=6)
        after = await latency(change, baseline=False, hours_in=6)
        cells = [f"{x.polls} polls, {x.requests} req, {x.hours:.2f} h" for x in (before, after)]
        print(f"{name:34} {cells[0]:>26} {cells[1]:>26}")
    base, shipped = await quiet_requests()
    print(f"{'requests per quiet incremental poll':34} {base:>26.2f} {shipped:>26.2f}")


if __name__ == "__main__":
    asyncio.run(main())
