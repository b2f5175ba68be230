"""An event is one INSERT on both backends: its seq is known before the insert (SQLite: counted
from AUTOINCREMENT's own rule inside the write transaction; PostgreSQL: reserved under the event
lock), so the envelope that carries it is built first instead of patched in by an UPDATE.

Differential tests against the previous code (insert with an empty payload, then update it), kept
here as the reference: the same seqs, rows, envelopes and sequence state for any run of events,
including ids that exist already (nothing written) and pruned tops (seqs never reused). And the
cheap "the version reproduces the entry" decision is exactly the byte comparison it replaced.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from syncd.app import build_app
from syncd.config import load_config
from syncd.diff import diff_page
from syncd.events import build_event
from syncd.model import EventDraft
from syncd.storage.envelopes import envelope, reproduces, stored, version_entry
from syncd.storage.postgres import entries as pg_entries
from syncd.storage.postgres import events as pg_events
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.rows import ENTRY_VALUE_COLUMNS, dump, entry_values
from syncd.storage.sqlite import SqliteStore, events
from syncd.storage.sqlite import entries as sqlite_entries
from syncd.timestamps import format_timestamp
from tests.conftest import write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.postgres import scratch_schema
from tests.test_envelopes import NOW, REF, entries, entry, version_row
from tests.test_poll_writes import _transactions

# ---------------------------------------------------------------- the previous code, as reference

Version = tuple[int, Mapping[str, Any]] | None


def old_stored(draft: EventDraft, seq: int, version: Mapping[str, Any] | None) -> tuple[str, bool]:
    entry = draft.data.get("entry")
    if (
        version is not None
        and entry is not None
        and _old_dump(entry) == _old_dump(version_entry(version))
    ):
        return envelope(replace(draft, data={**draft.data, "entry": None}), seq), True
    return envelope(draft, seq), False


def _old_dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def old_sqlite_insert(
    conn: sqlite3.Connection, feed_id: int, draft: EventDraft, now: datetime, version: Version
) -> int | None:
    cur = conn.execute(
        "INSERT OR IGNORE INTO events (id, type, feed_id, entry_id, created_at, initial,"
        " payload) VALUES (?, ?, ?, ?, ?, ?, '')",
        (draft.id, str(draft.type), feed_id, draft.entry_id, _text(now), int(draft.initial)),
    )
    if cur.rowcount == 0:
        return None
    seq = cur.lastrowid
    assert seq is not None
    payload, named = old_stored(draft, seq, version[1] if version else None)
    conn.execute(
        "UPDATE events SET payload = ?, version_id = ? WHERE seq = ?",
        (payload, version[0] if version and named else None, seq),
    )
    return seq


async def old_pg_insert(
    conn: psycopg.AsyncConnection[Any],
    feed_id: int,
    draft: EventDraft,
    now: datetime,
    version: Version,
) -> int | None:
    cur = await conn.execute(
        "INSERT INTO events (id, type, feed_id, entry_id, created_at, initial, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s, '') ON CONFLICT (id) DO NOTHING RETURNING seq",
        (draft.id, str(draft.type), feed_id, draft.entry_id, _text(now), int(draft.initial)),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    seq = int(row["seq"])
    payload, named = old_stored(draft, seq, version[1] if version else None)
    await conn.execute(
        "UPDATE events SET payload = %s, version_id = %s WHERE seq = %s",
        (payload, version[0] if version and named else None, seq),
    )
    return seq


def _text(now: datetime) -> str:
    return format_timestamp(now)


# ---------------------------------------------------------------- pure: dump and reproduces

# Any code point, lone surrogates included (the default alphabet leaves them out).
ANY_TEXT = st.text(st.characters(blacklist_categories=()))
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | ANY_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | ANY_TEXT, inner, max_size=3)
        | st.dictionaries(
            st.integers() | st.booleans() | st.none() | st.floats(), inner, max_size=2
        )
    ),
    max_leaves=8,
)


@settings(max_examples=500, deadline=None)
@given(JSONISH)
def test_dump_is_json_dumps_with_the_same_options(value: Any) -> None:
    """`dump` shares one C encoder between calls: the text is json.dumps' for any value the
    store may dump (tuples, non-string keys, NaN and infinities, any code point)."""
    assert dump(value) == _old_dump(value)


def test_dump_refuses_what_json_dumps_refuses() -> None:
    for value in ({(1, 2): "tuple key"}, {1j}, b"bytes", object()):
        with pytest.raises(TypeError):
            _old_dump(value)
        with pytest.raises(TypeError):
            dump(value)


# What a version column may hold besides what the store writes (text or NULL; the JSON columns
# JSON text, not necessarily as syncd writes it).
ODD = st.sampled_from(["", "[]", " []", "[ ]", '["a"]', '[{"name":"a"}]', "null", '{"a":1}', None])


@st.composite
def entry_and_version(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """An event's entry and a version row: the one the store writes for it, or a perturbed one
    (a column of another entry or an odd value; the entry's keys reordered, one missing or one
    more, a value of another type)."""
    first = draw(entries())
    change = diff_page([first], {}, {}).changes[0]
    payload = dict(build_event(change, REF, initial=False, now=NOW).data["entry"])
    version = dict(version_row(1, change))
    if draw(st.booleans()):
        other = version_row(1, diff_page([draw(entries())], {}, {}).changes[0])
        column = draw(st.sampled_from(sorted(version)))
        version[column] = draw(st.just(other[column]) | ODD)
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(payload)))
        how = draw(st.sampled_from(["reorder", "drop", "extra", "retype"]))
        if how == "reorder":
            payload = {key: payload.pop(key), **payload}
        elif how == "drop":
            del payload[key]
        elif how == "extra":
            payload["links"] = []
        else:
            payload[key] = draw(JSONISH)
    return payload, version


@settings(max_examples=1000, deadline=None)
@given(entry_and_version())
def test_reproduces_is_the_byte_comparison_it_replaced(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    payload, version = pair
    assert reproduces(payload, version) == (_old_dump(payload) == _old_dump(version_entry(version)))


@settings(max_examples=200, deadline=None)
@given(entries(), st.integers(1, 2**53), st.booleans())
def test_stored_text_is_what_it_was(first: Any, seq: int, same: bool) -> None:
    change = diff_page([first], {}, {}).changes[0]
    draft = build_event(change, REF, initial=False, now=NOW)
    version = version_row(1, change) | ({} if same else {"title": "not the event's"})
    assert stored(draft, seq, version) == old_stored(draft, seq, version)


# ---------------------------------------------------------------- SQLite


def drafts(n: int) -> list[tuple[EventDraft, dict[str, Any]]]:
    """`n` events of new entries, each with its version row."""
    out = []
    for i in range(1, n + 1):
        change = diff_page([entry(i)], {}, {}).changes[0]
        out.append((build_event(change, REF, initial=i % 2 == 0, now=NOW), version_row(1, change)))
    return out


POOL = drafts(6)
# A run of events: write transactions of (which event, with its version, a mismatching one or
# none), each followed or not by a prune of the newest event.
STEPS = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.sampled_from(["v", "other", "-"]))),
        st.booleans(),
    ),
    max_size=5,
)


def _version_rows() -> list[tuple[Any, ...]]:
    """The version rows both stores hold: one per pool event (ids 1..) and one that does not
    reproduce it (ids 101..)."""
    rows = []
    for i, (draft, row) in enumerate(POOL, start=1):
        for vid, title in ((i, row["title"]), (100 + i, MISMATCH)):
            rows.append((vid, 1, row["entry_id"], draft.id, title, *(row[c] for c in _VCOLS[2:])))
    return rows


MISMATCH = "not the event's"
_VCOLS = ("entry_id", "title", "link", "published", "updated", "authors", "categories",
          "summary", "content", "base_url")  # fmt: skip
_VERSION_INSERT = (
    "INSERT INTO entry_versions (id, feed_id, entry_id, event_id, title, link, published,"
    " updated, authors, categories, summary, content, base_url) VALUES "
)


def _version_for(i: int, which: str) -> Version:
    row = POOL[i][1]
    if which == "v":
        return i + 1, row
    if which == "other":
        return 101 + i, row | {"title": MISMATCH}
    return None


def _sqlite_events(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
    counter = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchall()
    return [*rows, ("sqlite_sequence", counter)]


def sqlite_run(
    path: Path, steps: Sequence[tuple[list[tuple[int, str]], bool]], *, new: bool
) -> tuple[list[list[int | None]], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    returned: list[list[int | None]] = []
    try:
        for batch, prune in steps:
            conn.execute("BEGIN IMMEDIATE")
            log = events.EventLog(conn, 1, NOW)
            got = []
            for i, which in batch:
                draft, version = POOL[i][0], _version_for(i, which)
                if new:
                    got.append(log.insert(draft, version))
                else:
                    got.append(old_sqlite_insert(conn, 1, draft, NOW, version))
            conn.execute("COMMIT")
            returned.append(got)
            if prune:
                conn.execute("DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)")
        return returned, _sqlite_events(conn)
    finally:
        conn.close()


def sqlite_template(root: Path) -> Path:
    path = root / "template.db"
    if not path.exists():
        SqliteStore.open(path).db.close()
        conn = sqlite3.connect(path)
        conn.execute(
            "INSERT INTO feeds (id, name, url, created_at) VALUES (1, 'blog', ?, ?)",
            (REF.url, _text(NOW)),
        )
        values = _version_rows()
        conn.executemany(_VERSION_INSERT + f"({', '.join('?' * 13)})", values)
        conn.commit()
        conn.close()
    return path


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(STEPS)
def test_sqlite_inserts_give_what_insert_then_update_gave(
    tmp_path: Path, steps: Sequence[tuple[list[tuple[int, str]], bool]]
) -> None:
    template = sqlite_template(tmp_path)
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    shutil.copy(template, old)
    shutil.copy(template, new)
    assert sqlite_run(new, steps, new=True) == sqlite_run(old, steps, new=False)


def test_an_existing_event_id_writes_no_event_and_uses_its_seq_up(tmp_path: Path) -> None:
    """As `INSERT OR IGNORE` under AUTOINCREMENT did: no row, None, and the seq it would have
    had is gone (sqlite_sequence moved on), in this transaction and the next ones."""
    path = sqlite_template(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        log = events.EventLog(conn, 1, NOW)
        assert log.insert(POOL[0][0], _version_for(0, "v")) == 1
        before = conn.execute("SELECT * FROM events").fetchall()
        assert log.insert(POOL[0][0], _version_for(0, "v")) is None
        assert conn.execute("SELECT * FROM events").fetchall() == before
        assert log.insert(POOL[1][0]) == 3
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        assert events.insert(conn, 1, POOL[1][0], NOW + timedelta(hours=1)) is None
        conn.execute("COMMIT")
        conn.execute("DELETE FROM sqlite_sequence")  # by hand: the conflict writes it anew
        conn.execute("BEGIN IMMEDIATE")
        assert events.insert(conn, 1, POOL[0][0], NOW) is None
        assert events.insert(conn, 1, POOL[2][0], NOW) == 5
        conn.execute("COMMIT")
        assert [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")] == [1, 3, 5]
    finally:
        conn.close()


def test_a_pruned_top_seq_is_never_given_again(tmp_path: Path) -> None:
    path = sqlite_template(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for i in range(3):
            conn.execute("BEGIN IMMEDIATE")
            assert events.insert(conn, 1, POOL[i][0], NOW) == i + 1
            conn.execute("COMMIT")
        conn.execute("DELETE FROM events")
        conn.execute("BEGIN IMMEDIATE")
        assert events.insert(conn, 1, POOL[3][0], NOW) == 4
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_page_commit_is_one_insert_per_event_and_one_seq_read(tmp_path: Path) -> None:
    async with serve_feed(BloggerFeed(5)) as server:
        feeds = [{"name": "f", "url": server.url, "changes": "off"}]
        config = load_config(write_config(tmp_path, feeds=feeds))
        async with build_app(config) as app:
            assert isinstance(app.store, SqliteStore)
            statements: list[str] = []
            app.store.db.conn.set_trace_callback(statements.append)
            [report] = await app.sync_feeds(config.feeds, full=False, force=False)
            app.store.db.conn.set_trace_callback(None)
    assert report.outcome == "ok" and len(report.seqs) == 5
    [page] = [t for t in _transactions(statements) if any("INTO entries " in s for s in t)]
    inserts = [s for s in page if s.startswith("INSERT INTO events")]
    assert len(inserts) == 5
    assert not any(s.startswith("UPDATE events") for s in statements)
    assert sum("sqlite_sequence" in s for s in page) == 1
    # Each insert carries its envelope, seq included.
    assert all(f'"seq":{seq},' in s for seq, s in zip(report.seqs, inserts, strict=True))


# ---------------------------------------------------------------- PostgreSQL


async def _pg_prepare(url: str) -> None:
    await (await PostgresStore.open(url)).close()  # migrated
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO feeds (id, name, url, created_at) VALUES (1, 'blog', %s, %s)",
            (REF.url, _text(NOW)),
        )
        for values in _version_rows():
            await conn.execute(
                _VERSION_INSERT + f"({', '.join(['%s'] * 13)})",
                values,
            )


async def pg_run(
    url: str, steps: Sequence[tuple[list[tuple[int, str]], bool]], *, new: bool
) -> tuple[list[list[int | None]], list[tuple[Any, ...]]]:
    returned: list[list[int | None]] = []
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        for batch, prune in steps:
            async with conn.transaction():
                await pg_events.lock(conn)
                got: list[int | None] = []
                if new:
                    seqs = await pg_events.reserve(conn, len(batch))
                    for (i, which), seq in zip(batch, seqs, strict=True):
                        ok = await pg_events.insert(
                            conn, 1, POOL[i][0], _text(NOW), _version_for(i, which), seq
                        )
                        got.append(seq if ok else None)
                else:
                    for i, which in batch:
                        got.append(
                            await old_pg_insert(conn, 1, POOL[i][0], NOW, _version_for(i, which))
                        )
            returned.append(got)
            if prune:
                async with conn.transaction():
                    await conn.execute(
                        "DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)"
                    )
        cur = await conn.execute("SELECT * FROM events ORDER BY seq")
        rows = [tuple(r.values()) for r in await cur.fetchall()]
        cur = await conn.execute("SELECT last_value, is_called FROM events_seq_seq")
        rows.append(tuple((await cur.fetchall())[0].values()))
    return returned, rows


async def test_postgres_inserts_give_what_insert_then_update_gave() -> None:
    """A fixed run: repeats within a transaction and across, versions named, mismatching and
    none, a pruned top; seqs used up by existing ids on both (the sequence is not rolled back)."""
    steps = [
        ([(0, "v"), (1, "other"), (0, "v"), (2, "-")], False),
        ([(1, "v"), (3, "v")], True),
        ([(3, "v"), (4, "other"), (5, "v")], False),
        ([], False),
        ([(5, "-"), (0, "v")], True),
    ]
    async with scratch_schema() as old_url, scratch_schema() as new_url:
        await _pg_prepare(old_url)
        await _pg_prepare(new_url)
        old = await pg_run(old_url, steps, new=False)
        new = await pg_run(new_url, steps, new=True)
    assert new == old
    assert old[0] == [[1, 2, None, 4], [None, 6], [7, 8, 9], [], [None, None]]


# ---------------------------------------------------------------- the entry upsert, built once


def test_the_entry_upsert_is_the_statement_built_per_entry_before() -> None:
    values = entry_values(1, diff_page([entry(1)], {}, {}).changes[0], _text(NOW))
    assert tuple(values) == ENTRY_VALUE_COLUMNS
    keep = {"feed_id", "entry_id", "first_seen"}
    updates = ", ".join(f"{c} = excluded.{c}" for c in values if c not in keep)
    for place, revision, built in (
        (":{}", "revision + 1", sqlite_entries._UPSERT),
        ("%({})s", "entries.revision + 1", pg_entries._UPSERT),
    ):
        places = ", ".join(place.format(c) for c in values)
        assert built == (
            f"INSERT INTO entries ({', '.join(values)}, revision) VALUES ({places}, 1)"
            f" ON CONFLICT (feed_id, entry_id) DO UPDATE SET {updates}, deleted_at = NULL,"
            f" deleted_reason = NULL, missing_crawls = 0, revision = {revision}"
        )
