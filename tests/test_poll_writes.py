"""A poll that meets only 304s records once: the feed's row (outcome, next due time), the
page's refreshed validators and the end of the feed's lease in one transaction (besides taking
the lease), and registering a known feed writes nothing.
Counted with SQLite's statement trace on the real store, against a real feed server."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from syncd.app import build_app
from syncd.config import load_config
from syncd.storage.sqlite import SqliteStore
from tests.conftest import write_config
from tests.support.feedserver import BloggerFeed, serve_feed


def pages(db: Path) -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT url, etag, fetched_at FROM pages").fetchall()
    finally:
        conn.close()
    return {url: (etag, fetched_at) for url, etag, fetched_at in rows}


async def test_a_poll_of_304s_is_one_write_transaction_per_feed(tmp_path: Path) -> None:
    async with serve_feed(BloggerFeed(5)) as server:
        feeds = [
            {"name": f"f{i}", "url": f"{server.url}?n={i}", "changes": "off"} for i in range(3)
        ]
        config = load_config(write_config(tmp_path, feeds=feeds))
        async with build_app(config) as app:
            cold = await app.sync_feeds(config.feeds, full=False, force=False)
            assert [r.outcome for r in cold] == ["ok"] * 3
        before = pages(config.store.path)

        async with build_app(config) as app:
            assert isinstance(app.store, SqliteStore)
            statements: list[str] = []
            app.store.db.conn.set_trace_callback(statements.append)
            unchanged = await app.sync_feeds(config.feeds, full=False, force=False)
            app.store.db.conn.set_trace_callback(None)

    assert [r.outcome for r in unchanged] == ["not_modified"] * 3
    # The three leases in one transaction (one statement each, its WHERE the check), then per
    # feed the poll's record (outcome, validators and release together).
    transactions = _transactions(statements)
    assert len(transactions) == 1 + 3
    leases, *records = transactions
    assert len(leases) == 3 and all(s.startswith("UPDATE feeds SET lease_owner") for s in leases)
    assert all(any("UPDATE pages" in s for s in t) for t in records)
    assert all(any("last_fetch_at" in s and "lease_owner" in s for s in t) for t in records)
    assert _leased(config.store.path) == 0  # every lease ended with its record
    # The feed's row is read once per feed (the skip reason); the crawl takes it from the lease.
    assert sum(s.startswith("SELECT * FROM feeds") for s in statements) == 3
    assert not any(s.startswith("INSERT INTO feeds") for s in statements)
    after = pages(config.store.path)
    assert after.keys() == before.keys()
    for url, (etag, fetched_at) in after.items():
        assert etag == before[url][0]  # the 304 carried the same validator: kept
        assert fetched_at > before[url][1]  # refreshed with the outcome


def _leased(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        query = "SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL"
        (count,) = conn.execute(query).fetchone()
    finally:
        conn.close()
    return int(count)


def _transactions(statements: list[str]) -> list[list[str]]:
    """The statements of each write transaction, BEGIN to COMMIT."""
    out: list[list[str]] = []
    inside = False
    for s in statements:
        if s.startswith("BEGIN"):
            out.append([])
            inside = True
        elif s.startswith("COMMIT"):
            inside = False
        elif inside:
            out[-1].append(s)
    return out


async def test_a_changed_url_is_still_written_when_the_feed_is_registered(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "s.db")
    try:
        now = datetime(2026, 11, 30, tzinfo=UTC)
        first = await store.ensure_feed("a", "http://example.org/a", now)
        same = await store.ensure_feed("a", "http://example.org/a", now)
        moved = await store.ensure_feed("a", "http://example.org/b", now)
    finally:
        await store.close()
    assert same == first
    assert (moved.id, moved.url) == (first.id, "http://example.org/b")
