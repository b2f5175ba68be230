"""The spine on PostgreSQL (`[store] url`), end to end: the real `syncd` command syncs the local
515-entry feed into a scratch schema, delivers to a JSON Lines file and a signature-checking
webhook, then finds one added and one edited post; `query`, `status` and `search` read the same
database. Then the daemon: `syncd run` on PostgreSQL polls, delivers what changes while it runs,
and stops cleanly on SIGTERM. Skipped with one line where no PostgreSQL answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    Result,
    file_sink,
    jsonl,
    jsonl_so_far,
    syncd,
    webhook_sink,
    write_config,
)
from tests.support.feedserver import BloggerFeed, FeedServer, serve_feed
from tests.support.postgres import scratch_schema
from tests.support.process import running_syncd
from tests.support.receiver import ReceiverServer
from tests.test_e2e_daemon import wait_until


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with scratch_schema() as url:
        yield url


async def query(config: Path, sql: str) -> list[dict[str, Any]]:
    done: Result = await syncd(config, "query", sql, "--format", "json")
    assert done.code == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


async def test_sync_and_delivery_on_postgresql(
    tmp_path: Path, pg_url: str, feed_server: FeedServer, receiver: ReceiverServer
) -> None:
    feed = feed_server.model
    config = write_config(
        tmp_path,
        feeds=[{"name": "research", "url": feed_server.url}],
        sinks=[file_sink(tmp_path, initial="deliver"), webhook_sink(receiver.url)],
        store={"url": pg_url},
    )
    first = await syncd(config, "sync")
    assert first.code == 0, first.stderr
    assert not (tmp_path / "syncd.db").exists()  # the file is not the store
    assert await query(config, "SELECT COUNT(*) AS n FROM live_entries") == [{"n": 515}]
    lines = jsonl(tmp_path / "archive.jsonl")
    assert [e["data"]["seq"] for e in lines] == list(range(1, 516))
    assert {e["data"]["entry"]["id"] for e in lines} == set(feed.ids())
    assert receiver.receiver.requests == []  # the backfill is skipped by the webhook

    again = await syncd(config, "sync")
    assert again.code == 0, again.stderr
    assert await query(config, "SELECT COUNT(*) AS n FROM events") == [{"n": 515}]

    new_id = feed.add_entry("A brand new walrus post")
    edited_id = feed.ids()[3]
    feed.edit_entry(edited_id, title="An edited title")
    third = await syncd(config, "sync")
    assert third.code == 0, third.stderr
    got = await receiver.wait_for(2)
    assert {(e["type"], e["data"]["entry"]["id"]) for e in got} == {
        ("entry.created", new_id),
        ("entry.updated", edited_id),
    }
    assert all(r.verified for r in receiver.receiver.requests)
    assert [e["data"]["seq"] for e in jsonl(tmp_path / "archive.jsonl")] == list(range(1, 518))

    status = await syncd(config, "status", "--json")
    assert status.code == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["feeds"][0]["entries"] == 516
    assert {s["name"]: s["delivered"] for s in report["sinks"]} == {"archive": 517, "hook": 2}
    found = await syncd(config, "search", "walrus", "--json")
    assert found.code == 0, found.stderr
    assert [h["entry_id"] for h in json.loads(found.stdout)] == [new_id]
    refused = await syncd(config, "query", "DELETE FROM events")
    assert refused.code != 0 and "read-only" in refused.stderr
    assert await query(config, "SELECT COUNT(*) AS n FROM events") == [{"n": 517}]


async def test_daemon_on_postgresql_polls_delivers_and_stops(
    tmp_path: Path, pg_url: str, receiver: ReceiverServer
) -> None:
    """`syncd run` on PostgreSQL: the backfill reaches the file sink only, a post added and one
    edited while it runs reach the webhook (signed) and the file, and SIGTERM ends it with 0."""
    feed = BloggerFeed(30)
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "f", "url": server.url, "interval": "1s"}],
            sinks=[webhook_sink(receiver.url), file_sink(tmp_path, initial="deliver")],
            store={"url": pg_url},
        )
        archive = tmp_path / "archive.jsonl"
        async with running_syncd(config) as daemon:
            await wait_until(lambda: len(jsonl_so_far(archive)) == 30)
            assert receiver.receiver.requests == []
            new_id = feed.add_entry("Published while the daemon runs")
            created = await receiver.wait_for(1, timeout=30)
            edited_id = feed.ids()[10]
            feed.edit_entry(edited_id, title="Edited while the daemon runs")
            got = await receiver.wait_for(2, timeout=30)
            await wait_until(lambda: len(jsonl_so_far(archive)) == 32)
            err = await daemon.stop()
    assert [(e["type"], e["data"]["entry"]["id"]) for e in got] == [
        ("entry.created", new_id),
        ("entry.updated", edited_id),
    ]
    assert created[0]["data"]["seq"] == 31 and got[1]["data"]["seq"] == 32
    assert all(r.verified for r in receiver.receiver.requests)
    assert len(receiver.receiver.requests) == 2
    assert "Traceback" not in err and '"syncd stopped"' in err
    assert not (tmp_path / "syncd.db").exists()  # the file is not the store
    assert await query(config, "SELECT COUNT(*) AS n FROM events") == [{"n": 32}]
    assert await query(
        config, "SELECT sink, state, COUNT(*) AS n FROM deliveries GROUP BY sink, state"
        " ORDER BY sink"
    ) == [
        {"sink": "archive", "state": "delivered", "n": 32},
        {"sink": "hook", "state": "delivered", "n": 2},
    ]  # fmt: skip
