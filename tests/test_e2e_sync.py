"""The spine, end to end: the real `syncd` command against a local 515-entry Blogger-like feed
(21 pages whose next links switch host), a real SQLite file, a JSON Lines sink and a webhook
receiver that verifies every signature with the standardwebhooks package."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import db_rows, file_sink, jsonl, syncd, webhook_sink, write_config
from tests.support.envelopes import envelopes
from tests.support.feedserver import FeedServer
from tests.support.receiver import ReceiverServer, Reply


def event_types(db: Path) -> list[str]:
    return [r[0] for r in db_rows(db, "SELECT type FROM events ORDER BY seq")]


async def test_backfill_then_incremental_changes(
    tmp_path: Path, feed_server: FeedServer, receiver: ReceiverServer
) -> None:
    feed = feed_server.model
    config = write_config(
        tmp_path,
        feeds=[{"name": "research", "url": feed_server.url}],
        sinks=[file_sink(tmp_path, initial="deliver"), webhook_sink(receiver.url)],
    )
    db = tmp_path / "syncd.db"
    archive = tmp_path / "archive.jsonl"

    # First sync: the whole chain, across hosts, into the store; the backfill goes to the file
    # sink (initial = "deliver") and not to the webhook (default "skip").
    first = await syncd(config, "sync")
    assert first.code == 0, first.stderr
    assert db_rows(db, "SELECT COUNT(*) FROM entries") == [(515,)]
    assert event_types(db) == ["entry.created"] * 515
    assert feed.count(status=200) == 21
    assert feed.count(host="localhost") > 0 and feed.count(host="127.0.0.1") > 0
    lines = jsonl(archive)
    assert len(lines) == 515
    assert {e["data"]["entry"]["id"] for e in lines} == set(feed.ids())
    assert [e["data"]["seq"] for e in lines] == list(range(1, 516))
    assert all(e["data"]["initial"] for e in lines)
    assert receiver.receiver.requests == []
    summary = [r for r in first.logs() if r.get("event") == "feed synced"]
    assert len(summary) == 1
    assert (
        summary[0]["pages"] == 21
        and summary[0]["created"] == 515
        and summary[0]["feed"] == "research"
    )

    # Nothing changed: no events, and every page request was answered 304; the changes query
    # (issue 9) is asked once, its first time, and finds nothing.
    feed.reset_log()
    second = await syncd(config, "sync")
    assert second.code == 0, second.stderr
    assert len(event_types(db)) == 515
    pages = [r for r in feed.log if not r.changes]
    assert pages and all(r.status == 304 for r in pages)
    assert len(feed.log) - len(pages) == 1

    # One post added and one edited on page 1: one created, one updated, signed and verified.
    new_id = feed.add_entry("A brand new post")
    edited_id = feed.ids()[3]
    feed.edit_entry(edited_id, title="An edited title")
    feed.reset_log()
    third = await syncd(config, "sync")
    assert third.code == 0, third.stderr
    assert event_types(db)[515:] == ["entry.created", "entry.updated"] or event_types(db)[515:] == [
        "entry.updated",
        "entry.created",
    ]
    got = await receiver.wait_for(2)
    by_type = {e["type"]: e for e in got}
    assert by_type["entry.created"]["data"]["entry"]["id"] == new_id
    updated = by_type["entry.updated"]["data"]
    assert updated["entry"]["id"] == edited_id
    assert updated["entry"]["title"] == "An edited title"
    assert set(updated["changed_fields"]) >= {"title", "updated"}
    assert updated["initial"] is False
    assert all(r.verified for r in receiver.receiver.requests)
    assert {r.webhook_id for r in receiver.receiver.requests} == {e["id"] for e in got}
    # Incremental economy: page 1 changed, page 2 only shifted by one; nothing further was read
    # but the changes query.
    assert len([r for r in feed.log if not r.changes]) <= 2 and feed.count() <= 3

    # An edit deep in the chain (page 19) is found by the full crawl, exactly once.
    deep_id = feed.ids()[19 * 25 - 5]
    assert feed.page_of(deep_id) == 19
    feed.edit_entry(deep_id)
    await syncd(config, "sync")
    full = await syncd(config, "sync", "--full")
    assert full.code == 0, full.stderr
    again = await syncd(config, "sync", "--full")
    assert again.code == 0
    deep_events = db_rows(
        db, "SELECT type FROM events WHERE entry_id = ? AND seq > 517", (deep_id,)
    )
    assert deep_events == [("entry.updated",)]

    # <updated> moved by 1 ms, content unchanged: one entry.updated.
    touched = feed.ids()[1]
    before = len(event_types(db))
    feed.touch(touched, 1)
    await syncd(config, "sync")
    rows = envelopes(db, "e.seq > ?", (before,))
    assert [json.loads(r[2])["data"]["entry"]["id"] for r in rows] == [touched]
    assert '"changed_fields":["updated"]' in rows[0][2]

    # A comment count changes: no event at all.
    before = len(event_types(db))
    feed.set_comment_count(feed.ids()[2], 7)
    await syncd(config, "sync")
    await syncd(config, "sync", "--full")
    assert len(event_types(db)) == before

    # The file sink got every event exactly once, in seq order.
    lines = jsonl(archive)
    seqs = [e["data"]["seq"] for e in lines]
    assert seqs == sorted(set(seqs)) and len(seqs) == len(event_types(db))


async def test_query_is_read_only(tmp_path: Path) -> None:
    from tests.support.feedserver import BloggerFeed, serve_feed

    async with serve_feed(BloggerFeed(entries=30)) as server:
        config = write_config(tmp_path, feeds=[{"name": "small", "url": server.url}])
        assert (await syncd(config, "sync")).code == 0
    count = await syncd(config, "query", "select count(*) as n from entries")
    assert count.code == 0
    assert count.stdout.split()[-1] == "30"
    as_json = await syncd(config, "query", "select count(*) as n from entries", "--format", "json")
    assert '"n": 30' in as_json.stdout
    refused = await syncd(config, "query", "delete from entries")
    assert refused.code == 1
    assert "readonly" in refused.stderr.replace(" ", "").lower()
    assert refused.stderr.count("\n") == 1  # one line, no traceback
    assert db_rows(tmp_path / "syncd.db", "SELECT COUNT(*) FROM entries") == [(30,)]


async def test_webhook_503_retry_after_then_200(tmp_path: Path, receiver: ReceiverServer) -> None:
    from tests.support.feedserver import BloggerFeed, serve_feed

    async with serve_feed(BloggerFeed(entries=30)) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "small", "url": server.url}],
            sinks=[webhook_sink(receiver.url, retry_schedule=["1s", "1s"])],
        )
        assert (await syncd(config, "sync")).code == 0
        server.model.add_entry("Post that must not be lost")
        receiver.receiver.push(Reply(503, {"Retry-After": "1"}))
        first = await syncd(config, "sync")
        assert first.code == 0
        assert [r.status for r in receiver.receiver.requests] == [503]
        failed = [r for r in first.logs() if r.get("event") == "delivery failed"]
        assert len(failed) == 1 and failed[0]["sink"] == "hook" and failed[0]["status"] == 503
        await asyncio.sleep(1.3)
        second = await syncd(config, "sync")
        assert second.code == 0
    requests = receiver.receiver.requests
    assert [r.status for r in requests] == [503, 200]
    assert requests[0].webhook_id == requests[1].webhook_id
    assert requests[0].body == requests[1].body
    assert all(r.verified for r in requests)
    assert db_rows(tmp_path / "syncd.db", "SELECT state, attempts FROM deliveries") == [
        ("delivered", 2)
    ]
