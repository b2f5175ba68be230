"""`syncd store copy`, end to end with the real command: a store synced from the local feed server
(deliveries delivered and pending) is copied SQLite -> PostgreSQL -> SQLite; the file that comes
back holds exactly the rows of the original in every table (ids, seqs, timestamps, JSON and the
seq counter included); `status`, `search` and the pull API's cursor work on the copy as on the
original; a daemon started on the PostgreSQL copy delivers the pending deliveries exactly once;
both ends are refused while a daemon holds them, and a non-empty destination without --replace.
The copy's planning and its count check are tested on their own at the end. Skipped with one
line where no PostgreSQL answers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from syncd.daemonlock import DaemonLock
from syncd.errors import StoreError
from syncd.storage.postgres.daemonlock import DaemonPresence
from syncd.storage.postgres.tables import PostgresTables
from syncd.storage.sqlite import SqliteStore
from syncd.storage.sqlite.tables import SqliteTables
from syncd.storage.transfer import Row, TableInfo, copy_store, parents_first, plan_copy
from tests.conftest import Result, file_sink, jsonl, syncd, webhook_sink, write_config
from tests.support.feedserver import FeedServer
from tests.support.postgres import scratch_schema
from tests.support.process import free_port, running_syncd
from tests.support.receiver import ReceiverServer
from tests.test_daemon_http import eventually, get

# The search index and its queue are derived (rebuilt on the destination, its keys renumbered,
# nothing left queued): compared by what `search` finds, not row by row.
DERIVED = ("entries_search", "sqlite_stat", "search_pending")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with scratch_schema() as url:
        yield url


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the file (the seq counter included), in a fixed order."""
    conn = sqlite3.connect(db)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith(DERIVED) and r[0] != "_sqlite_migrations"
        ]
        found = {
            n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names
        }
        if "sqlite_sequence" in found:
            found["sqlite_sequence"] = [
                r for r in found["sqlite_sequence"] if not str(r[0]).startswith(DERIVED)
            ]
        return found
    finally:
        conn.close()


def count_of(report: Result) -> dict[str, tuple[int, int]]:
    assert report.code == 0, report.stderr
    data = json.loads(report.stdout)
    return {t["table"]: (t["source"], t["destination"]) for t in data["tables"]}


async def search(config: Path, words: str) -> list[str]:
    found = await syncd(config, "search", words, "--json")
    assert found.code == 0, found.stderr
    return [h["entry_id"] for h in json.loads(found.stdout)]


async def status(config: Path) -> dict[str, Any]:
    done = await syncd(config, "status", "--json")
    assert done.code == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    feed = report["feeds"][0]
    return {
        "entries": feed["entries"],
        "last_outcome": feed["last_outcome"],
        "last_fetch_at": feed["last_fetch_at"],
        "sinks": {s["name"]: (s["pending"], s["delivered"]) for s in report["sinks"]},
    }


async def pull(base: str, after: int) -> list[dict[str, Any]]:
    """Every event after `after` through the pull API, page by page, following `next`."""
    got: list[dict[str, Any]] = []
    while True:
        code, body = await get(f"{base}/api/events?after={after}&limit=200")
        assert code == 200, body
        page = json.loads(body)
        got += page["events"]
        if not page["events"]:
            return got
        after = page["next"]


async def test_sqlite_to_postgresql_and_back(
    tmp_path: Path, pg_url: str, feed_server: FeedServer, receiver: ReceiverServer
) -> None:
    feed = feed_server.model
    sinks = [file_sink(tmp_path, initial="deliver"), webhook_sink(receiver.url)]
    feeds = [{"name": "research", "url": feed_server.url}]
    original = tmp_path / "syncd.db"
    config = write_config(tmp_path, feeds=feeds, sinks=sinks)
    assert (await syncd(config, "sync")).code == 0  # the backfill: 515 to the file only
    walrus = feed.add_entry("A walrus post")
    assert (await syncd(config, "sync")).code == 0  # delivered to both
    assert len(await receiver.wait_for(1)) == 1
    assert (await syncd(config, "sinks", "disable", "hook")).code == 0
    edited = feed.ids()[5]
    feed.edit_entry(edited, title="An edited title")
    pending = [feed.add_entry("Pending for the hook")]
    assert (await syncd(config, "sync")).code == 0  # file: delivered; hook: 2 pending
    before = await status(config)
    assert before["sinks"] == {"archive": (0, 518), "hook": (2, 1)}
    rows = dump(original)
    assert len(rows["events"]) == 518 and rows["sqlite_sequence"] == [("events", 518)]

    # SQLite -> PostgreSQL, in small batches.
    pg_dir = tmp_path / "pg"
    pg_dir.mkdir()
    pg_config = write_config(
        pg_dir,
        feeds=feeds,
        sinks=[file_sink(pg_dir, initial="deliver"), webhook_sink(receiver.url)],
        store={"url": pg_url},
        http={"listen": f"127.0.0.1:{free_port()}"},
    )
    there = await syncd(
        pg_config, "store", "copy", "--from", str(original), "--to", pg_url, "--batch", "7",
        "--json",
    )  # fmt: skip
    counts = count_of(there)
    assert counts["events"] == (518, 518) and counts["entries"] == (517, 517)
    assert counts["deliveries"] == (518 + 3, 518 + 3)
    assert all(s == d for s, d in counts.values()) and "entries_search" not in counts
    assert "search_pending" not in counts
    assert await status(pg_config) == before
    assert await search(pg_config, "walrus") == await search(config, "walrus") == [walrus]

    # A second copy into the same database is refused: it holds rows now.
    again = await syncd(pg_config, "store", "copy", "--from", str(original), "--to", pg_url)
    assert again.code == 1 and again.stderr.count("\n") == 1, again.stderr
    assert "is not empty" in again.stderr and "--replace" in again.stderr

    # PostgreSQL -> SQLite: the same rows, in every table.
    back = tmp_path / "back" / "syncd.db"
    home = await syncd(pg_config, "store", "copy", "--from", pg_url, "--to", str(back), "--json")
    assert count_of(home) == counts
    assert dump(back) == rows
    back_config = write_config(back.parent, feeds=feeds, sinks=sinks)
    assert await search(back_config, "walrus") == [walrus]

    # The daemon on the PostgreSQL copy: the pull API continues a cursor taken on the original,
    # a copy is refused while it runs, and the two pending deliveries go out exactly once.
    assert (await syncd(pg_config, "sinks", "enable", "hook")).code == 0
    source = SqliteStore.open_existing(original)
    try:
        envelopes = (await source.reads().events(0, 1000)).events  # as the original serves them
    finally:
        await source.close()
    assert len(envelopes) == 518
    async with running_syncd(pg_config) as daemon:
        base = f"http://127.0.0.1:{_port(pg_config)}"
        await eventually(lambda: _ready(base))
        assert await pull(base, 300) == envelopes[300:]
        assert await pull(base, 0) == envelopes
        busy = await syncd(
            pg_config, "store", "copy", "--from", pg_url, "--to", str(tmp_path / "x")
        )
        assert busy.code == 1 and busy.stderr.count("\n") == 1, busy.stderr
        assert "`syncd run`" in busy.stderr and "stop it first" in busy.stderr
        got = await receiver.wait_for(3, timeout=30)
        await daemon.stop()
    ids = [e["data"]["entry"]["id"] for e in got]
    assert sorted(ids) == sorted([walrus, edited, *pending]), ids
    assert len(receiver.receiver.requests) == 3  # nothing twice
    assert jsonl(pg_dir / "archive.jsonl") == []  # everything was delivered before the copy


def _port(config: Path) -> int:
    line = next(x for x in config.read_text().splitlines() if x.startswith("listen"))
    return int(line.split(":")[-1].rstrip('"'))


async def _ready(base: str) -> bool:
    try:
        code, _ = await get(base + "/readyz")
    except OSError:
        return False
    return code == 200


async def test_a_daemon_on_the_sqlite_source_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, feeds=[])
    source = tmp_path / "syncd.db"
    await SqliteTables.target(source).close()  # an empty, migrated store
    lock = DaemonLock.for_store(source)
    lock.acquire()  # as `syncd run` holds it
    try:
        refused = await syncd(config, "store", "copy", "--from", str(source), "--to", "b.db")
    finally:
        lock.release()
    assert refused.code == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "syncd run" in refused.stderr and str(source) in refused.stderr
    assert not (tmp_path / "b.db").exists()
    missing = await syncd(config, "store", "copy", "--from", "nothing.db", "--to", "b.db")
    assert missing.code == 1 and "no database at 'nothing.db'" in missing.stderr
    same = await syncd(config, "store", "copy", "--from", str(source), "--to", str(source))
    assert same.code == 1 and "the same store" in same.stderr


# ------------------------------------------------------------------------------------------
# the plan and the count check


def info(name: str, columns: Sequence[str], parents: Sequence[str] = ()) -> TableInfo:
    return TableInfo(name, tuple(columns), (columns[0],), frozenset(parents))


def test_plan_orders_parents_first_and_names_what_it_leaves_out() -> None:
    source = {
        "events": info("events", ["seq", "feed_id", "payload", "lease"], ["feeds"]),
        "deliveries": info("deliveries", ["id", "event_seq"], ["events"]),
        "feeds": info("feeds", ["id", "name"]),
        "workers": info("workers", ["id"]),
    }
    target = {
        "deliveries": info("deliveries", ["id", "event_seq", "added"], ["events", "deliveries"]),
        "events": info("events", ["seq", "payload", "feed_id"], ["feeds"]),
        "feeds": info("feeds", ["id", "name"]),
    }
    plan = plan_copy(source, target)
    assert [t.name for t in plan.tables] == ["feeds", "events", "deliveries"]
    assert plan.columns["events"] == ("seq", "payload", "feed_id")  # the target's order
    assert plan.columns["deliveries"] == ("id", "event_seq")
    assert plan.notes == [
        "table workers (the destination has no such table)",
        "column events.lease (the destination has no such column)",
    ]
    cycle = {"a": info("a", ["id"], ["b"]), "b": info("b", ["id"], ["a"])}
    with pytest.raises(StoreError, match="circular"):
        parents_first(cycle, ["a", "b"])


class LosingTarget(SqliteTables):
    """A destination that drops the last row of each table's first batch, as a bug would."""

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        await super().insert(table, columns, rows[:-1] if table == "feeds" else rows)


async def test_a_count_mismatch_changes_nothing(tmp_path: Path) -> None:
    source_path = tmp_path / "a.db"
    seed = SqliteTables.target(source_path)
    async with seed.transaction():
        await seed.insert(
            "feeds", ("id", "name", "url", "created_at"),
            [(i, f"f{i}", f"http://x/{i}", "2026-01-01T00:00:00Z") for i in (1, 2, 3)],
        )  # fmt: skip
    await seed.close()
    source = SqliteTables.source(source_path)
    target = LosingTarget.target(tmp_path / "b.db")
    try:
        with pytest.raises(StoreError) as failed:
            await copy_store(source, target)
        assert str(failed.value) == (
            f"count check failed for table feeds: 3 rows in {source_path}, 2 in"
            f" {tmp_path / 'b.db'}; nothing was copied"
        )
        assert await target.count("feeds") == 0
    finally:
        await source.close()
        await target.close()


async def test_no_daemon_starts_on_a_postgresql_store_while_it_is_copied(pg_url: str) -> None:
    copying = await PostgresTables.target(pg_url)
    try:
        with pytest.raises(StoreError, match=r"`syncd store copy` is copying .*; start syncd"):
            await DaemonPresence.hold(pg_url)
    finally:
        await copying.close()
    daemon = await DaemonPresence.hold(pg_url)  # the copy is done: a daemon may start
    other = await DaemonPresence.hold(pg_url)  # and another beside it (the lock is shared)
    try:
        with pytest.raises(StoreError, match=r"a `syncd run` \(or another copy\) is using"):
            await PostgresTables.source(pg_url)
    finally:
        await daemon.release()
        await other.release()
