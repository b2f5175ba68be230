"""Content stored once per version: an event stores its envelope with `"entry":null` and names
its version; splicing the version back gives the envelope built from the event byte for byte
(generated entries, any unicode); a store written at the previous schema (m013: whole envelopes)
migrates, its events read exactly as before, shrunk where a version reproduces them."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.diff import diff_page
from syncd.events import build_deletion_event, build_event
from syncd.model import (
    Change,
    ChangeKind,
    Deletion,
    EventDraft,
    FeedRef,
    ParsedEntry,
    Person,
    StoredEntry,
)
from syncd.storage.envelopes import (
    ENTRY_LEFT_OUT,
    VERSION_FIELDS,
    envelope,
    leave_out,
    spliced,
    stored,
)
from syncd.storage.postgres.migrations import M001_INITIAL, M002_WEBSUB_LEASES
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.rows import as_stored_entry, entry_values
from syncd.storage.sqlite import SqliteStore
from syncd.storage.sqlite.migrations import migrations
from syncd.storage.values import EntryDeletion, PresenceCommit
from tests.support.envelopes import envelopes
from tests.support.postgres import scratch_schema

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
REF = FeedRef("blog", "http://blog.test/feed", "Blog \u2028 \U0001f600")
# Text as feeds have it after parsing: any character XML allows (no NUL, no lone surrogate).
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
OPTIONAL = st.none() | TEXT
STAMP = st.none() | st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def entries(draw: st.DrawFn) -> ParsedEntry:
    return ParsedEntry(
        entry_id=draw(TEXT.filter(bool)),
        id_source="id",
        title=draw(OPTIONAL),
        link=draw(OPTIONAL),
        published=draw(STAMP),
        updated=draw(STAMP),
        authors=tuple(draw(st.lists(st.builds(Person, OPTIONAL, OPTIONAL, OPTIONAL), max_size=3))),
        categories=tuple(draw(st.lists(TEXT, max_size=3))),
        summary=draw(OPTIONAL),
        content=draw(OPTIONAL),
        links=(),
        base_url=draw(OPTIONAL),
        content_hash=draw(st.text("0123456789abcdef", min_size=1, max_size=8)),
    )


def version_row(feed_id: int, change: Change) -> dict[str, object]:
    """What the store's version row holds for `change` (text columns read back as written)."""
    values = entry_values(feed_id, change, "2026-06-01T12:00:00.000Z")
    return {k: values[k] for k in VERSION_FIELDS}


def as_stored(change: Change) -> StoredEntry:
    values = entry_values(1, change, None)
    return as_stored_entry(values | {"deleted_at": None, "revision": 1, "missing_crawls": 0})


def read_back(payload: str, version: dict[str, object] | None) -> str:
    row: dict[str, object] = {"payload": payload, "version_id": 1 if version else None}
    row |= {f"v_{k}": v for k, v in (version or {}).items()}
    return spliced(row)


@settings(max_examples=300, deadline=None)
@given(entries(), entries(), st.integers(1, 2**53))
def test_splicing_gives_the_envelope_back_byte_for_byte(
    first: ParsedEntry, second: ParsedEntry, seq: int
) -> None:
    created = diff_page([first], {}, {}).changes[0]
    previous = as_stored(created)
    edited = Change(
        ChangeKind.UPDATED, replace(second, entry_id=first.entry_id), previous, ("title",)
    )
    for change in (created, edited):
        draft = build_event(change, REF, initial=False, now=NOW)
        version = version_row(1, change)
        text, named = stored(draft, seq, version)
        assert named and ENTRY_LEFT_OUT in text
        assert read_back(text, version) == envelope(draft, seq)
    # A deletion shows the entry as last stored: its newest version.
    gone = build_deletion_event(Deletion(previous, "tombstone"), REF, initial=False, now=NOW)
    text, named = stored(gone, seq, version_row(1, created))
    assert named and read_back(text, version_row(1, created)) == envelope(gone, seq)


def test_an_entry_no_version_reproduces_keeps_its_whole_envelope() -> None:
    change = diff_page([entry(1)], {}, {}).changes[0]
    draft = build_event(change, REF, initial=False, now=NOW)
    other = version_row(1, change) | {"title": "not what the event says"}
    text, named = stored(draft, 7, other)
    assert not named and text == envelope(draft, 7)
    assert stored(draft, 7, None) == (envelope(draft, 7), False)
    assert leave_out(envelope(draft, 7), other) is None
    short = leave_out(envelope(draft, 7), version_row(1, change))
    assert short is not None and read_back(short, version_row(1, change)) == envelope(draft, 7)


def entry(n: int, *, title: str | None = None, updated: datetime = NOW) -> ParsedEntry:
    return ParsedEntry(
        entry_id=f"tag:blog.test,2026:{n}",
        id_source="id",
        title=title or f"Post {n} \u2029",
        link=f"http://blog.test/{n}",
        published=NOW - timedelta(days=n),
        updated=updated,
        authors=(Person("Ann \U0001f600", None, None),),
        categories=("news \u2028",),
        summary=None,
        content=f"<p>body of post {n} \U0001d11e</p>",
        links=(),
        base_url="http://blog.test/",
        content_hash=f"hash-{n}-{title}",
    )


def write_old_store(path: Path) -> list[str]:
    """A store at m013, written as syncd wrote it then (whole envelopes, versions without
    base_url): post 1 created, edited, deleted; post 2 created; then post 1's first version
    pruned (keep_versions = 1 then let its created event keep the content). The payloads."""
    conn = sqlite3.connect(path)
    migrations.apply(conn, stop_before="m014_content_once_per_version")
    conn.execute(
        "INSERT INTO feeds (name, url, created_at) VALUES ('blog', 'http://blog.test/feed', ?)",
        (NOW.isoformat(),),
    )
    drafts: list[EventDraft] = []

    def write(change: Change, now: datetime) -> None:
        drafts.append(write_old_change(conn, change, now, len(drafts) + 1))

    write(diff_page([entry(1)], {}, {}).changes[0], NOW)
    known = _row(conn, entry(1).entry_id)
    later = NOW + timedelta(hours=1)
    write(
        diff_page([entry(1, title="Edited", updated=later)], {known.entry_id: known}, {}).changes[
            0
        ],
        later,
    )
    write(diff_page([entry(2)], {}, {}).changes[0], later)
    last = _row(conn, entry(1).entry_id)
    drafts.append(build_deletion_event(Deletion(last, "tombstone"), REF, initial=False, now=later))
    payloads = write_old_events(conn, drafts)
    conn.execute("DELETE FROM entry_versions WHERE id = 1")  # the old keep_versions = 1
    conn.commit()
    conn.close()
    return payloads


def write_old_change(
    conn: sqlite3.Connection, change: Change, now: datetime, revision: int
) -> EventDraft:
    """The entry and its version as syncd wrote them at m013 (no base_url); the event's draft."""
    draft = build_event(change, REF, initial=False, now=now)
    values = entry_values(1, change, now.isoformat())
    del values["parse_key"]  # a column of m018
    conn.execute(
        f"INSERT OR REPLACE INTO entries ({', '.join(values)}, revision)"
        f" VALUES ({', '.join('?' * len(values))}, ?)",
        [*values.values(), revision],
    )
    conn.execute(
        "INSERT INTO entry_versions (feed_id, entry_id, event_id, recorded_at, title, link,"
        " published, updated, authors, categories, summary, content, content_hash)"
        " VALUES (:feed_id, :entry_id, :event_id, :first_seen, :title, :link, :published,"
        " :updated, :authors, :categories, :summary, :content, :content_hash)",
        values | {"event_id": draft.id},
    )
    return draft


def write_old_events(conn: sqlite3.Connection, drafts: list[EventDraft]) -> list[str]:
    """The events as syncd wrote them at m013 (whole envelopes); the payloads."""
    payloads = []
    for d in drafts:
        cur = conn.execute(
            "INSERT INTO events (id, type, feed_id, entry_id, created_at, initial, payload)"
            " VALUES (?, ?, 1, ?, ?, 0, '')",
            (d.id, str(d.type), d.entry_id, d.timestamp.isoformat()),
        )
        assert cur.lastrowid is not None
        payloads.append(envelope(d, cur.lastrowid))
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (payloads[-1], cur.lastrowid))
    return payloads


def _row(conn: sqlite3.Connection, entry_id: str) -> StoredEntry:
    conn.row_factory = sqlite3.Row
    try:
        return as_stored_entry(
            conn.execute("SELECT * FROM entries WHERE entry_id = ?", (entry_id,)).fetchone()
        )
    finally:
        conn.row_factory = None


async def test_a_store_of_the_previous_schema_migrates_and_reads_the_same(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    payloads = write_old_store(db)
    store = SqliteStore.open(db)  # migrates
    found = envelopes(db)
    assert [text for _, _, text in found] == payloads  # byte for byte
    pulled = (await store.reads().events(0, 10)).events
    assert [e["data"]["seq"] for e in pulled] == [1, 2, 3, 4]
    named = store.rows("SELECT seq, version_id FROM events ORDER BY seq")
    # Post 1's created event lost its version to the old prune: it keeps its whole envelope.
    # The others name theirs; the deletion names post 1's newest version (base_url from entries).
    assert [(r["seq"], r["version_id"]) for r in named] == [(1, None), (2, 2), (3, 3), (4, 2)]
    short = store.rows("SELECT SUM(LENGTH(payload)) AS n FROM events")[0]["n"]
    assert short < sum(map(len, payloads)) - 2 * len("<p>body of post 1 \U0001d11e</p>")
    await store.close()


async def test_a_postgres_store_of_the_previous_schema_reads_the_same() -> None:
    """PostgreSQL (m002 → m003): events stored before keep their whole envelopes and read as
    before; versions take the base_url their event sent, so a later deletion names one."""
    async with scratch_schema() as url:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        async with conn:
            await conn.execute(
                "CREATE TABLE syncd_migrations (name TEXT PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for statement in (*M001_INITIAL, *M002_WEBSUB_LEASES):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO syncd_migrations (name)"
                " VALUES ('m001_initial'), ('m002_websub_leases')"
            )
            await conn.execute(
                "INSERT INTO feeds (name, url, created_at) VALUES ('blog', %s, %s)",
                (REF.url, NOW.isoformat()),
            )
            change = diff_page([entry(1)], {}, {}).changes[0]
            draft = build_event(change, REF, initial=False, now=NOW)
            values = entry_values(1, change, NOW.isoformat())
            del values["parse_key"]  # a column of m007
            await conn.execute(
                f"INSERT INTO entries ({', '.join(values)}, revision)"
                f" VALUES ({', '.join(['%s'] * len(values))}, 1)",
                list(values.values()),
            )
            await conn.execute(
                "INSERT INTO entry_versions (feed_id, entry_id, event_id, recorded_at, title,"
                " link, published, updated, authors, categories, summary, content,"
                " content_hash) VALUES (%(feed_id)s, %(entry_id)s, %(event_id)s,"
                " %(first_seen)s, %(title)s, %(link)s, %(published)s, %(updated)s,"
                " %(authors)s, %(categories)s, %(summary)s, %(content)s, %(content_hash)s)",
                values | {"event_id": draft.id},
            )
            whole = envelope(draft, 1)
            await conn.execute(
                "INSERT INTO events (id, type, feed_id, entry_id, created_at, initial, payload)"
                " VALUES (%s, %s, 1, %s, %s, 0, %s)",
                (draft.id, str(draft.type), draft.entry_id, NOW.isoformat(), whole),
            )
            await conn.execute(
                "INSERT INTO deliveries (event_seq, sink, state, created_at, next_attempt_at)"
                " VALUES (1, 'hook', 'pending', %s, %s)",
                (NOW.isoformat(), NOW.isoformat()),
            )
        store = await PostgresStore.open(url)  # migrates
        try:
            due = await store.outbox.load(1)
            assert due is not None and due.event.body == whole.encode()
            assert (await store.reads().events(0, 10)).events == [json.loads(whole)]
            known = await store.known_entries(1, [entry(1).entry_id])
            doomed = Deletion(known[entry(1).entry_id], "tombstone")
            gone = build_deletion_event(doomed, REF, initial=False, now=NOW)
            commit = PresenceCommit(1, NOW, deletions=(EntryDeletion(doomed, gone, ("hook",)),))
            [seq] = await store.commit_presence(commit)
            _, rows = await store.query_readonly("SELECT seq, version_id FROM events ORDER BY seq")
            assert rows == [(1, None), (seq, 1)]
            [info] = await store.outbox.list_deliveries(event=gone.id)
            resent = await store.outbox.load(info.id)
            assert resent is not None and resent.event.body == envelope(gone, seq).encode()
        finally:
            await store.close()


def write_edited_store(path: Path, edits: int) -> None:
    """A store at m013 (whole envelopes) with one post created, edited `edits` times and
    deleted: a version and an event per edit."""
    conn = sqlite3.connect(path)
    migrations.apply(conn, stop_before="m014_content_once_per_version")
    conn.execute(
        "INSERT INTO feeds (name, url, created_at) VALUES ('blog', 'http://blog.test/feed', ?)",
        (NOW.isoformat(),),
    )
    known: dict[str, StoredEntry] = {}
    drafts: list[EventDraft] = []
    for i in range(edits + 1):
        at = NOW + timedelta(minutes=i)
        change = diff_page([entry(1, title=f"Edit {i}", updated=at)], known, {}).changes[0]
        drafts.append(write_old_change(conn, change, at, i + 1))
        known = {change.entry.entry_id: _row(conn, change.entry.entry_id)}
    last = known[entry(1).entry_id]
    drafts.append(build_deletion_event(Deletion(last, "tombstone"), REF, initial=False, now=NOW))
    write_old_events(conn, drafts)
    conn.commit()
    conn.close()


def migration_steps(path: Path) -> int:
    """SQLite virtual machine steps (in hundreds) of migrating the store at `path`: a measure
    of work that, unlike time, does not depend on the machine's load."""
    conn = sqlite3.connect(path)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 100)
    try:
        migrations.apply(conn)
        conn.commit()
    finally:
        conn.set_progress_handler(None, 0)
        conn.close()
    return steps


def test_the_migration_reads_each_version_about_once(tmp_path: Path) -> None:
    """m014 on a post edited many times: each event finds its own version without reading its
    entry's others (every version of the entry per event made it quadratic: 88 s for one post
    edited 1,000 times, at 20 KB a version), and still names every event's version."""
    steps = {}
    for edits in (100, 200):
        db = tmp_path / f"edited-{edits}.db"
        write_edited_store(db, edits)
        steps[edits] = migration_steps(db)
        named = sqlite3.connect(db).execute("SELECT version_id FROM events ORDER BY seq").fetchall()
        # One event per version, in order; the deletion names the newest.
        assert [v for (v,) in named] == [*range(1, edits + 2), edits + 1]
    assert steps[200] < 3 * steps[100], steps  # twice the edits, about twice the work
