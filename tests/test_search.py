"""Full-text search: the index holds text, not markup, follows every create, edit, delete and
restore made by the real `syncd sync`, is rebuilt by its migration, and the views."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from syncd.errors import SearchQueryError
from syncd.plaintext import html_to_text
from syncd.since import parse_since
from syncd.storage.reports import SearchQuery
from syncd.storage.sqlite import SqliteStore, search
from syncd.storage.sqlite.migrations import migrations
from tests.conftest import db_rows, syncd, write_config
from tests.support.feedserver import BloggerFeed, serve_feed


def test_text_not_markup() -> None:
    html = (
        '<p>Caf&eacute; <a href="https://x.test/">tab<b>les</b></a></p><p>next</p>'
        "<script>hiddenscript()</script><style>.hiddenstyle{}</style><!-- hiddencomment -->end"
        '<img src="a.png" alt="a tortoise">'
    )
    assert html_to_text(html) == "Café tables next end a tortoise"
    assert html_to_text("AT&amp;T &lt;b&gt;") == "AT&T <b>"
    assert html_to_text("Plain  title\n") == "Plain title"
    assert html_to_text(None) == ""
    assert html_to_text("<noscript><b>gone</b></noscript>kept") == "kept"


def _index_as_before(conn: sqlite3.Connection, feed_id: int, entry_id: str, text: str) -> None:
    """`search.index_entry` before it made a key in one statement and replaced in one."""
    conn.execute(
        "INSERT OR IGNORE INTO entries_search_keys (feed_id, entry_id) VALUES (?, ?)",
        (feed_id, entry_id),
    )
    key = conn.execute(
        "SELECT id FROM entries_search_keys WHERE feed_id = ? AND entry_id = ?",
        (feed_id, entry_id),
    ).fetchone()[0]
    conn.execute("DELETE FROM entries_search WHERE rowid = ?", (key,))
    conn.execute(
        "INSERT INTO entries_search (rowid, title, summary, content) VALUES (?, ?, ?, ?)",
        (key, html_to_text(text), html_to_text(text[::-1]), html_to_text(text * 2)),
    )


def _shadow_tables(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'entries_search%'"
            " AND sql NOT LIKE 'CREATE VIRTUAL%'"
        )
    ]
    return {n: conn.execute(f"SELECT * FROM {n} ORDER BY 1, 2").fetchall() for n in names}


_OPS = st.lists(
    st.tuples(
        st.integers(1, 2),  # feed
        st.sampled_from(["a", "b", "c"]),  # entry
        st.sampled_from(["", "<p>quokka &amp; tapir</p>", "wombat wombats", "<b>x</b> y"]),
        st.booleans(),  # index (or unindex)
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_index_writes_the_same_shadow_tables_as_before(
    ops: list[tuple[int, str, str, bool]],
) -> None:
    """Creates, edits, deletes and restores leave every FTS5 shadow table and the keys byte for
    byte as the former DELETE + INSERT did: the index users search is the same."""
    before, after = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for conn in (before, after):
        for sql in search.CREATE_SQL:
            conn.execute(sql)
    for feed_id, entry_id, text, index in ops:
        if index:
            _index_as_before(before, feed_id, entry_id, text)
            search.index_entry(after, feed_id, entry_id, text, text[::-1], text * 2)
        else:
            for conn in (before, after):
                search.unindex_entry(conn, feed_id, entry_id)
    tables = _shadow_tables(after)
    assert {"entries_search_data", "entries_search_keys", "entries_search_content"} <= set(tables)
    assert tables == _shadow_tables(before)


def hits(db: Path, query: str, **kw: object) -> list[str]:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        return [h.title or "" for h in search.search(conn, SearchQuery(query, **kw))]  # type: ignore[arg-type]
    finally:
        conn.close()


async def indexed(config: Path, db: Path, n: int) -> None:
    """`syncd index` took `n` entries and left none queued."""
    done = await syncd(config, "index", "--json")
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["indexed"] == n
    assert db_rows(db, "SELECT COUNT(*) FROM search_pending") == [(0,)]


async def test_index_follows_create_edit_delete_restore(tmp_path: Path) -> None:
    feed = BloggerFeed(3)
    async with serve_feed(feed) as server:
        config = write_config(tmp_path, feeds=[{"name": "blog", "url": server.url}])
        db = tmp_path / "syncd.db"
        post = feed.add_entry(
            "Tortoise news",
            content='<p>The <a href="https://x.test/">quokka</a> &amp; the ta&shy;pir'
            "<script>zebrascript()</script></p>",
        )
        assert (await syncd(config, "sync")).code == 0
        # `syncd sync` leaves the index to catch up: the post waits in the queue, unsearched.
        assert hits(db, "quokka") == []
        assert db_rows(db, "SELECT COUNT(*) FROM search_pending") == [(4,)]
        await indexed(config, db, 4)
        assert hits(db, "quokka") == ["Tortoise news"]
        assert hits(db, "href") == []  # markup is not indexed
        assert hits(db, "zebrascript") == []  # nor scripts
        assert hits(db, '"x.test"') == []  # nor attribute values
        assert hits(db, "tortoises") == ["Tortoise news"]  # porter: stems match

        feed.edit_entry(post, content="<p>Now about a <em>wombat</em></p>")
        assert (await syncd(config, "sync")).code == 0
        await indexed(config, db, 1)
        assert hits(db, "quokka") == []
        assert hits(db, "wombat") == ["Tortoise news"]

        feed.delete_entry(post)
        assert (await syncd(config, "sync", "--full")).code == 0
        await indexed(config, db, 1)
        assert db_rows(db, "SELECT deleted_at IS NOT NULL FROM entries WHERE entry_id = ?", (post,))
        assert hits(db, "wombat") == []  # a deleted entry leaves the index
        assert db_rows(db, "SELECT COUNT(*) FROM live_entries") == [(3,)]

        feed.restore_entry(post)
        assert (await syncd(config, "sync", "--full")).code == 0
        await indexed(config, db, 1)
        assert hits(db, "wombat") == ["Tortoise news"]
        assert db_rows(db, "SELECT COUNT(*) FROM live_entries") == [(4,)]
        # One index row per live entry, whatever happened before.
        assert db_rows(db, "SELECT COUNT(*) FROM entries_search") == [(4,)]
        changes = db_rows(db, "SELECT seq, type, feed, entry_id FROM changes LIMIT 3")
        assert [c[1] for c in changes] == ["entry.created", "entry.deleted", "entry.updated"]
        assert [c[0] for c in changes] == sorted((c[0] for c in changes), reverse=True)
        assert all(c[2] == "blog" and c[3] == post for c in changes)


def test_ranking_filters_and_syntax_errors(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    SqliteStore.open(db).db.close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO feeds (id, name, url, created_at) VALUES (1, 'a', 'u', 'x')")
    conn.execute("INSERT INTO feeds (id, name, url, created_at) VALUES (2, 'b', 'v', 'x')")
    rows = [
        (1, "body", "Something else", "<p>walrus walrus walrus here</p>", "2024-01-01T00:00:00Z"),
        (1, "title", "The walrus", "<p>a short note</p>", "2023-01-01T00:00:00Z"),
        (2, "other", "Walrus elsewhere", "<p>text</p>", "2024-06-01T00:00:00Z"),
    ]
    for feed_id, entry_id, title, content, published in rows:
        conn.execute(
            "INSERT INTO entries (feed_id, entry_id, title, content, published, content_hash)"
            " VALUES (?, ?, ?, ?, ?, 'h')",
            (feed_id, entry_id, title, content, published),
        )
        search.index_entry(conn, feed_id, entry_id, title, None, content)
    conn.commit()
    found = search.search(conn, SearchQuery("walrus"))
    assert next(h.entry_id for h in found) != "body"  # a title match outranks body repetitions
    assert {h.entry_id for h in found} == {"body", "title", "other"}
    assert next(h.entry_id for h in search.search(conn, SearchQuery("walrus", feed="a"))) == "title"
    assert {h.entry_id for h in search.search(conn, SearchQuery("walrus", feed="b"))} == {"other"}
    since = search.search(
        conn, SearchQuery("walrus", feed="a", since=parse_since("2023-06-01", datetime.now(UTC)))
    )
    assert [h.entry_id for h in since] == ["body"]
    assert search.search(conn, SearchQuery("short"))[0].snippet == "a [short] note"
    assert len(search.search(conn, SearchQuery("walrus", limit=1))) == 1
    assert parse_since("2d", datetime(2024, 1, 3, tzinfo=UTC)) == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", datetime.now(UTC))
    for bad in ('"unterminated', "AND walrus", "nosuchcolumn:walrus", "walrus)"):
        with pytest.raises(SearchQueryError, match="bad search query"):
            search.search(conn, SearchQuery(bad))
    conn.close()


def test_migration_rebuilds_the_index_from_markup(tmp_path: Path) -> None:
    """A store from before the migration, its index full of HTML: reopened, it holds text, and
    deleted entries are left out."""
    path = tmp_path / "syncd.db"
    old = Database(sqlite3.connect(path))
    migrations.apply(old.conn, stop_before="m008_search_text_and_views")
    old.execute("INSERT INTO feeds (id, name, url, created_at) VALUES (1, 'a', 'u', 'x')")
    for entry_id, content, deleted in (
        ("live", '<p><a href="https://x.test">narwhal</a></p>', None),
        ("gone", "<p>narwhal and okapi</p>", "2024-01-01T00:00:00Z"),
    ):
        old.execute(
            "INSERT INTO entries (feed_id, entry_id, title, content, content_hash, deleted_at)"
            " VALUES (1, ?, 'T', ?, 'h', ?)",
            (entry_id, content, deleted),
        )
    old.conn.commit()
    assert old.execute("SELECT COUNT(*) FROM entries_fts WHERE entries_fts MATCH 'href'").fetchone()
    old.close()

    SqliteStore.open(path).db.close()
    assert hits(path, "narwhal") == ["T"]
    assert hits(path, "href") == []
    assert hits(path, "okapi") == []
    assert db_rows(path, "SELECT name FROM sqlite_master WHERE name = 'entries_fts'") == []


async def test_search_command(tmp_path: Path) -> None:
    feed = BloggerFeed(3)
    async with serve_feed(feed) as server:
        config = write_config(tmp_path, feeds=[{"name": "blog", "url": server.url}])
        feed.add_entry("Pangolin field notes", content="<p>The <b>pangolin</b> sleeps.</p>")
        assert (await syncd(config, "sync")).code == 0
    found = await syncd(config, "search", "pangolin")
    assert found.code == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0].endswith("blog  Pangolin field notes")
    assert lines[1].strip() == "[Pangolin] field notes"  # the title matches best
    as_json = await syncd(config, "search", "sleeps", "--json", "--feed", "blog", "--limit", "5")
    hits = json.loads(as_json.stdout)
    assert [h["title"] for h in hits] == ["Pangolin field notes"]
    assert hits[0]["snippet"] == "The pangolin [sleeps]."
    none = await syncd(config, "search", "sleeps", "--since", "1d", "--feed", "other")
    assert none.code == 0 and none.stdout == ""
    bad = await syncd(config, "search", '"unterminated')
    assert bad.code == 2
    assert bad.stderr.strip().count("\n") == 0 and "bad search query" in bad.stderr
    bad_since = await syncd(config, "search", "x", "--since", "soon")
    assert bad_since.code == 2 and "--since" in bad_since.stderr
