"""The search index off the page's write path (issue 7): a page only queues its stale entries
(`search_pending`), the indexer catches up later. Checked on both backends: the index it leaves
is the one the former in-transaction path built (that path is kept here as the reference), a
crash or an abort mid-batch loses nothing, a change racing a batch is never overwritten by older
text, many indexers take each row once, and the daemon, `syncd search`, `syncd index`, `syncd
status` and the pull API each do their part."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from syncd.app import build_app
from syncd.cli.index import caught_up
from syncd.config import load_config
from syncd.errors import StoreError
from syncd.indexer import Indexer, catch_up
from syncd.model import Change, Deletion
from syncd.plaintext import html_to_text
from syncd.pull import Bell
from syncd.storage import Store
from syncd.storage.postgres import entries as pg_entries
from syncd.storage.postgres import search as pg_search
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.reports import SearchQuery
from syncd.storage.rows import text_changed
from syncd.storage.sqlite import SqliteStore
from syncd.storage.sqlite import entries as sq_entries
from syncd.storage.sqlite import search as sq_search
from syncd.storage.sqlite.db import Db
from tests.conftest import db_rows, syncd, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.postgres import scratch_schema
from tests.support.process import free_port, running_syncd, start_syncd
from tests.support.webapp import api_server
from tests.test_e2e_daemon import wait_until


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with scratch_schema() as url:
        yield url


# ---------------------------------------------------------------- the former path, as reference


@contextmanager
def in_transaction_index(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The index as it was kept before: each entry (re)indexed or unindexed inside its page's
    write transaction, by the entries module, and nothing queued."""
    sq_write, sq_delete = sq_entries.write, sq_entries.delete
    pg_write, pg_delete = pg_entries.write, pg_entries.delete

    def sq_write_before(conn: sqlite3.Connection, feed_id: int, change: Change, *a: Any) -> Any:
        written = sq_write(conn, feed_id, change, *a)
        if text_changed(change):
            e = change.entry
            sq_search.index_entry(conn, feed_id, e.entry_id, e.title, e.summary, e.content)
        return written

    def sq_delete_before(conn: sqlite3.Connection, feed_id: int, d: Deletion, *a: Any) -> None:
        sq_delete(conn, feed_id, d, *a)
        sq_search.unindex_entry(conn, feed_id, d.entry.entry_id)

    async def pg_write_before(conn: Any, feed_id: int, change: Change, *a: Any) -> Any:
        written = await pg_write(conn, feed_id, change, *a)
        if text_changed(change):
            e = change.entry
            await pg_search.index_entry(conn, feed_id, e.entry_id, e.title, e.summary, e.content)
        return written

    async def pg_delete_before(conn: Any, feed_id: int, d: Deletion, *a: Any) -> None:
        await pg_delete(conn, feed_id, d, *a)
        await pg_search.unindex_entry(conn, feed_id, d.entry.entry_id)

    async def nothing_queued(*_: Any) -> None:
        return None

    with monkeypatch.context() as m:
        m.setattr(sq_entries, "write", sq_write_before)
        m.setattr(sq_entries, "delete", sq_delete_before)
        m.setattr(sq_search, "mark_stale", lambda *_: None)
        m.setattr(pg_entries, "write", pg_write_before)
        m.setattr(pg_entries, "delete", pg_delete_before)
        m.setattr(pg_search, "mark_stale", nothing_queued)
        yield


def sqlite_index(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the FTS5 index holds, by entry key rather than by rowid (keys are numbered in the
    order entries are first indexed, which batching may change): the stored text, each row's
    token count, and every (term, column, offset) of the inverted index (fts5vocab). The
    segment layout of `entries_search_data` follows transaction boundaries, not content."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, entries_search, instance)"
        )
        key = "JOIN entries_search_keys k ON k.id = "
        return {
            "content": conn.execute(
                f"SELECT k.feed_id, k.entry_id, c.c0, c.c1, c.c2 FROM entries_search_content c"
                f" {key}c.id ORDER BY 1, 2"
            ).fetchall(),
            "docsize": conn.execute(
                f"SELECT k.feed_id, k.entry_id, d.sz FROM entries_search_docsize d {key}d.id"
                " ORDER BY 1, 2"
            ).fetchall(),
            "instances": conn.execute(
                f"SELECT k.feed_id, k.entry_id, v.term, v.col, v.offset FROM temp.vocab v"
                f" {key}v.doc ORDER BY 1, 2, 3, 4, 5"
            ).fetchall(),
        }
    finally:
        conn.close()


async def pg_index(store: PostgresStore) -> list[tuple[Any, ...]]:
    rows = await store.pg.rows(
        "SELECT feed_id, entry_id, title, summary, content, document::text AS document"
        " FROM entries_search ORDER BY feed_id, entry_id"
    )
    return [tuple(r.values()) for r in rows]


# ---------------------------------------------------------------- the same index as before

# A story of a feed: posts added, edited (title, content), deleted and restored, synced after
# each step, and on the new path the index caught up after some syncs (so that entries indexed
# already are edited and deleted) and always at the end.
Step = tuple[str, int, str, bool]
_STEP = st.tuples(
    st.sampled_from(["add", "edit", "retitle", "delete", "restore", "sync-only"]),
    st.integers(0, 7),
    st.sampled_from(
        ["<p>quokka &amp; tapir</p>", "wombat <b>wombats</b>", "", "Caf&eacute; <i>narwhal</i>"]
    ),
    st.booleans(),  # catch up after this step's sync
)


def _apply(feed: BloggerFeed, removed: list[str], step: Step) -> None:
    op, n, text, _ = step
    ids = feed.ids()
    if op == "add":
        feed.add_entry(f"Post about {html_to_text(text) or 'nothing'}", content=text)
    elif op == "edit" and ids:
        feed.edit_entry(ids[n % len(ids)], content=text)
    elif op == "retitle" and ids:
        feed.edit_entry(ids[n % len(ids)], title=f"Retitled {n}")
    elif op == "delete" and ids:
        removed.append(ids[n % len(ids)])
        feed.delete_entry(removed[-1])
    elif op == "restore" and removed:
        feed.restore_entry(removed.pop(n % len(removed)))


async def _story(
    tmp_path: Path,
    steps: list[Step],
    before_store: dict[str, Any],
    after_store: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, Any]:
    """Run the story through both paths, one sync per step each; what each store's searches
    find, ranks and snippets included."""
    feed = BloggerFeed(3)
    removed: list[str] = []
    async with serve_feed(feed) as server:
        feeds = [{"name": "blog", "url": server.url, "changes": "off"}]
        configs = []
        for name, store in (("before", before_store), ("after", after_store)):
            (tmp_path / name).mkdir(exist_ok=True)
            configs.append(
                load_config(
                    write_config(
                        tmp_path / name, feeds=feeds, store=store, fetch={"parse_workers": 1}
                    )
                )
            )
        async with build_app(configs[0]) as before, build_app(configs[1]) as after:
            assert await after.store.search_pending() == 0
            for step in [("sync-only", 0, "", False), *steps]:
                _apply(feed, removed, step)
                with in_transaction_index(monkeypatch):
                    await before.sync_feeds(configs[0].feeds, full=True, force=True)
                await after.sync_feeds(configs[1].feeds, full=True, force=True)
                if step[3]:
                    await catch_up(after.store, batch=2)
            assert await before.store.search_pending() == 0
            queued = await after.store.search_pending()
            assert await catch_up(after.store, batch=2) == queued
            assert await after.store.search_pending() == 0
            return await _hits(before.store), await _hits(after.store)


async def _hits(store: Store) -> list[list[tuple[str, str, str]]]:
    words = ("quokka", "wombat", "narwhal", "retitled", "post", "cafe")
    return [
        [(h.entry_id, h.snippet, f"{h.rank:.6f}") for h in await store.search(SearchQuery(w))]
        for w in words
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(_STEP, min_size=1, max_size=7))
def test_index_after_catch_up_is_the_in_transaction_index(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    steps: list[Step],
) -> None:
    """SQLite: the FTS5 index by entry (see `sqlite_index`); PostgreSQL: every `entries_search`
    row, tsvector included; both: what searches find, snippets and ranks included."""
    tmp_path = tmp_path_factory.mktemp("story")

    async def sqlite_story() -> None:
        before_hits, after_hits = await _story(
            tmp_path,
            steps,
            {"path": str(tmp_path / "before.db")},
            {"path": str(tmp_path / "after.db")},
            monkeypatch,
        )
        assert after_hits == before_hits
        before = sqlite_index(tmp_path / "before.db")
        live = db_rows(tmp_path / "before.db", "SELECT COUNT(*) FROM live_entries")[0][0]
        assert len(before["content"]) == live  # one row per live entry: the reference works
        assert sqlite_index(tmp_path / "after.db") == before

    async def postgres_story() -> None:
        async with scratch_schema() as before_url, scratch_schema() as after_url:
            before_hits, after_hits = await _story(
                tmp_path, steps, {"url": before_url}, {"url": after_url}, monkeypatch
            )
            assert after_hits == before_hits
            stores = [await PostgresStore.open(u) for u in (before_url, after_url)]
            try:
                expected = await pg_index(stores[0])
                live = await stores[0].pg.rows("SELECT COUNT(*) AS n FROM live_entries")
                assert len(expected) == live[0]["n"]  # one row per live entry
                assert await pg_index(stores[1]) == expected
            finally:
                for s in stores:
                    await s.close()

    asyncio.run(sqlite_story() if backend == "sqlite" else postgres_story())


# ---------------------------------------------------------------- crash safety and races


def _seed_sqlite(path: Path, n: int) -> None:
    """A store with `n` live entries, every one queued for the index, as a big sync leaves it."""
    SqliteStore.open(path).db.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO feeds (id, name, url, created_at) VALUES (1, 'f', 'u', 'x')")
        conn.executemany(
            "INSERT INTO entries (feed_id, entry_id, title, summary, content, content_hash)"
            " VALUES (1, ?, ?, ?, ?, 'h')",
            [
                (
                    f"e{i}",
                    f"Title {i} <b>aardvark</b>",
                    f"<p>summary {i}</p>",
                    "<div><p>" + f"word{i} lorem ipsum dolor " * 40 + "</p></div>",
                )
                for i in range(n)
            ],
        )
        conn.executemany(
            "INSERT INTO search_pending (feed_id, entry_id) VALUES (1, ?)",
            [(f"e{i}",) for i in range(n)],
        )
    conn.close()


def _consistent(path: Path) -> int:
    """Every entry not queued has the index row its current text makes (live) or none
    (deleted); how many are queued."""
    conn = sqlite3.connect(path)
    try:
        queued = {r[0] for r in conn.execute("SELECT entry_id FROM search_pending")}
        indexed = {
            r[0]: tuple(r[1:])
            for r in conn.execute(
                "SELECT k.entry_id, s.title, s.summary, s.content FROM entries_search s"
                " JOIN entries_search_keys k ON k.id = s.rowid"
            )
        }
        for entry_id, title, summary, content, deleted in conn.execute(
            "SELECT entry_id, title, summary, content, deleted_at FROM entries"
        ):
            if entry_id in queued:
                continue
            expected = None if deleted else tuple(map(html_to_text, (title, summary, content)))
            assert indexed.get(entry_id) == expected, entry_id
        return len(queued)
    finally:
        conn.close()


async def test_a_killed_syncd_index_leaves_the_rest_queued(tmp_path: Path) -> None:
    """SIGKILL in the middle of `syncd index`: what it committed is indexed, the rest is still
    queued, and a second run finishes with the index a rebuild makes."""
    n = 3000
    db = tmp_path / "syncd.db"
    _seed_sqlite(db, n)
    config = write_config(tmp_path, feeds=[], store={"path": str(db)})
    proc = await start_syncd(config, "index")
    try:
        await wait_until(lambda: db_rows(db, "SELECT COUNT(*) FROM search_pending")[0][0] < n)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = _consistent(db)
    assert 0 < left < n  # killed mid-drain: some batches landed, others did not
    done = await syncd(config, "index", "--json")
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["indexed"] == left
    assert _consistent(db) == 0
    rebuilt = tmp_path / "rebuilt.db"
    source = sqlite3.connect(db)
    with sqlite3.connect(rebuilt) as copy:
        source.backup(copy)
    source.close()
    with sqlite3.connect(rebuilt) as conn:
        sq_search.rebuild(conn)
    assert sqlite_index(db)["instances"] == sqlite_index(rebuilt)["instances"]
    assert len(sqlite_index(db)["content"]) == n


async def test_an_aborted_batch_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails half-way (a full disk) rolls back whole: nothing dequeued, nothing
    indexed; the next catch-up does it all."""
    db = tmp_path / "syncd.db"
    _seed_sqlite(db, 10)
    store = SqliteStore.open(db)
    apply = sq_search.apply_pending

    def failing_apply(conn: sqlite3.Connection, batch: list[sq_search.Stale]) -> int:
        apply(conn, batch[:5])
        raise sqlite3.OperationalError("disk I/O error")

    try:
        with monkeypatch.context() as m:
            m.setattr(sq_search, "apply_pending", failing_apply)
            with pytest.raises(StoreError, match="disk I/O error"):
                await store.index_pending(10)
        assert _consistent(db) == 10
        assert db_rows(db, "SELECT COUNT(*) FROM entries_search") == [(0,)]
        assert await catch_up(store) == 10
        assert _consistent(db) == 0
    finally:
        await store.close()


async def test_sqlite_a_change_during_a_batch_is_not_overwritten(tmp_path: Path) -> None:
    """The indexer reads a batch, a page then edits one of its entries (and queues it again),
    then the batch is applied: the edited entry keeps its queue row and gets its new text next;
    its older text read by the batch is never written."""
    db = tmp_path / "syncd.db"
    _seed_sqlite(db, 3)
    store = SqliteStore.open(db)
    try:
        batch = sq_search.read_pending(store.db.conn, 10)
        with store.write() as conn:
            conn.execute("UPDATE entries SET title = 'Pangolin' WHERE entry_id = 'e1'")
            sq_search.mark_stale(conn, 1, ["e1"])
        with store.write() as conn:
            assert sq_search.apply_pending(conn, batch) == 2
        assert db_rows(db, "SELECT entry_id FROM search_pending") == [("e1",)]
        assert _consistent(db) == 1
        assert await store.search(SearchQuery("aardvark", feed="f")) != []
        assert await catch_up(store) == 1
        assert [h.entry_id for h in await store.search(SearchQuery("pangolin"))] == ["e1"]
        assert _consistent(db) == 0
    finally:
        await store.close()


async def _seed_pg(url: str, n: int) -> PostgresStore:
    store = await PostgresStore.open(url)
    async with store.pg.write() as conn:
        await conn.execute(
            "INSERT INTO feeds (id, name, url, created_at) VALUES (1, 'f', 'u', 'x')"
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO entries (feed_id, entry_id, title, content, content_hash)"
                " VALUES (1, %s, %s, %s, 'h')",
                [(f"e{i}", f"Title {i} aardvark", f"<p>word{i}</p>") for i in range(n)],
            )
        await pg_search.mark_stale(conn, 1, [f"e{i}" for i in range(n)])
    return store


async def test_postgres_indexers_take_each_row_once(pg_url: str) -> None:
    """Three indexers at once (as three workers' daemons): every queued entry is taken by
    exactly one of them, and the index ends complete."""
    n = 300
    first = await _seed_pg(pg_url, n)
    stores = [first, await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)]
    try:
        taken = await asyncio.gather(*(catch_up(s, batch=7) for s in stores))
        assert sum(taken) == n
        assert await first.search_pending() == 0
        rows = await first.pg.rows("SELECT COUNT(*) AS n FROM entries_search")
        assert rows[0]["n"] == n
        assert [h.entry_id for h in await first.search(SearchQuery("word7"))] == ["e7"]
    finally:
        for s in stores:
            await s.close()


async def test_postgres_a_page_changing_a_queued_entry_holds_it_from_indexers(
    pg_url: str,
) -> None:
    """A page's transaction that edits an entry already queued locks its queue row until it
    commits: an indexer meanwhile skips that row (it would read the text before the edit), and
    indexes the new text afterwards. An aborted indexer batch leaves its rows queued."""
    store = await _seed_pg(pg_url, 2)
    page = await psycopg.AsyncConnection.connect(pg_url)
    try:
        await page.execute("UPDATE entries SET title = 'Pangolin' WHERE entry_id = 'e0'")
        await pg_search.mark_stale(page, 1, ["e0"])  # type: ignore[arg-type]
        assert await store.index_pending(10) == 1  # e1 only: e0 is the page's until it commits
        await page.commit()
        with pytest.raises(StoreError):
            async with store.pg.write() as conn:
                assert await pg_search.index_pending(conn, 10) == 1
                raise psycopg.errors.QueryCanceled("aborted mid-batch")
        assert await store.search_pending() == 1  # rolled back: still queued
        assert await catch_up(store) == 1
        assert [h.entry_id for h in await store.search(SearchQuery("pangolin"))] == ["e0"]
        assert await store.search(SearchQuery("title")) != []
    finally:
        await page.close()
        await store.close()


# ---------------------------------------------------------------- who catches up


async def test_sync_leaves_the_index_to_syncd_index_and_status_shows_it(tmp_path: Path) -> None:
    feed = BloggerFeed(4)
    async with serve_feed(feed) as server:
        config = write_config(tmp_path, feeds=[{"name": "blog", "url": server.url}])
        feed.add_entry("Okapi sightings", content="<p>An <b>okapi</b> at dawn.</p>")
        assert (await syncd(config, "sync")).code == 0
    status = await syncd(config, "status", "--json")
    assert json.loads(status.stdout)["search"] == {"pending": 5}
    text = await syncd(config, "status")
    assert "5 entries waiting for the index" in text.stdout
    db = tmp_path / "syncd.db"
    assert db_rows(db, "SELECT COUNT(*) FROM entries_search") == [(0,)]
    done = await syncd(config, "index")
    assert done.code == 0 and done.stdout.startswith("5 entries indexed"), done.stderr
    assert json.loads((await syncd(config, "status", "--json")).stdout)["search"]["pending"] == 0
    assert "index up to date" in (await syncd(config, "status")).stdout
    again = await syncd(config, "index", "--json")
    assert json.loads(again.stdout)["indexed"] == 0
    assert db_rows(db, "SELECT COUNT(*) FROM entries_search") == [(5,)]


async def test_a_reader_that_cannot_catch_up_says_how_far_behind(tmp_path: Path) -> None:
    """A store this process cannot write (a read-only file, a lock held past the busy
    timeout): the search reads the index as it stands, and a warning says how many entries
    it lags by."""
    db = tmp_path / "syncd.db"
    _seed_sqlite(db, 4)
    store = SqliteStore.open_existing(db)

    async def unwritable(limit: int) -> int:
        raise StoreError(f"database error in {str(db)!r}: attempt to write a readonly database")

    store.index_pending = unwritable  # type: ignore[method-assign]
    try:
        with capture_logs() as logs:
            assert await caught_up(store) == 4
        [warning] = logs
        assert warning["log_level"] == "warning" and warning["pending"] == 4
        assert "not up to date" in warning["event"] and "readonly" in warning["error"]
        assert await store.search(SearchQuery("aardvark")) == []
    finally:
        await store.close()


async def test_the_daemon_indexes_in_the_background(tmp_path: Path) -> None:
    """`syncd run` alone (no `syncd index`, no search command) brings new posts into the index,
    the metrics say how far behind it is, and the pull API's `q` finds what was just synced."""
    feed = BloggerFeed(20)
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "f", "url": server.url, "interval": "1s"}],
            http={"listen": f"127.0.0.1:{free_port()}"},
        )
        db = tmp_path / "syncd.db"
        base = f"http://127.0.0.1:{_port(config)}"

        def indexed(words: str) -> Callable[[], bool]:
            def probe() -> bool:
                return bool(
                    db.exists()
                    and db_rows(
                        db,
                        "SELECT COUNT(*) FROM entries_search WHERE entries_search MATCH ?",
                        (words,),
                    )[0][0]
                )

            return probe

        async with running_syncd(config) as daemon, aiohttp.ClientSession() as http:
            await wait_until(lambda: _count(db, "entries") == 20)
            await wait_until(lambda: _count(db, "entries_search") == 20)
            assert _count(db, "search_pending") == 0
            post = feed.add_entry("Capybara weather", content="<p>Warm <i>capybara</i>.</p>")
            await wait_until(indexed("capybara"))
            feed.delete_entry(post)
            await wait_until(lambda: _count(db, "entries_search") == 20)
            assert not indexed("capybara")()
            metrics = await _get_text(http, base + "/metrics")
            assert "\nsyncd_search_pending_entries 0.0\n" in metrics
            [total] = [
                float(line.split()[1])
                for line in metrics.splitlines()
                if line.startswith("syncd_search_indexed_entries_total ")
            ]
            assert total >= 22  # 20, the post, its deletion (a batch may redo a re-queued one)
            # The pull API catches up before it searches: a post just synced is found.
            added = feed.add_entry("Tapir tracks")
            await wait_until(lambda: _count(db, "entries") == 22)
            found = await _get_json(http, base + "/api/entries?q=tapir")
            assert [e["entry_id"] for e in found["entries"]] == [added]
            await daemon.stop()


async def test_the_pull_api_catches_the_index_up_before_it_searches(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    _seed_sqlite(db, 3)
    store = SqliteStore.open(db)
    server = api_server(db, store, Bell())
    address = await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            assert db_rows(db, "SELECT COUNT(*) FROM entries_search") == [(0,)]
            found = await _get_json(http, f"http://{address}/api/entries?q=word1")
            assert [e["entry_id"] for e in found["entries"]] == ["e1"]
            assert await store.search_pending() == 0
    finally:
        await server.stop()
        await store.close()


async def _get_text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as r:
        assert r.status == 200, url
        return await r.text()


async def _get_json(http: aiohttp.ClientSession, url: str) -> Any:
    return json.loads(await _get_text(http, url))


def _count(db: Path, table: str) -> int:
    """Rows in `table`; -1 while the daemon has not created the store yet."""
    try:
        return int(db_rows(db, f"SELECT COUNT(*) FROM {table}")[0][0])
    except sqlite3.OperationalError:
        return -1


def _port(config: Path) -> int:
    line = next(x for x in config.read_text().splitlines() if x.startswith("listen"))
    return int(line.split(":")[-1].rstrip('"'))


@pytest.mark.parametrize(
    ("failure", "logged"),
    [
        (StoreError("database is locked"), "search indexing failed; retrying"),
        # A bug (not a SyncdError) must not end the daemon's indexing silently either.
        (RuntimeError("a bug in the text's extraction"), "search indexing crashed; retrying"),
    ],
)
async def test_indexer_retries_after_a_failed_batch(
    tmp_path: Path, failure: Exception, logged: str
) -> None:
    """A failed batch is a log line and a retry: the queue keeps what failed."""
    db = tmp_path / "syncd.db"
    _seed_sqlite(db, 5)
    store = SqliteStore.open(db)
    calls: list[int] = []
    real: Callable[[int], Awaitable[int]] = store.index_pending

    async def flaky(limit: int) -> int:
        calls.append(limit)
        if len(calls) == 1:
            raise failure
        return await real(limit)

    store.index_pending = flaky  # type: ignore[method-assign]
    stop = asyncio.Event()
    indexer = Indexer(store, batch=2, idle_s=0.01)
    with capture_logs() as logs:
        task = asyncio.create_task(indexer.run(stop))
        try:
            await wait_until(lambda: _count(db, "search_pending") == 0)
        finally:
            stop.set()
            await task
            await store.close()
    assert _consistent(db) == 0 and len(calls) >= 4
    assert [x["log_level"] for x in logs if x["event"] == logged] == ["error"]


def test_the_indexers_connection_commits_as_the_main_one_does(tmp_path: Path) -> None:
    """Index batches and heartbeats commit on a second connection: `synchronous = NORMAL` as on
    the main one, or each commit syncs the WAL while a page commit waits for the lock."""
    db = tmp_path / "syncd.db"
    _seed_sqlite(db, 1)
    writer = Db.open_for_writes(db)
    try:
        assert writer.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        writer.close()
