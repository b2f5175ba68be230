"""Change detection through the real app against local servers (DESIGN §4.2, §4.4–§4.7):
deletions only on evidence, no spurious events from shifted pages, re-created entries, RFC 5005
archives fetched once, and RSS 2.0 / RSS 1.0 / Atom feeds all syncing."""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.app import App, build_app
from syncd.config import load_config
from tests.conftest import db_rows, sqlite_store, write_config
from tests.support.documents import serve_documents
from tests.support.envelopes import envelopes
from tests.support.feedserver import BloggerFeed, serve_feed

DATA = Path(__file__).parent / "data"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@asynccontextmanager
async def app_for(tmp_path: Path, url: str, **options: Any) -> AsyncIterator[App]:
    config = load_config(write_config(tmp_path, feeds=[{"name": "f", "url": url, **options}]))
    async with build_app(config, clock=Clock(), rng=random.Random(7)) as app:
        yield app


async def sync(app: App, *, full: bool = False) -> tuple[int, int, int]:
    (r,) = await app.sync_feeds(app.config.feeds, full=full, force=True)
    assert r.completed, r.error
    return r.created, r.updated, r.deleted


def events(app: App) -> list[tuple[str, str]]:
    return [
        (r[0], r[1]) for r in db_rows(app.config.store.path, "SELECT type, entry_id FROM events")
    ]


async def test_deletion_needs_two_complete_full_crawls_and_shifts_are_silent(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(120)
    # A count that never adds up (some publishers count drafts): no crawl is vouched for by it,
    # so the two-crawl rule decides (issue 9's counted deletions are tested in test_freshness).
    feed.set_total_results(999)
    async with serve_feed(feed) as server, app_for(tmp_path, server.url) as app:
        assert await sync(app) == (120, 0, 0)
        victim = feed.ids()[30]  # page 2: every later entry shifts back by one
        feed.delete_entry(victim)
        assert await sync(app) == (0, 0, 0)  # incremental: page 1 unchanged, stops
        assert await sync(app, full=True) == (0, 0, 0)  # absent once: not yet evidence
        assert (await app.store.known_entries(1, [victim]))[victim].missing_crawls == 1
        assert await sync(app, full=True) == (0, 0, 1)  # absent twice in a row: deleted
        assert events(app)[-1] == ("entry.deleted", victim)
        assert await sync(app, full=True) == (0, 0, 0)  # and only once
        # It comes back: a new entry.created, never a silent resurrection.
        feed.restore_entry(victim)
        assert await sync(app, full=True) == (1, 0, 0)
        assert events(app)[-1] == ("entry.created", victim)
        assert len(events(app)) == 122
        [(_, _, deleted)] = envelopes(app.config.store.path, "e.type = 'entry.deleted'")
        assert '"reason":"absent-from-complete-crawls"' in deleted


async def test_an_incomplete_crawl_is_no_evidence(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    async with serve_feed(feed) as server:
        config = load_config(
            write_config(tmp_path, feeds=[{"name": "f", "url": server.url, "max_pages": 2}])
        )
        async with build_app(config, clock=Clock()) as app:
            await sync(app)
            victim = feed.ids()[0]
            feed.delete_entry(victim)
            for _ in range(3):  # max_pages stops short of the last page: never complete
                # (page 2 now shows an entry from page 3, which this feed never reached before)
                assert (await sync(app, full=True))[2] == 0
            assert (await app.store.known_entries(1, [victim]))[victim].missing_crawls == 0


async def test_a_malformed_page_makes_a_crawl_no_evidence(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    async with serve_feed(feed) as server, app_for(tmp_path, server.url) as app:
        await sync(app)
        victim = feed.ids()[0]
        feed.delete_entry(victim)
        feed.set_malformed(3, "truncated")
        for _ in range(3):
            (r,) = await app.sync_feeds(app.config.feeds, full=True, force=True)
            assert not r.completed and r.deleted == 0
        feed.clear_faults()
        # The first clean crawl lists exactly the total every page states: evidence at once.
        assert await sync(app, full=True) == (0, 0, 1)
        assert (await app.store.known_entries(1, [victim]))[victim].deleted_at is not None


def atom(entries: str, extra: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom"'
        ' xmlns:fh="http://purl.org/syndication/history/1.0"'
        ' xmlns:at="http://purl.org/atompub/tombstones/1.0">'
        f"<title>T</title><id>urn:t</id>{extra}{entries}</feed>"
    ).encode()


def entry(i: int, updated: str = "2024-01-01T00:00:00.000Z") -> str:
    return f"<entry><id>urn:e{i}</id><title>E{i}</title><updated>{updated}</updated></entry>"


async def test_tombstone_deletes_at_once(tmp_path: Path) -> None:
    docs: dict[str, bytes] = {"/feed": atom(entry(1) + entry(2))}
    async with serve_documents(docs, []) as base, app_for(tmp_path, base + "/feed") as app:
        assert await sync(app) == (2, 0, 0)
        docs["/feed"] = atom(
            entry(1) + '<at:deleted-entry ref="urn:e2" when="2024-02-01T00:00:00Z"/>'
            '<at:deleted-entry ref="urn:unknown"/>'
        )
        assert await sync(app) == (0, 0, 1)
        assert events(app)[-1] == ("entry.deleted", "urn:e2")
        assert await sync(app) == (0, 0, 0)  # the tombstone stays in the feed: one event only


async def test_complete_feed_omission_deletes_at_once(tmp_path: Path) -> None:
    complete = "<fh:complete/>"
    docs = {"/feed": atom(entry(1) + entry(2) + entry(3), complete)}
    async with serve_documents(docs, []) as base, app_for(tmp_path, base + "/feed") as app:
        assert await sync(app) == (3, 0, 0)
        docs["/feed"] = atom(entry(1) + entry(3), complete)
        assert await sync(app) == (0, 0, 1)
        assert events(app)[-1] == ("entry.deleted", "urn:e2")
        # Without fh:complete, one omission proves nothing.
        docs["/feed"] = atom(entry(1))
        assert await sync(app) == (0, 0, 0)


async def test_archived_feed_walks_archives_once(tmp_path: Path) -> None:
    hits: list[str] = []
    docs = {
        "/feed": atom(entry(5) + entry(4), '<link rel="prev-archive" href="/2023"/>'),
        "/2023": atom(entry(3) + entry(2), '<fh:archive/><link rel="prev-archive" href="/2022"/>'),
        "/2022": atom(entry(1), "<fh:archive/>"),
    }
    async with serve_documents(docs, hits) as base, app_for(tmp_path, base + "/feed") as app:
        assert await sync(app) == (5, 0, 0)
        assert hits == ["/feed", "/2023", "/2022"]
        docs["/feed"] = atom(
            entry(6) + entry(5) + entry(4), '<link rel="prev-archive" href="/2023"/>'
        )
        assert await sync(app, full=True) == (1, 0, 0)
        assert hits[3:] == ["/feed"]  # archives are immutable: not fetched again
        # A complete walk through archives counts as evidence for absences, too.
        docs["/feed"] = atom(entry(6) + entry(5), '<link rel="prev-archive" href="/2023"/>')
        await sync(app, full=True)
        assert await sync(app, full=True) == (0, 0, 1)
        assert events(app)[-1] == ("entry.deleted", "urn:e4")


async def test_duplicate_ids_across_pages_of_one_crawl_give_one_event(tmp_path: Path) -> None:
    newer = entry(1, "2024-01-01T00:00:00.002Z")
    docs = {
        "/p1": atom(
            entry(1, "2024-01-01T00:00:00.001Z") + entry(2), '<link rel="next" href="/p2"/>'
        ),
        "/p2": atom(newer + entry(3)),
    }
    async with serve_documents(docs, []) as base, app_for(tmp_path, base + "/p1") as app:
        await sync(app)
    rows = db_rows(
        tmp_path / "syncd.db", "SELECT entry_id, updated FROM entries WHERE entry_id='urn:e1'"
    )
    assert rows == [("urn:e1", "2024-01-01T00:00:00.002Z")]
    types = [
        t
        for t, i in db_rows(tmp_path / "syncd.db", "SELECT type, entry_id FROM events ORDER BY seq")
        if i == "urn:e1"
    ]
    # Page 1 was committed before page 2 was read, so the newer copy on page 2 is a second,
    # distinct version: announced as an update (docs/design.md, "Duplicates within a crawl").
    assert types == ["entry.created", "entry.updated"]


async def test_duplicate_copies_of_one_version_across_pages_give_one_event(
    tmp_path: Path,
) -> None:
    p1 = '<link rel="next" href="/p2"/>'
    docs = {"/p1": atom(entry(1) + entry(2), p1), "/p2": atom(entry(1))}
    async with serve_documents(docs, []) as base, app_for(tmp_path, base + "/p1") as app:
        assert await sync(app) == (2, 0, 0)
        # A newer version on page 1 and the older copy again on page 2: one update, no rollback.
        docs["/p1"] = atom(entry(1, "2024-01-01T00:00:00.005Z") + entry(2), p1)
        assert await sync(app, full=True) == (0, 1, 0)
        assert await sync(app, full=True) == (0, 0, 0)


async def test_rss2_rss1_and_atom_fixtures_sync(tmp_path: Path) -> None:
    for i, name in enumerate(["rss2.xml", "rss1-rdf.xml", "atom-complete.xml"]):
        # Served without its paging link: this test is about the formats, not about paging.
        body = re.sub(rb"<atom:link rel=\"next\"[^>]*/>", b"", (DATA / name).read_bytes())
        golden = json.loads((DATA / name.replace(".xml", ".expected.json")).read_text())
        expected = len(golden["entries"])
        where = tmp_path / str(i)
        where.mkdir()
        served = serve_documents({"/feed": body})
        async with served as base, app_for(where, base + "/feed") as app:
            created, updated, deleted = await sync(app)
            assert (created, updated, deleted) == (expected, 0, 0), name
            assert await sync(app, full=True) == (0, 0, 0), name


async def test_stale_duplicate_after_an_unchanged_page_is_ignored(tmp_path: Path) -> None:
    p1 = '<link rel="next" href="/p2"/>'
    newer = entry(1, "2024-01-01T00:00:00.005Z")
    docs = {"/p1": atom(newer + entry(2), p1), "/p2": atom(entry(3))}
    async with serve_documents(docs, []) as base, app_for(tmp_path, base + "/p1") as app:
        assert await sync(app) == (3, 0, 0)
        # Page 1 is unchanged (same body, not parsed); page 2 now carries an older copy of e1.
        docs["/p2"] = atom(entry(1) + entry(3))
        assert await sync(app, full=True) == (0, 0, 0)


async def test_hash_only_updates_are_capped_and_visible(tmp_path: Path) -> None:
    def doc(n: int) -> bytes:
        return atom(
            "<entry><id>urn:clock</id><title>Now</title><updated>2024-01-01T00:00:00Z</updated>"
            f"<content>The time is {n}</content></entry>"
        )

    docs = {"/feed": doc(0)}
    async with serve_documents(docs, []) as base, app_for(tmp_path, base + "/feed") as app:
        assert await sync(app) == (1, 0, 0)
        updates = []
        for n in range(1, 9):
            docs["/feed"] = doc(n)
            updates.append((await sync(app))[1])
        assert updates == [1, 1, 1, 1, 1, 0, 0, 0]  # capped after 5 in a row
        (row,) = await app.store.feed_summaries()
        assert row["hash_only_capped"] == 1
        stored = db_rows(app.config.store.path, "SELECT content FROM entries")
        assert stored == [("The time is 8",)]  # the store still follows the feed
        # A real edit (updated moves) is announced again and lifts the cap.
        docs["/feed"] = doc(9).replace(b"2024-01-01T00:00:00Z", b"2024-01-02T00:00:00Z")
        assert (await sync(app))[1] == 1
        assert (await app.store.feed_summaries())[0]["hash_only_capped"] == 0


async def test_full_crawl_reads_ahead_but_a_wrong_guess_changes_nothing(tmp_path: Path) -> None:
    """The read-ahead guesses the next link from raw bytes; xml:base makes the guess wrong here
    (feedparser resolves against it, the guess does not). The crawl must follow the parsed link,
    and the stray request's 404 must not fail it."""
    hits: list[str] = []
    based = '<link rel="next" href="p2"/>'
    docs = {
        "/feed": atom(entry(1), based).replace(b"<feed ", b'<feed xml:base="/sub/" ', 1),
        "/sub/p2": atom(entry(2)),
    }
    async with serve_documents(docs, hits) as base, app_for(tmp_path, base + "/feed") as app:
        assert await sync(app, full=True) == (2, 0, 0)
    assert "/sub/p2" in hits


async def test_read_ahead_stays_within_max_pages(tmp_path: Path) -> None:
    feed = BloggerFeed(100)
    async with serve_feed(feed) as server:
        config = load_config(
            write_config(tmp_path, feeds=[{"name": "f", "url": server.url, "max_pages": 2}])
        )
        async with build_app(config, clock=Clock()) as app:
            await sync(app, full=True)
    assert feed.count() == 2


async def test_an_interrupted_poll_resumes_past_its_committed_pages(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    # Without the changes query (issue 9), which would list the burst and stop the walk at page 1.
    async with serve_feed(feed) as server, app_for(tmp_path, server.url, changes="off") as app:
        await sync(app)
        new = [feed.add_entry(f"Burst {i}") for i in range(30)]  # fills page 1 and part of 2
        feed.set_status(2, 500)
        (failed,) = await app.sync_feeds(app.config.feeds, full=False, force=True)
        assert not failed.completed and failed.created == 25
        feed.clear_faults()
        # Page 1 now answers 304; a plain incremental poll would stop there and miss 5 posts.
        (resumed,) = await app.sync_feeds(app.config.feeds, full=False, force=True)
        assert resumed.completed and resumed.full and resumed.created == 5
        stored = {r[0] for r in db_rows(app.config.store.path, "SELECT entry_id FROM entries")}
        assert set(new) <= stored
        # Once complete, polls are incremental again.
        (after,) = await app.sync_feeds(app.config.feeds, full=False, force=True)
        assert not after.full and after.pages == 1


async def test_a_410_on_a_deep_page_is_a_failed_page_not_a_gone_feed(tmp_path: Path) -> None:
    feed = BloggerFeed(80)
    async with serve_feed(feed) as server, app_for(tmp_path, server.url) as app:
        feed.set_status(3, 410)
        (r,) = await app.sync_feeds(app.config.feeds, full=False, force=False)
        assert r.outcome == "error" and "failed page" in (r.error or "")
        assert (await app.store.feed_state("f")).gone_at is None
        feed.clear_faults()
        (again,) = await app.sync_feeds(app.config.feeds, full=False, force=False)
        assert again.completed and again.created == 80 - 50


async def test_a_database_failure_is_recorded_and_backed_off(tmp_path: Path) -> None:
    import sqlite3

    feed = BloggerFeed(30)
    async with serve_feed(feed) as server, app_for(tmp_path, server.url) as app:
        # Another connection makes every entry insert fail, as a full disk would.
        other = sqlite3.connect(app.config.store.path)
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON entries"
            " BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
        )
        other.commit()
        (r,) = await app.sync_feeds(app.config.feeds, full=False, force=False)
        assert r.outcome == "error" and "database error" in (r.error or "")
        state = await app.store.feed_state("f")
        assert state.consecutive_errors == 1
        assert state.next_due_at is not None and state.next_due_at > app.clock()
        assert db_rows(app.config.store.path, "SELECT COUNT(*) FROM events") == [(0,)]
        other.execute("DROP TRIGGER refuse")
        other.commit()
        other.close()
        (ok,) = await app.sync_feeds(app.config.feeds, full=False, force=False)
        assert ok.completed and ok.created == 30


async def test_a_complete_document_that_also_pages_proves_no_absence(tmp_path: Path) -> None:
    paged = '<fh:complete/><link rel="next" href="/p2"/>'
    docs = {"/feed": atom(entry(1), paged), "/p2": atom(entry(2))}
    async with serve_documents(docs) as base, app_for(tmp_path, base + "/feed") as app:
        assert await sync(app) == (2, 0, 0)
        for _ in range(3):
            assert (await sync(app, full=True))[2] == 0  # e2 is on page 2, not deleted


async def test_a_failure_that_committed_nothing_does_not_force_a_full_crawl(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(200)
    async with serve_feed(feed) as server, app_for(tmp_path, server.url) as app:
        await sync(app)
        feed.set_status(1, 503, {"Retry-After": "1"})
        (throttled,) = await app.sync_feeds(app.config.feeds, full=False, force=True)
        assert throttled.outcome == "throttled"
        feed.clear_faults()
        feed.reset_log()
        (after,) = await app.sync_feeds(app.config.feeds, full=False, force=True)
        # A polite publisher gets one request for its feed (and the changes query).
        assert not after.full and len([r for r in feed.log if not r.changes]) == 1


async def test_a_locked_store_fails_the_feed_without_aborting_the_others(tmp_path: Path) -> None:
    import sqlite3

    feed = BloggerFeed(30)
    async with serve_feed(feed) as server, app_for(tmp_path, server.url) as app:
        sqlite_store(app.store).db.conn.execute("PRAGMA busy_timeout = 50")
        other = sqlite3.connect(app.config.store.path)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            (r,) = await app.sync_feeds(app.config.feeds, full=False, force=True)
        finally:
            other.rollback()
            other.close()
        assert r.outcome == "error" and not r.recorded and "locked" in (r.error or "")
        (ok,) = await app.sync_feeds(app.config.feeds, full=False, force=True)
        assert ok.completed and ok.created == 30
