"""Polite polling through the real app (issue 9): distinct failure states, what the publisher
says of its cadence, the reason for each next poll, a descriptive User-Agent, start spreading,
and `syncd status` showing why and whether a feed is stale."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.app import build_app
from syncd.config import load_config
from tests.conftest import syncd, write_config
from tests.support.documents import serve_documents
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.outbox import FakeClock


def Clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("fault", "outcome", "reason"),
    [
        ({"status": 403}, "forbidden", "back-off"),
        ({"status": 429, "headers": {"Retry-After": "7200"}}, "throttled", "Retry-After 2h"),
        ({"shield": 503}, "challenge", "back-off"),
        ({"shield": 403}, "challenge", "back-off"),
        ({"status": 503}, "unavailable", "back-off"),
    ],
)
async def test_failures_have_distinct_states_and_back_off(
    tmp_path: Path, fault: dict[str, Any], outcome: str, reason: str
) -> None:
    feed = BloggerFeed(30)
    if "shield" in fault:
        feed.set_shield(fault["shield"])
    else:
        feed.set_status(None, fault["status"], fault.get("headers"))
    clock = Clock()
    async with serve_feed(feed) as server:
        spec = {"name": "f", "url": server.url, "max_backoff": "6h"}
        config = load_config(write_config(tmp_path, feeds=[spec]))
        async with build_app(config, clock=clock, rng=random.Random(2)) as app:
            (report,) = await app.sync_feeds(config.feeds, full=False, force=True)
            assert report.outcome == outcome and not report.completed
            (row,) = await app.store.feed_summaries()
            assert row["last_outcome"] == outcome
            assert row["next_due_reason"].startswith(reason)
            assert outcome in row["next_due_reason"]
            # Errors keep backing off to the cap and the feed is still probed there.
            for _ in range(12):
                await app.sync_feeds(config.feeds, full=False, force=True)
            state = await app.store.feed_state("f")
            assert state.next_due_at is not None
            wait = state.next_due_at - clock.now
            if outcome != "throttled":
                assert timedelta(hours=5.4) <= wait <= timedelta(hours=6)
                (row,) = await app.store.feed_summaries()
                assert "at max_backoff: probing" in row["next_due_reason"]


async def test_timeout_and_tls_failures_are_named(tmp_path: Path) -> None:
    feed = BloggerFeed(30)
    feed.set_delay(5)
    async with serve_feed(feed) as server:
        tls_url = server.url.replace("http://", "https://")
        feeds = [{"name": "slow", "url": server.url}, {"name": "tls", "url": tls_url}]
        config = load_config(write_config(tmp_path, feeds=feeds, fetch={"timeout": "1s"}))
        async with build_app(config, clock=Clock()) as app:
            reports = await app.sync_feeds(config.feeds, full=False, force=True)
    by_name = {r.feed: r for r in reports}
    assert by_name["slow"].outcome == "timeout"
    assert by_name["tls"].outcome == "tls", by_name["tls"].error


async def test_rss_ttl_and_sy_period_set_the_next_poll_and_outlive_a_304(tmp_path: Path) -> None:
    rss = (
        b'<?xml version="1.0"?><rss version="2.0"'
        b' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel><title>t</title>'
        b"<link>http://x/</link><description>d</description><ttl>120</ttl>"
        b"<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>"
        b"<item><guid>a</guid><title>a</title></item></channel></rss>"
    )
    clock = Clock()
    async with serve_documents({"/rss": rss}) as base:
        spec = {"name": "f", "url": base + "/rss", "interval": "10m"}
        config = load_config(write_config(tmp_path, feeds=[spec]))
        async with build_app(config, clock=clock) as app:
            await app.sync_feeds(config.feeds, full=False, force=True)
            state = await app.store.feed_state("f")
            assert state.next_due_at == clock.now + timedelta(hours=6)
            (row,) = await app.store.feed_summaries()
            assert row["next_due_reason"] == "sy:updatePeriod daily / 4"
            # The next poll's body is unchanged (not parsed): the stated cadence still holds.
            clock.now += timedelta(hours=6)
            (again,) = await app.sync_feeds(config.feeds, full=False, force=True)
            assert again.pages_parsed == 0
            assert (await app.store.feed_state("f")).next_due_at == clock.now + timedelta(hours=6)


async def test_cache_headers_and_user_agent_with_contact(tmp_path: Path) -> None:
    feed = BloggerFeed(30)
    feed.set_headers({"Cache-Control": "max-age=5400"}, page=1)
    clock = Clock()
    async with serve_feed(feed) as server:
        spec = {"name": "f", "url": server.url, "changes": "off"}
        fetch = {"contact_url": "https://ops.example.org/syncd"}
        config = load_config(write_config(tmp_path, feeds=[spec], fetch=fetch))
        async with build_app(config, clock=clock) as app:
            await app.sync_feeds(config.feeds, full=False, force=True)
            (row,) = await app.store.feed_summaries()
    assert row["next_due_reason"] == "Cache-Control max-age 1.5h"
    agents = {r.user_agent for r in feed.log}
    assert len(agents) == 1
    (agent,) = agents
    assert agent is not None and agent.startswith("syncd/")
    assert "+https://ops.example.org/syncd" in agent


async def test_overdue_feeds_are_spread_over_their_interval_at_start(tmp_path: Path) -> None:
    feed = BloggerFeed(30)
    clock = Clock()
    async with serve_feed(feed) as server:
        feeds = [
            {"name": f"f{i}", "url": server.url + f"?n={i}", "interval": "1h", "changes": "off"}
            for i in range(8)
        ]
        config = load_config(write_config(tmp_path, feeds=feeds))
        async with build_app(config, clock=clock, rng=random.Random(5)) as app:
            await app.sync_feeds(config.feeds[:6], full=False, force=True)  # f6, f7: never
            clock.now += timedelta(days=1)  # the daemon was down: everything is overdue
            await app.spread_start(config.feeds)
            states = [await app.store.feed_state(f.name) for f in config.feeds]
    known = [s.next_due_at for s in states[:6]]
    assert all(d is not None and clock.now < d <= clock.now + timedelta(hours=1) for d in known)
    assert len(set(known)) == 6
    # Never-synced feeds stay due now: their backfill is wanted.
    assert [s.next_due_at for s in states[6:]] == [None, None]


async def test_status_says_why_the_next_poll_is_when_it_is_and_flags_stale_feeds(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(30)  # its newest post is from 2017
    async with serve_feed(feed) as server:
        feeds = [
            {"name": "old", "url": server.url, "expect_update_within": "7d"},
            {"name": "fine", "url": server.url + "?x=1", "changes": "off"},
        ]
        config = write_config(tmp_path, feeds=feeds)
        assert (await syncd(config, "sync")).code == 0
        result = await syncd(config, "status")
    assert result.code == 0, result.stderr
    old = result.stdout.split("  old:")[1].split("  fine:")[0]
    assert "(interval 15m; deep edits by the changes query)" in old
    assert "changes query on" in old and "stale: no entry updated since 2017" in old
    fine = result.stdout.split("  fine:")[1].split("SINKS")[0]
    assert "(interval 15m)" in fine and "stale" not in fine
