"""`syncd vacuum` on a real SQLite file: a full VACUUM gives pruned space back and switches an
old store to incremental auto-vacuum, and is refused (exit 3, one line) while a daemon holds the
store; `--incremental` runs beside the daemon in short steps, and on a store that predates
incremental vacuum says to run a full one once. New stores are created incremental."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.daemonlock import DaemonLock
from syncd.model import ChangeKind, EventDraft
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.reports import Policy
from syncd.storage.sqlite import SqliteStore, events, vacuum
from syncd.storage.sqlite.db import Db
from tests.conftest import syncd, write_config
from tests.support.postgres import scratch_schema

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def pragma(db: Path, name: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def size(db: Path) -> int:
    return pragma(db, "page_count") * pragma(db, "page_size")


async def filled_then_pruned(db: Path) -> None:
    """A store with 400 events of 10 KB each, all pruned: ~4 MB of free pages."""
    store = SqliteStore.open(db)
    feed_id = (await store.ensure_feed("blog", "http://blog.test/feed", NOW)).id
    old = NOW - timedelta(days=10)
    with store.write() as conn:
        for i in range(400):
            draft = EventDraft(
                f"evt_{i}", ChangeKind.CREATED, old, f"e{i}", False, {"x": "y" * 10_000}
            )
            events.insert(conn, feed_id, draft, old)
    await store.prune(Policy(keep_events_s=86400.0), NOW, dry_run=False)
    await store.close()


def config_for(tmp_path: Path) -> Path:
    return write_config(tmp_path, feeds=[{"name": "blog", "url": "http://blog.test/feed"}])


async def test_new_stores_vacuum_incrementally_beside_a_daemon(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    await filled_then_pruned(db)
    assert pragma(db, "auto_vacuum") == 2  # INCREMENTAL, from the first table on
    before, free = size(db), pragma(db, "freelist_count")
    assert free * 4096 > 3_000_000
    lock = DaemonLock.for_store(db)
    lock.acquire()  # as `syncd run` does: incremental vacuum still runs
    try:
        done = await syncd(config_for(tmp_path), "vacuum", "--incremental")
    finally:
        lock.release()
    assert done.code == 0, done.stderr
    assert pragma(db, "freelist_count") == 0
    assert size(db) < before - 3_000_000
    assert "MB given back" in done.stdout


async def test_a_full_vacuum_is_refused_while_the_daemon_holds_the_store(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    await filled_then_pruned(db)
    before = size(db)
    lock = DaemonLock.for_store(db)
    lock.acquire()
    try:
        refused = await syncd(config_for(tmp_path), "vacuum")
    finally:
        lock.release()
    assert refused.code == 3
    assert len(refused.stderr.splitlines()) == 1 and "--incremental" in refused.stderr
    assert size(db) == before
    done = await syncd(config_for(tmp_path), "vacuum", "--json")
    assert done.code == 0, done.stderr
    assert size(db) < before - 3_000_000


async def test_an_old_store_is_switched_to_incremental_by_one_full_vacuum(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    conn = sqlite3.connect(db)  # a table before syncd's: created as stores were before
    conn.execute("CREATE TABLE older (x)")
    conn.close()
    await filled_then_pruned(db)
    assert pragma(db, "auto_vacuum") == 0
    config = config_for(tmp_path)
    told = await syncd(config, "vacuum", "--incremental")
    assert told.code == 0, told.stderr
    assert "run `syncd vacuum` once" in told.stdout and pragma(db, "freelist_count") > 0
    assert (await syncd(config, "vacuum")).code == 0
    assert pragma(db, "auto_vacuum") == 2 and pragma(db, "freelist_count") == 0


async def test_incremental_vacuum_never_holds_writers_behind_a_reader(tmp_path: Path) -> None:
    """Beside the daemon, a reader (pull API, SSE, Datasette, `syncd query`) may sit in an
    older snapshot while the vacuum ends: its closing checkpoint must not take the write lock
    and wait for that reader (a TRUNCATE checkpoint does, for the whole busy timeout, and the
    daemon's writes then fail with "database is locked")."""
    db = tmp_path / "syncd.db"
    await filled_then_pruned(db)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA busy_timeout = 0")  # a refused write shows at once
    writer.execute("CREATE TABLE scratch (x)")
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM events").fetchall()  # holds this snapshot
    failures: list[BaseException] = []

    def run() -> None:
        store_db = Db.open(db)
        try:
            vacuum.incremental(store_db)
        except BaseException as e:
            failures.append(e)
        finally:
            store_db.close()

    thread = threading.Thread(target=run)
    thread.start()
    refused: list[str] = []
    try:
        while thread.is_alive():
            # Once every free page is handed back, only the closing checkpoint is left.
            if writer.execute("PRAGMA freelist_count").fetchone()[0] == 0:
                try:
                    writer.execute("BEGIN IMMEDIATE")
                    writer.execute("INSERT INTO scratch VALUES (1)")
                    writer.execute("COMMIT")
                except sqlite3.OperationalError as e:
                    refused.append(str(e))
            await asyncio.sleep(0.005)
    finally:
        thread.join()
        reader.close()
        writer.close()
    assert not failures
    assert refused == []
    assert pragma(db, "freelist_count") == 0


async def test_postgres_vacuum_covers_every_table_of_the_store() -> None:
    """`syncd vacuum` on PostgreSQL runs VACUUM (ANALYZE) on each table of the store's schema,
    the ones later migrations added (workers, host slots) included, beside open connections."""
    async with scratch_schema() as url:
        store = await PostgresStore.open(url)
        try:
            await store.ensure_feed("blog", "http://blog.test/feed", NOW)
            report = await store.vacuum(incremental=False)
            rows = await store.pg.rows(
                "SELECT relname AS name, last_vacuum, last_analyze FROM pg_stat_user_tables"
                " WHERE schemaname = current_schema()"
            )
        finally:
            await store.close()
    names = {r["name"] for r in rows}
    assert {"feeds", "events", "entry_versions", "workers", "host_slots"} <= names
    assert [r["name"] for r in rows if r["last_vacuum"] is None] == []
    assert [r["name"] for r in rows if r["last_analyze"] is None] == []
    assert report.before_bytes > 0 and report.after_bytes > 0
