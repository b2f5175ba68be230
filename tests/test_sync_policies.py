"""Politeness and economy through the real app (in-process, injected clock): unchanged bodies are
not parsed, Retry-After and 410 are honoured, Cache-Control max-age bounds the next poll."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.app import build_app
from syncd.config import load_config
from tests.conftest import write_config
from tests.support.documents import serve_documents
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.outbox import FakeClock


def Clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))


async def test_same_body_without_validators_is_not_parsed_again(tmp_path: Path) -> None:
    hits: list[str] = []
    async with serve_documents({"/feed": BloggerFeed(25).render_page()}, hits) as base:
        url = base + "/feed"
        config = load_config(write_config(tmp_path, feeds=[{"name": "f", "url": url}]))
        async with build_app(config, clock=Clock()) as app:
            (first,) = await app.sync_feeds(config.feeds, full=False, force=False)
            (second,) = await app.sync_feeds(config.feeds, full=True, force=False)
    assert first.pages_parsed == 1 and first.created == 25
    assert second.pages == 1 and second.pages_parsed == 0 and second.outcome == "not_modified"
    assert len(hits) == 2


async def test_retry_after_on_a_feed_is_honoured_unless_forced(tmp_path: Path) -> None:
    feed = BloggerFeed(30)
    feed.set_status(1, 503, {"Retry-After": "7200"})
    clock = Clock()
    async with serve_feed(feed) as server:
        config = load_config(write_config(tmp_path, feeds=[{"name": "f", "url": server.url}]))
        async with build_app(config, clock=clock, rng=random.Random(1)) as app:
            (report,) = await app.sync_feeds(config.feeds, full=False, force=False)
            assert report.outcome == "throttled" and not report.completed
            state = await app.store.feed_state("f")
            assert state.retry_after_until is not None
            assert state.retry_after_until - clock.now >= timedelta(seconds=7200)
            feed.clear_faults()
            feed.reset_log()
            assert await app.sync_feeds(config.feeds, full=False, force=False) == []
            assert feed.count() == 0
            assert "wait" in (await app.skip_reason(config.feeds[0], clock.now) or "")
            (forced,) = await app.sync_feeds(config.feeds, full=False, force=True)
            assert forced.completed and forced.created == 30
            assert (await app.store.feed_state("f")).retry_after_until is None


async def test_gone_feed_stops_being_polled_but_keeps_its_data(tmp_path: Path) -> None:
    feed = BloggerFeed(30)
    clock = Clock()
    async with serve_feed(feed) as server:
        config = load_config(write_config(tmp_path, feeds=[{"name": "f", "url": server.url}]))
        async with build_app(config, clock=clock) as app:
            await app.sync_feeds(config.feeds, full=False, force=False)
            feed.set_status(None, 410)
            (gone,) = await app.sync_feeds(config.feeds, full=False, force=False)
            assert gone.outcome == "gone"
            feed.reset_log()
            assert await app.sync_feeds(config.feeds, full=False, force=False) == []
            assert feed.count() == 0
            rows = await app.store.feed_summaries()
            assert rows[0]["entries"] == 30 and rows[0]["last_outcome"] == "gone"


async def test_cache_control_max_age_is_a_lower_bound_on_the_next_poll(tmp_path: Path) -> None:
    feed = BloggerFeed(30)
    feed.set_headers({"Cache-Control": "public, max-age=7200"})
    clock = Clock()
    async with serve_feed(feed) as server:
        config = load_config(
            write_config(tmp_path, feeds=[{"name": "f", "url": server.url, "interval": "60s"}])
        )
        async with build_app(config, clock=clock) as app:
            await app.sync_feeds(config.feeds, full=False, force=False)
            due = (await app.store.feed_state("f")).next_due_at
    assert due == clock.now + timedelta(seconds=7200)
