"""`syncd datasette` starts real Datasette on a store while another process-like writer commits
to it: canned queries see each commit as it lands (read-only, not immutable), the shipped
metadata is applied under the store's own name, and the full-text search config works."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from syncd.datasette import metadata
from syncd.model import ChangeKind, EventDraft
from syncd.storage.sqlite import SqliteStore, events
from tests.conftest import syncd, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import free_port, start_syncd
from tests.test_daemon_http import eventually


class Writer(threading.Thread):
    """Commits an event every few milliseconds through the store, as the daemon would."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.seqs: list[int] = []
        self.errors: list[BaseException] = []
        self.halt = threading.Event()

    def run(self) -> None:
        store = SqliteStore.open(self.db)
        try:
            while not self.halt.is_set():
                now = datetime.now(UTC)
                draft = EventDraft(
                    f"evt_w{len(self.seqs)}", ChangeKind.UPDATED, now, "w", False, {}
                )
                with store.write() as conn:
                    seq = events.insert(conn, 1, draft, now)
                assert seq is not None
                self.seqs.append(seq)
                self.halt.wait(0.01)
        except BaseException as e:
            self.errors.append(e)
        finally:
            store.db.close()


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as r:
        assert r.status == 200, (url, r.status, await r.text())
        return await r.json()


async def test_datasette_serves_the_live_store_with_syncd_metadata(tmp_path: Path) -> None:
    feed = BloggerFeed(5)
    feed.add_entry("Walrus migration notes")
    db = tmp_path / "mirror.db"
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path, feeds=[{"name": "f", "url": server.url}], store={"path": str(db)}
        )
        synced = await syncd(config, "sync")
        assert synced.code == 0, synced.stderr
    port = free_port()
    proc = await start_syncd(config, "datasette", "--port", str(port))
    writer = Writer(db)
    writer.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:

            async def answers() -> Any:
                return await get_json(session, base + "/-/metadata.json")

            shown = await eventually(answers)
            assert shown["title"] == "syncd mirror"
            # The database section is the store's own name: Datasette names it after the file.
            assert list(shown["databases"]) == ["mirror"]
            tables = shown["databases"]["mirror"]["tables"]
            assert tables == metadata("mirror")["databases"]["mirror"]["tables"]

            # A canned query sees the writer's commits as they land: never a frozen snapshot.
            for _ in range(3):
                await eventually(_grows(writer))
                committed = writer.seqs[-1]
                rows = await get_json(session, base + "/mirror/latest_changes.json?_shape=array")
                assert rows[0]["seq"] >= committed
                assert [r["seq"] for r in rows] == sorted((r["seq"] for r in rows), reverse=True)

            # The table search goes through the FTS config (live_entries -> entries_search).
            found = await get_json(
                session, base + "/mirror/live_entries.json?_search=walrus&_shape=array"
            )
            assert [r["title"] for r in found] == ["Walrus migration notes"]
            assert found[0]["feed"] == "f"
            # The canned search stems ("migrations" finds "migration") and highlights.
            hits = await get_json(session, base + "/mirror/search.json?q=migrations&_shape=array")
            assert [h["title"] for h in hits] == ["Walrus migration notes"]
            assert "[migration]" in hits[0]["snippet"]
            async with session.get(base + "/mirror/feeds_in_trouble.json?_shape=array") as r:
                assert r.status == 200 and await r.json() == []
    finally:
        writer.halt.set()
        writer.join(10)
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 20)  # drains and closes its pipes
    assert writer.errors == []  # the writer was never locked out
    assert len(writer.seqs) > 3


def _grows(writer: Writer) -> Any:
    seen = len(writer.seqs)

    async def probe() -> bool:
        return len(writer.seqs) > seen

    return probe


async def test_without_a_store_it_names_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, feeds=[])
    run = await syncd(config, "datasette")
    assert run.code == 1
    assert str(tmp_path / "syncd.db") in run.stderr and "Traceback" not in run.stderr
