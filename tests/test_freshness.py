"""Freshness through the real app against the Blogger-like server (issue 9): the changes query
finds deep edits within one poll, and stays a partial view that never proves an absence."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.app import App, build_app
from syncd.cli.status import freshness_notes
from syncd.config import load_config
from syncd.sync import SyncReport
from tests.conftest import sqlite_store, write_config
from tests.support.feedserver import BloggerFeed, RequestRecord, serve_feed
from tests.support.outbox import FakeClock


def Clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))


@asynccontextmanager
async def synced_app(
    tmp_path: Path, feed: BloggerFeed, **options: Any
) -> AsyncIterator[tuple[App, FakeClock]]:
    """An app whose one feed `f` has completed its backfill, the request log then reset."""
    clock = Clock()
    async with serve_feed(feed, next_host="alternate") as server:
        spec = {"name": "f", "url": server.url, **options}
        config = load_config(write_config(tmp_path, feeds=[spec]))
        async with build_app(config, clock=clock, rng=random.Random(1)) as app:
            (backfill,) = await poll(app)
            assert backfill.full and backfill.completed
            feed.reset_log()
            yield app, clock


async def poll(app: App) -> list[SyncReport]:
    return await app.sync_feeds(app.config.feeds, full=False, force=False)


def deep_edit(feed: BloggerFeed, page: int) -> str:
    """Edit a post on `page` the way Blogger does: its `updated` becomes the time of the edit."""
    entry_id = feed.ids()[(page - 1) * feed.page_size + 3]
    feed.edit_entry(entry_id, title="Edited long after", updated_ms=feed.newest_updated_ms + 60_000)
    assert feed.page_of(entry_id) == page
    return entry_id


def changes_requests(log: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in log if r.changes]


async def test_an_edit_on_page_19_surfaces_in_the_next_poll_within_three_requests(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(515)
    async with synced_app(tmp_path, feed) as (app, clock):
        quiet = await poll(app)
        assert quiet[0].updated == 0 and len(feed.log) <= 3
        assert len(changes_requests(feed.log)) == 1
        feed.reset_log()

        edited = deep_edit(feed, 19)
        clock.now += timedelta(minutes=15)
        (report,) = await poll(app)
        assert not report.full and report.updated == 1
        assert len(feed.log) <= 3, [r.path for r in feed.log]
        (asked,) = changes_requests(feed.log)
        assert "updated-min=" in asked.path
        row = (await app.store.known_entries((await app.store.feed_state("f")).id, [edited]))[
            edited
        ]
        assert row.title == "Edited long after"

        feed.reset_log()
        clock.now += timedelta(minutes=15)
        (again,) = await poll(app)
        assert again.updated == 0 and len(feed.log) <= 3
        # The watermark moved with the edit, so the changes query has a new URL once; then
        # every request carries validators and, nothing having changed, is a 304.
        feed.reset_log()
        clock.now += timedelta(minutes=15)
        await poll(app)
        assert len(feed.log) == 2
        assert all(r.conditional and r.status == 304 for r in feed.log), feed.log


async def test_many_edits_follow_the_changes_pages_and_overflow_asks_for_a_full_crawl(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(515)
    async with synced_app(tmp_path, feed) as (app, clock):
        newest = feed.newest_updated_ms
        edited = feed.ids()[100:200]  # 100 edits: four changes pages of 25
        for i, entry_id in enumerate(edited):
            feed.edit_entry(entry_id, updated_ms=newest + 1000 * (i + 1))
        (report,) = await poll(app)
        assert len(feed.log) <= 3
        assert report.updated == 25 * len(changes_requests(feed.log))
        state = await app.store.feed_state("f")
        assert state.full_crawl_reason is not None and state.changes_since is not None

        clock.now += timedelta(minutes=15)
        (crawl,) = await poll(app)
        assert crawl.full and crawl.completed
        assert report.updated + crawl.updated == 100
        state = await app.store.feed_state("f")
        assert state.full_crawl_reason is None and state.changes_since is None


async def test_a_refused_changes_query_is_turned_off_and_polling_continues(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(60)
    async with synced_app(tmp_path, feed) as (app, clock):
        feed.set_changes("refuse")
        (report,) = await poll(app)
        assert report.completed and report.outcome in ("ok", "not_modified")
        state = await app.store.feed_state("f")
        assert state.changes_off_until is not None and state.changes_off_until > clock.now
        assert "400" in (state.changes_error or "")
        (summary,) = await app.store.feed_summaries()
        assert summary["changes_error"] == state.changes_error
        assert any(n.startswith("changes query off until") for n in freshness_notes(summary))

        feed.reset_log()
        new = feed.add_entry("Still polled")
        clock.now += timedelta(minutes=15)
        (later,) = await poll(app)
        assert later.created == 1 and not changes_requests(feed.log)
        assert new in await app.store.live_entries(state.id)

        clock.now += timedelta(days=2)  # off for a while, not for ever
        feed.set_changes("serve")
        (daily,) = await poll(app)
        assert daily.full  # the daily full crawl does not need the query
        feed.reset_log()
        clock.now += timedelta(minutes=15)
        await poll(app)
        assert len(changes_requests(feed.log)) == 1
        assert (await app.store.feed_state("f")).changes_error is None


async def test_a_server_that_ignores_the_query_is_detected_as_malformed(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    async with synced_app(tmp_path, feed) as (app, _clock):
        feed.set_changes("ignore")  # FeedBurner: the plain listing, by published
        deep_edit(feed, 2)
        (report,) = await poll(app)
        assert report.completed
        state = await app.store.feed_state("f")
        assert "ignored" in (state.changes_error or "")
        assert state.changes_off_until is not None
        # What the malformed answer listed was not taken as changes, nor as evidence.
        assert report.updated == 0 and report.deleted == 0


async def test_a_changes_page_is_never_evidence_of_deletion_nor_a_crawl(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    async with synced_app(tmp_path, feed) as (app, _clock):
        deep_edit(feed, 3)
        (report,) = await poll(app)
        assert report.updated == 1 and report.deleted == 0 and report.missing == 0
        state = await app.store.feed_state("f")
        assert not state.crawl_incomplete
        live = await app.store.live_entries(state.id)
        assert len(live) == 60 and all(e.missing_crawls == 0 for e in live.values())


async def test_changes_off_and_a_template_url(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    async with synced_app(tmp_path, feed, changes="off") as (app, _clock):
        deep_edit(feed, 3)
        (report,) = await poll(app)
        assert report.updated == 0 and not changes_requests(feed.log)

    feed = BloggerFeed(60)
    other = tmp_path / "other"
    other.mkdir()
    template = (
        "http://localhost:{port}/feeds/posts/default?orderby=updated&updated-min={updated_min}"
    )
    async with serve_feed(feed) as server:
        spec = {
            "name": "f",
            "url": server.url,
            "changes_url": template.replace("{port}", str(server.port)),
        }
        config = load_config(write_config(other, feeds=[spec]))
        async with build_app(config, clock=Clock()) as app:
            await poll(app)
            feed.reset_log()
            deep_edit(feed, 3)
            (report,) = await poll(app)
    assert report.updated == 1
    (asked,) = changes_requests(feed.log)
    assert asked.host.startswith("localhost")


def deletion_reasons(app: App) -> dict[str, str]:
    rows = sqlite_store(app.store).rows(
        "SELECT entry_id, deleted_reason FROM entries WHERE deleted_at NOT NULL"
    )
    return {r["entry_id"]: r["deleted_reason"] for r in rows}


async def test_a_deletion_on_page_12_surfaces_in_the_next_poll_with_the_counted_reason(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(515)
    async with synced_app(tmp_path, feed) as (app, clock):
        gone = feed.ids()[11 * 25 + 7]
        assert feed.page_of(gone) == 12
        feed.delete_entry(gone)
        clock.now += timedelta(minutes=15)
        (report,) = await poll(app)
        # totalResults dropped on page 1: this very poll became one full crawl.
        assert report.full and report.chain_complete and report.deleted == 1
        assert deletion_reasons(app) == {gone: "counted-complete-crawl"}
        assert len(feed.log) == 21

        feed.reset_log()
        clock.now += timedelta(minutes=15)
        (quiet,) = await poll(app)
        assert not quiet.full and quiet.deleted == 0 and len(feed.log) <= 3


async def test_inconsistent_totals_fall_back_to_the_two_crawl_rule(tmp_path: Path) -> None:
    feed = BloggerFeed(200)
    async with synced_app(tmp_path, feed) as (app, clock):
        gone = feed.ids()[150]
        feed.delete_entry(gone)
        feed.set_total_results(250, page=5)  # one page states another count
        clock.now += timedelta(minutes=15)
        (first,) = await poll(app)
        assert first.full and first.chain_complete
        assert first.deleted == 0 and first.missing == 1 and deletion_reasons(app) == {}

        clock.now += timedelta(minutes=15)
        (second,) = await app.sync_feeds(app.config.feeds, full=True, force=False)
        assert second.deleted == 1
        assert deletion_reasons(app) == {gone: "absent-from-complete-crawls"}


async def test_a_failed_page_proves_no_deletion_even_when_counted(tmp_path: Path) -> None:
    feed = BloggerFeed(200)
    async with synced_app(tmp_path, feed) as (app, clock):
        gone = feed.ids()[150]
        feed.delete_entry(gone)
        feed.set_status(5, 503)
        clock.now += timedelta(minutes=15)
        (failed,) = await poll(app)
        assert failed.full and not failed.completed and failed.deleted == 0
        assert deletion_reasons(app) == {}

        feed.clear_faults()
        clock.now += timedelta(hours=2)
        (resumed,) = await poll(app)
        assert resumed.full and resumed.deleted == 1
        assert deletion_reasons(app) == {gone: "counted-complete-crawl"}


async def test_a_count_that_did_not_drop_asks_for_nothing(tmp_path: Path) -> None:
    feed = BloggerFeed(200)
    async with synced_app(tmp_path, feed) as (app, clock):
        feed.add_entry("New")  # the total rises: an ordinary incremental poll
        clock.now += timedelta(minutes=15)
        (report,) = await poll(app)
        assert not report.full and report.created == 1
        assert (await app.store.feed_state("f")).total_results == 201


async def test_a_failed_changes_query_resumes_from_the_same_instant(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    async with synced_app(tmp_path, feed) as (app, clock):
        edited = deep_edit(feed, 3)
        feed.set_changes("unavailable")  # a 503: not a refusal, the query stays on
        feed.add_entry("Newer than the edit")  # its stamp must not hide the edit next time
        (failed,) = await poll(app)
        assert failed.completed and failed.created == 1 and failed.updated == 0
        state = await app.store.feed_state("f")
        assert state.changes_since is not None and state.changes_error is None

        feed.set_changes("serve")
        clock.now += timedelta(minutes=15)
        (report,) = await poll(app)
        assert report.updated == 1 and not report.full
        row = (await app.store.known_entries(state.id, [edited]))[edited]
        assert row.title == "Edited long after"
        assert (await app.store.feed_state("f")).changes_since is None


async def test_new_posts_and_a_deep_edit_in_one_poll_of_at_most_three_requests(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(515)
    async with synced_app(tmp_path, feed) as (app, clock):
        edited = deep_edit(feed, 17)
        added = [feed.add_entry(f"Post {i}") for i in range(30)]  # more than a page
        clock.now += timedelta(minutes=15)
        (report,) = await poll(app)
        assert report.created == 30 and report.updated == 1 and not report.full
        assert len(feed.log) <= 3, [r.path for r in feed.log]
        live = await app.store.live_entries((await app.store.feed_state("f")).id)
        assert set(added) <= set(live) and live[edited].title == "Edited long after"
