"""Retention on a real store: versions beyond keep_versions, events (a prefix of seq, only those
every sink is done with, older than keep_events), delivered deliveries past keep_deliveries;
`--dry-run` counts without deleting; a pull cursor behind the pruned prefix is told where to
restart, never skipped silently."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.errors import CursorGone, StoreError
from syncd.housekeeping import Housekeeping
from syncd.model import ChangeKind, EventDraft
from syncd.storage.reports import Policy, PruneReport
from syncd.storage.sqlite import SqliteStore, events, outbox
from syncd.storage.sqlite.reader import SqliteReads
from syncd.timestamps import to_text
from tests.conftest import db_rows, file_sink, jsonl_so_far, syncd, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import free_port, running_syncd
from tests.test_daemon_http import Samples, eventually, get

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def fill(store: SqliteStore) -> list[int]:
    """Six events (seq 1-6) ten days old, each with a delivery to `hook`; all delivered but
    seq 4, still pending. Entry e0 has four versions."""
    feed_id = (await store.ensure_feed("blog", "http://blog.test/feed", NOW)).id
    old = NOW - timedelta(days=10)
    seqs = []
    with store.write() as conn:
        for i in range(6):
            draft = EventDraft(f"evt_{i}", ChangeKind.UPDATED, old, "e0", False, {})
            seq = events.insert(conn, feed_id, draft, old)
            assert seq is not None
            outbox.enqueue(conn, seq, ("hook",), old)
            seqs.append(seq)
            conn.execute(
                "INSERT INTO entry_versions (feed_id, entry_id, event_id, recorded_at, title)"
                " VALUES (?, 'e0', ?, ?, ?)",
                (feed_id, draft.id, to_text(old), f"v{i}"),
            )
        conn.execute(
            "UPDATE deliveries SET state = 'delivered', delivered_at = ? WHERE event_seq != 4",
            (to_text(old),),
        )
        delivery = conn.execute("SELECT id FROM deliveries WHERE event_seq = 1").fetchone()[0]
        conn.execute(
            "INSERT INTO delivery_attempts (delivery_id, attempted_at, status, result)"
            " VALUES (?, ?, 200, 'delivered')",
            (delivery, to_text(old)),
        )
    return seqs


def count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


async def test_prune_counts_then_deletes_a_done_prefix(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    store = SqliteStore.open(db)
    await fill(store)
    policy = Policy(keep_versions=2, keep_events_s=86400.0 * 7, keep_deliveries_s=86400.0)
    dry = await store.prune(policy, NOW, dry_run=True)
    # Events 1-3 are done and old; 4 is pending, so 5 and 6 wait behind it (a prefix only).
    assert (dry.events, dry.deliveries, dry.attempts, dry.versions) == (3, 5, 1, 4)
    assert dry.events_through == 3
    assert (count(db, "events"), count(db, "deliveries"), count(db, "entry_versions")) == (6, 6, 6)
    assert (await SqliteReads(db).events(0, 10)).next == 6  # a dry run moves no cursor floor

    done = await store.prune(policy, NOW, dry_run=False)
    assert done == dry
    assert count(db, "events") == 3 and count(db, "delivery_attempts") == 0
    # Delivered deliveries of kept events go too (older than keep_deliveries); the pending stays.
    assert count(db, "deliveries") == 1
    conn = sqlite3.connect(db)
    titles = [r[0] for r in conn.execute("SELECT title FROM entry_versions ORDER BY id")]
    conn.close()
    assert titles == ["v4", "v5"]  # the newest two

    reader = SqliteReads(db)
    with pytest.raises(CursorGone) as gone:
        await reader.events(0, 10)
    assert gone.value.restart_from == 3
    assert [e["data"]["seq"] for e in (await reader.events(3, 10)).events] == [4, 5, 6]
    # Nothing more to let go: a second prune changes nothing and keeps the floor.
    again = await store.prune(policy, NOW, dry_run=False)
    assert (again.events, again.versions, again.events_through) == (0, 0, 3)
    await store.close()


async def test_a_delivery_queued_again_mid_prune_keeps_its_attempts_and_event(
    tmp_path: Path,
) -> None:
    """A replay that commits between a batched prune's transactions: the delivery it queued
    again keeps its row, its attempt and its event, which still goes out; the rest goes."""
    store = SqliteStore.open(tmp_path / "syncd.db")
    await fill(store)
    with store.write() as conn:
        conn.execute("UPDATE deliveries SET state = 'delivered' WHERE event_seq = 4")
    original = store.db.write
    transactions = 0

    @contextmanager
    def write() -> Iterator[sqlite3.Connection]:
        nonlocal transactions
        with original() as conn:
            yield conn
        transactions += 1
        if transactions == 1:  # the prefix is chosen: an operator replays event 1
            with original() as conn:
                conn.execute("UPDATE deliveries SET state = 'pending' WHERE event_seq = 1")

    store.db.write = write  # type: ignore[method-assign]
    report = await store.prune(Policy(keep_events_s=86400.0 * 7, batch=2), NOW, dry_run=False)
    assert report.events_through == 6 and report.events == 5 and report.attempts == 0
    assert store.rows("SELECT seq FROM events") == [{"seq": 1}]
    assert count(tmp_path / "syncd.db", "delivery_attempts") == 1
    [again] = await store.outbox.claim_due("hook", NOW, 10, NOW + timedelta(minutes=1))
    assert again.event.seq == 1 and json.loads(again.event.body)["id"] == "evt_0"
    await store.close()


async def test_nothing_is_pruned_without_a_policy(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "syncd.db")
    await fill(store)
    report = await store.prune(Policy(), NOW, dry_run=False)
    assert (report.events, report.deliveries, report.versions, report.events_through) == (
        0, 0, 0, 0,
    )  # fmt: skip
    await store.close()


async def test_prune_command(tmp_path: Path) -> None:
    config = write_config(tmp_path, feeds=[{"name": "blog", "url": "http://blog.test/feed"}])
    config.write_text(
        config.read_text().replace(
            "[store]\n", '[store]\nkeep_versions = 1\nkeep_events = "7d"\n', 1
        )
    )
    store = SqliteStore.open(tmp_path / "syncd.db")
    await fill(store)
    await store.close()
    dry = await syncd(config, "prune", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert json.loads(dry.stdout)["events"] == 3
    assert count(tmp_path / "syncd.db", "events") == 6
    real = await syncd(config, "prune")
    assert real.code == 0, real.stderr
    assert "3 events" in real.stdout and "5 versions" in real.stdout
    assert count(tmp_path / "syncd.db", "events") == 3


async def test_the_daemon_prunes_periodically(tmp_path: Path) -> None:
    feed = BloggerFeed(12)
    port = free_port()
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "f", "url": server.url, "interval": "1s"}],
            sinks=[file_sink(tmp_path)],
            http={"listen": f"127.0.0.1:{port}"},
            store={"keep_events": "1s", "keep_versions": 1, "prune_interval": "1s"},
        )
        db = tmp_path / "syncd.db"
        async with running_syncd(config) as daemon:
            await eventually(_true(lambda: len(jsonl_so_far(tmp_path / "archive.jsonl")) == 12))
            edited = feed.ids()[0]
            feed.edit_entry(edited, title="Edited while the daemon runs")
            await eventually(_true(lambda: len(jsonl_so_far(tmp_path / "archive.jsonl")) == 13))
            # Delivered and older than a second: every event goes, and all but the newest
            # version of the edited post; the entries themselves stay.
            await eventually(_true(lambda: db_rows(db, "SELECT COUNT(*) FROM events") == [(0,)]))
            await eventually(
                _true(lambda: db_rows(db, "SELECT COUNT(*) FROM entry_versions") == [(12,)])
            )
            assert db_rows(db, "SELECT COUNT(*) FROM entries") == [(12,)]
            base = f"http://127.0.0.1:{port}"
            status, body = await get(base + "/api/events?after=0")
            assert status == 410 and json.loads(body)["restart_from"] == 13
            _, text = await get(base + "/metrics")
            samples = Samples(text)
            assert samples.get("syncd_pruned_rows_total", kind="events") == 13
            assert samples.get("syncd_pruned_rows_total", kind="versions") == 1
            # Syncing goes on beside it: a new post is stored and delivered.
            feed.add_entry("After the prune")
            await eventually(_true(lambda: len(jsonl_so_far(tmp_path / "archive.jsonl")) == 14))
            err = await daemon.stop()
    pruned = [json.loads(line) for line in err.splitlines() if '"pruned"' in line]
    assert sum(p["events"] for p in pruned) >= 13, err


def _true(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return predicate()

    return probe


@pytest.mark.parametrize(
    ("failure", "logged"),
    [
        (StoreError("database is locked"), "prune failed; the next run tries again"),
        # A bug (not a SyncdError) must not end the daemon's pruning for its lifetime.
        (RuntimeError("a bug in the policy"), "prune crashed; the next run tries again"),
    ],
)
async def test_a_failed_periodic_prune_is_logged_and_the_next_run_prunes(
    tmp_path: Path, failure: Exception, logged: str
) -> None:
    store = SqliteStore.open(tmp_path / "syncd.db")
    real = store.prune
    calls: list[bool] = []

    async def flaky(policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
        calls.append(dry_run)
        if len(calls) == 1:
            raise failure
        return await real(policy, now, dry_run=dry_run)

    store.prune = flaky  # type: ignore[method-assign]
    housekeeping = Housekeeping(
        store, lambda: Policy(keep_versions=1), 3600.0, lambda: datetime.now(UTC)
    )
    try:
        with capture_logs() as logs:
            first = await housekeeping.prune_once()
            second = await housekeeping.prune_once()
    finally:
        await store.close()
    assert first == PruneReport(0, 0, 0, 0, 0) and second is not None and calls == [False, False]
    assert [x["log_level"] for x in logs if x["event"] == logged] == ["error"]
