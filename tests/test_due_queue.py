"""The daemon's schedule as a bounded queue in the store: `due_feeds` answers from an index with a
limit (never-polled feeds first, then the most overdue), and the poll loop still reaches every
due feed when more are due than it asks for, and when feeds removed from the config crowd the
head of the queue."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.app import build_app
from syncd.config import load_config
from syncd.storage.sqlite import SqliteStore
from tests.conftest import write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.test_e2e_daemon import wait_until

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_due_feeds_is_bounded_never_polled_first_then_most_overdue(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "s.db")
    try:
        for name, due in [
            ("later", NOW + timedelta(minutes=1)),
            ("old", NOW - timedelta(hours=2)),
            ("new", None),
            ("recent", NOW - timedelta(minutes=1)),
            ("gone", NOW - timedelta(days=1)),
        ]:
            state = await store.ensure_feed(name, f"http://example.org/{name}", NOW)
            if due is not None:
                await store.reschedule(state.id, due, "test")
        with store.write() as conn:
            conn.execute("UPDATE feeds SET gone_at = ? WHERE name = 'gone'", ("2026-11-01",))
        assert await store.due_feeds(NOW, limit=10) == ["new", "old", "recent"]
        assert await store.due_feeds(NOW, limit=2) == ["new", "old"]
        assert await store.due_feeds(NOW, limit=1) == ["new"]
        plan = store.rows(
            "EXPLAIN QUERY PLAN SELECT name FROM feeds WHERE gone_at IS NULL"
            " AND next_due_at <= ? ORDER BY next_due_at LIMIT 5",
            ("x",),
        )
        assert any("feeds_due" in r["detail"] for r in plan)
    finally:
        await store.close()


async def test_every_due_feed_is_polled_past_removed_feeds_and_the_limit(tmp_path: Path) -> None:
    # concurrency 1: the loop keeps 2 polls started and asks the store for few names at a time.
    async with serve_feed(BloggerFeed(5)) as server:
        feeds = [
            {"name": f"f{i}", "url": f"{server.url}?n={i}", "changes": "off"} for i in range(6)
        ]
        config = load_config(write_config(tmp_path, feeds=feeds, fetch={"concurrency": 1}))
        # The configured feeds are an hour overdue; 40 feeds of an earlier config, overdue for a
        # day, come first in the queue and are never polled.
        store = SqliteStore.open(config.store.path)
        overdue = [(f.name, f.url, timedelta(hours=1)) for f in config.feeds]
        overdue += [(f"removed{i}", f"{server.url}?gone={i}", timedelta(days=1)) for i in range(40)]
        for name, url, late in overdue:
            state = await store.ensure_feed(name, url, NOW)
            await store.reschedule(state.id, datetime.now(UTC) - late, "test")
        await store.close()
        async with build_app(config) as app:
            stop = asyncio.Event()
            running = asyncio.create_task(app.run(stop))
            try:
                await wait_until(lambda: len(polled(config.store.path)) == 6, timeout=60)
            finally:
                stop.set()
                await running
    assert polled(config.store.path) == {f"f{i}" for i in range(6)}


def polled(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name FROM feeds WHERE last_fetch_at IS NOT NULL").fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}
