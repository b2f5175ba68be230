"""The pull API, served by the real web app over a real socket on a real SQLite file.

The cursor guarantee: readers that always pass the `next` they were given see every event
exactly once, in seq order, while a writer thread commits through the store's own event path
(in its own connection, as the daemon's writer does) and rings the bell as the app does."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.model import ChangeKind, EventDraft
from syncd.pull import Bell
from syncd.storage.reports import EntryKey
from syncd.storage.sqlite import SqliteStore, events, feeds
from syncd.web import api
from tests.support.webapp import api_server

FEEDS = ("alpha", "beta")


@dataclass
class Api:
    base: str
    bell: Bell
    db: Path
    session: aiohttp.ClientSession

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.session.get(self.base + path, params=params) as r:
            return r.status, await r.json()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Api]:
    db = tmp_path / "syncd.db"
    store = SqliteStore.open(db)
    now = datetime.now(UTC)
    for name in FEEDS:
        await store.ensure_feed(name, f"http://{name}.test/feed", now)
    bell = Bell()
    server = api_server(db, store, bell)
    address = await server.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=200)) as session:
            yield Api(f"http://{address}", bell, db, session)
    finally:
        await server.stop()
        await store.close()


def commit_events(db: Path, count: int, per_tx: int, ring: Any, seed: int) -> None:
    """The writer: `count` events in transactions of 1..per_tx, through the store's own insert,
    with pauses so that readers interleave. Runs in a thread with its own store connection."""
    rng = random.Random(seed)
    store = SqliteStore.open(db)
    try:
        ids = {name: feeds.state(store.db, name).id for name in FEEDS}
        made = 0
        while made < count:
            batch = min(rng.randint(1, per_tx), count - made)
            now = datetime.now(UTC)
            with store.write() as conn:
                for _ in range(batch):
                    feed = rng.choice(FEEDS)
                    draft = EventDraft(
                        id=f"evt_{seed}_{made}",
                        type=rng.choice(list(ChangeKind)),
                        timestamp=now,
                        entry_id=f"e{made}",
                        initial=False,
                        data={"feed": {"name": feed}},
                    )
                    events.insert(conn, ids[feed], draft, now)
                    made += 1
            ring()
            if rng.random() < 0.5:
                # Let readers in between commits, sometimes.
                import time

                time.sleep(rng.random() * 0.01)
    finally:
        store.db.close()


async def read_all(
    client: Api, writer: asyncio.Future[Any] | None, limit: int, **filters: str
) -> tuple[list[int], list[dict[str, Any]]]:
    """A reader that always passes the last `next`, long-polling while `writer` runs, until an
    answer after the writer finished brings nothing; the envelopes it saw, in order."""
    seen: list[int] = []
    envelopes: list[dict[str, Any]] = []
    after = 0
    while True:
        finished = writer is None or writer.done()
        status, body = await client.get(
            "/api/events", after=after, limit=limit, wait="0s" if finished else "1s", **filters
        )
        assert status == 200, body
        for envelope in body["events"]:
            seen.append(envelope["data"]["seq"])
            envelopes.append(envelope)
        assert body["next"] >= after
        after = body["next"]
        if finished and not body["events"]:
            return seen, envelopes


def all_seqs(db: Path, feed: str | None = None) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        sql = "SELECT e.seq FROM events e JOIN feeds f ON f.id = e.feed_id"
        rows = conn.execute(sql + (" WHERE f.name = ?" if feed else "") + " ORDER BY e.seq",
                            (feed,) if feed else ()).fetchall()  # fmt: skip
        return [r[0] for r in rows]
    finally:
        conn.close()


async def test_cursor_never_misses_never_repeats_under_concurrent_commits(served: Api) -> None:
    total = 600
    loop = asyncio.get_running_loop()

    def ring() -> None:
        loop.call_soon_threadsafe(served.bell.ring)

    writer = asyncio.create_task(asyncio.to_thread(commit_events, served.db, total, 9, ring, 1))
    readers = [read_all(served, writer, limit) for limit in (1, 7, 50)]
    results = await asyncio.gather(*readers)
    await writer
    everything = all_seqs(served.db)
    assert len(everything) == total
    for seen, envelopes in results:
        assert seen == everything  # every event, once, in seq order
        assert all(e["id"].startswith("evt_1_") for e in envelopes)


async def test_filtered_cursor_and_long_poll_woken_by_the_bell(
    served: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the bell, a waiting request would look again only after an hour: it returns with
    # events only because the commit rang.
    monkeypatch.setattr(api, "RECHECK_S", 3600.0)
    loop = asyncio.get_running_loop()

    def ring() -> None:
        loop.call_soon_threadsafe(served.bell.ring)

    waiting = asyncio.create_task(served.get("/api/events", after=0, wait="100s"))
    await asyncio.sleep(0)
    await asyncio.to_thread(commit_events, served.db, 1, 1, ring, 2)
    status, body = await asyncio.wait_for(waiting, 60)
    assert status == 200 and len(body["events"]) == 1
    assert body["next"] == body["events"][0]["data"]["seq"]

    writer = asyncio.create_task(asyncio.to_thread(commit_events, served.db, 200, 5, ring, 3))
    seen, envelopes = await read_all(served, writer, 10, feed="alpha")
    await writer
    alpha = all_seqs(served.db, "alpha")
    assert seen == alpha
    assert {e["data"]["feed"]["name"] for e in envelopes} == {"alpha"}
    status, body = await served.get("/api/events", after=0, type="entry.deleted", limit=1000)
    assert {e["type"] for e in body["events"]} == {"entry.deleted"}
    # Past the end: nothing, and the cursor stays put.
    status, body = await served.get("/api/events", after=body["next"] + 1000)
    assert status == 200 and body["events"] == [] and body["next"] == body["next"]


async def test_sse_stream_resumes_after_last_event_id(served: Api) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(
        commit_events, served.db, 5, 5, lambda: loop.call_soon_threadsafe(served.bell.ring), 4
    )
    seqs = all_seqs(served.db)

    async def frames(n: int, **headers: str) -> list[dict[str, str]]:
        got: list[dict[str, str]] = []
        async with served.session.get(served.base + "/api/events/stream", headers=headers) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            frame: dict[str, str] = {}
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if frame:
                        got.append(frame)
                        frame = {}
                    if len(got) == n:
                        return got
                    continue
                key, _, value = line.partition(": ")
                frame[key] = value
        return got

    first = await frames(5)
    assert [int(f["id"]) for f in first] == seqs
    assert all(json.loads(f["data"])["data"]["seq"] == int(f["id"]) for f in first)
    assert [f["event"] for f in first] == [json.loads(f["data"])["type"] for f in first]
    resumed = await frames(3, **{"Last-Event-ID": str(seqs[1])})
    assert [int(f["id"]) for f in resumed] == seqs[2:]


async def test_entries_errors_and_openapi(served: Api) -> None:
    status, body = await served.get("/api/events", after="x")
    assert status == 400 and body["code"] == "bad_parameter" and "after" in body["error"]
    status, body = await served.get("/api/events", feed="nope")
    assert status == 404 and body["code"] == "unknown_feed"
    status, body = await served.get("/api/events", type="entry.moved")
    assert status == 400 and body["code"] == "bad_parameter"
    status, body = await served.get("/api/events", wait="1y")
    assert status == 400 and "wait" in body["error"]
    status, body = await served.get("/api/entries", q='"unterminated')
    assert status == 400 and body["code"] == "bad_query"
    status, body = await served.get("/api/entries")
    assert status == 200 and body == {"entries": [], "next": None}
    cursor = api.encode_entry_cursor(EntryKey("2026-01-01T00:00:00.000Z", 1, "tag:x,2026:1"))
    status, body = await served.get("/api/entries", after=cursor)
    assert status == 200 and body["next"] is None
    for broken in ("nope", cursor[:-3], api.encode_entry_cursor(EntryKey("t", 1, "e"))[:-1] + "!"):
        status, body = await served.get("/api/entries", after=broken)
        assert status == 400 and body["code"] == "bad_parameter" and "after" in body["error"]
    status, body = await served.get("/api/entries/nothing-here")
    assert status == 404 and body["code"] == "unknown_entry"
    # the router's own refusals under /api/ are JSON errors too
    status, body = await served.get("/api/nothing/here")
    assert status == 404 and body["code"] == "not_found" and "/api/nothing/here" in body["error"]
    async with served.session.delete(served.base + "/api/events") as r:
        assert r.status == 405 and "GET" in r.headers["Allow"]
        assert (await r.json())["code"] == "method_not_allowed"
    async with served.session.get(served.base + "/no-such-page") as r:
        assert r.status == 404 and r.content_type == "text/plain"  # outside /api/: untouched
    status, body = await served.get("/api/openapi.json")
    assert status == 200 and body["openapi"].startswith("3.1")
    assert set(body["paths"]) >= {"/api/events", "/api/events/stream", "/api/entries"}
