"""The edit skip (parse.FastPage, `entries.parse_key`): an entry the store knows by its key is
taken from the store instead of being read again, and nothing a sync writes may change for it.

The proof is differential and runs through the real syncer, parser pool and store, on both
backends: random sequences of page versions (hypothesis) are synced into two stores, one with
the skip and one without it (the reference: every entry read again, keys still stored), and
every row of every table, events, deliveries and keys included, must be equal after every
sync. The versions move entries between pages and feeds, drop them (absences, tombstones,
`fh:complete`), duplicate them on a page, edit them a little (link titles the hash ignores,
categories reordered, CDATA for escaped text), serve them as Atom or RSS, from another final
URL, under other namespace bindings or with a C1 character elsewhere in the body, and let
feedparser read some pages (xml:base, an undefined entity). Separate tests show that the skip
does skip, and that the code's digest is part of every key.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import syncd.parse
from syncd.config import FeedConfig
from syncd.model import EventDraft, FetchResult, ParsedEntry, ParsedPage, StoredEntry, Validators
from syncd.parse import Reuse
from syncd.parsepool import ParserPool
from syncd.storage import Store
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.sqlite import SqliteStore
from syncd.sync import FeedSyncer
from tests.support.postgres import scratch_schema

START = datetime(2026, 11, 30, 12, tzinfo=UTC)
HOST = "http://feeds.test"

# ---------------------------------------------------------------- documents


@dataclass(frozen=True)
class Item:
    """One entry as a page shows it; small choices, so versions repeat and differ a little."""

    ident: int  # which entry (ids repeat across pages, feeds and versions)
    title: int
    updated: int
    content: int
    replies: int  # the replies link's title: a change the content hash ignores
    reversed_tags: bool  # categories reordered: no edit either
    has_id: bool  # without <id>/<guid> the link is the id


CONTENTS = (
    "&lt;p&gt;Hello &amp; welcome&lt;/p&gt;",
    "<![CDATA[<p>Hello & welcome</p>]]>",  # the same text as the escaped one
    "caf\u00e9 \u2014 na\u00efve",
    "&lt;b&gt;bold&lt;/b&gt; text",
)


def atom_entry(item: Item) -> str:
    ident = f"<id>tag:feeds.test,2026:{item.ident}</id>" if item.has_id else ""
    tags = ['<category term="a"/>', '<category term="b"/>']
    return (
        f"<entry>{ident}<title>Post {item.ident}.{item.title}</title>"
        f"<published>2026-11-01T00:00:0{item.ident % 10}Z</published>"
        f"<updated>2026-11-0{1 + item.updated}T00:00:00Z</updated>"
        f'<link rel="alternate" type="text/html" href="{HOST}/post/{item.ident}"/>'
        f'<link rel="replies" type="text/html" href="{HOST}/post/{item.ident}#c"'
        f' title="{item.replies} Comments"/>'
        f"{''.join(reversed(tags) if item.reversed_tags else tags)}"
        f'<content type="html">{CONTENTS[item.content]}</content></entry>'
    )


def rss_item(item: Item) -> str:
    guid = (
        f'<guid isPermaLink="false">tag:feeds.test,2026:{item.ident}</guid>' if item.has_id else ""
    )
    tags = ["<category>a</category>", "<category>b</category>"]
    return (
        f"<item>{guid}<title>Post {item.ident}.{item.title}</title>"
        f"<link>{HOST}/post/{item.ident}</link>"
        f"<pubDate>Sun, 0{1 + item.updated} Nov 2026 00:00:00 GMT</pubDate>"
        f"{''.join(reversed(tags) if item.reversed_tags else tags)}"
        f"<description>{CONTENTS[item.content]}</description></item>"
    )


@dataclass(frozen=True)
class Page:
    items: tuple[Item, ...]
    rss: bool = False
    complete: bool = False  # fh:complete
    tombstones: tuple[int, ...] = ()
    extra_ns: bool = False  # one more namespace binding: another context for every entry
    c1: bool = False  # a C1 character reference in the feed title: so is this
    xml_base: bool = False  # declined by the fast path: feedparser reads it, keys nothing
    malformed: bool = False  # an undefined entity: feedparser reads it leniently


def document(page: Page, next_url: str | None) -> bytes:
    title = "Feed &#150; title" if page.c1 else "Feed title"
    if page.malformed:
        title += " &nbsp;"
    extra = ' xmlns:ex="http://example.com/ext"' if page.extra_ns else ""
    if page.rss:
        nxt = f'<atom:link rel="next" href="{next_url}"/>' if next_url else ""
        body = "".join(rss_item(i) for i in page.items)
        return (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"'
            f' xmlns:atom="http://www.w3.org/2005/Atom"{extra}><channel><title>{title}</title>'
            f"<link>{HOST}/</link>{nxt}{body}</channel></rss>"
        ).encode()
    base = ' xml:base="http://feeds.test/base/"' if page.xml_base else ""
    complete = "<fh:complete/>" if page.complete else ""
    nxt = f'<link rel="next" href="{next_url}"/>' if next_url else ""
    stones = "".join(
        f'<at:deleted-entry ref="tag:feeds.test,2026:{ref}" when="2026-11-20T00:00:00Z"/>'
        for ref in page.tombstones
    )
    body = "".join(atom_entry(i) for i in page.items)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"'
        f' xmlns:fh="http://purl.org/syndication/history/1.0"'
        f' xmlns:at="http://purl.org/atompub/tombstones/1.0"{extra}{base}>'
        f"<title>{title}</title><id>tag:feeds.test,2026:feed</id>"
        f"<updated>2026-11-20T00:00:00Z</updated>{complete}{nxt}{stones}{body}</feed>"
    ).encode()


class Server:
    """The fetcher: every URL answers 200 with the document now served there (or a 404)."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[str, bytes]] = {}  # url -> (final url, body)

    async def fetch(
        self, url: str, validators: Validators | None = None, *, trusted_host: str | None = None
    ) -> FetchResult:
        from syncd.errors import FetchError

        if url not in self.docs:
            raise FetchError("404 Not Found", url=url, status=404)
        final, body = self.docs[url]
        return FetchResult(
            url=url,
            final_url=final,
            status=200,
            body=body,
            headers={"content-type": "application/xml; charset=utf-8"},
            etag=None,
            last_modified=None,
            body_hash=hashlib.sha256(body).hexdigest(),
            elapsed_ms=0.0,
        )


# ---------------------------------------------------------------- syncing and comparing


def clock() -> Any:
    ticks = itertools.count()
    return lambda: START + timedelta(seconds=next(ticks))


def route(feed: str, event: EventDraft) -> Sequence[str]:
    return ("archive",)


class Recorder:
    """The parser pool, recording every page it gives (its value and its keys)."""

    def __init__(self, pool: ParserPool) -> None:
        self.pool = pool
        self.pages: list[tuple[str, tuple[str, ...]]] = []
        self.reused = 0  # entries the store gave back by key

    async def parse(
        self,
        body: bytes,
        *,
        url: str,
        headers: Mapping[str, str],
        ignore_fields: frozenset[str] = frozenset(),
        reuse: Reuse | None = None,
    ) -> ParsedPage:
        async def counted(keys: Sequence[str]) -> Mapping[str, ParsedEntry]:
            assert reuse is not None
            found = await reuse(keys)
            self.reused += len(found)
            return found

        page = await self.pool.parse(
            body,
            url=url,
            headers=headers,
            ignore_fields=ignore_fields,
            reuse=None if reuse is None else counted,
        )
        self.pages.append((repr(page), page.entry_keys))
        return page


def syncer(store: Store, server: Server, pool: ParserPool | Recorder, *, skip: bool) -> FeedSyncer:
    return FeedSyncer(
        store=store,
        fetcher=server,
        parser=pool,
        clock=clock(),
        router=route,
        rng=random.Random(0),
        edit_skip=skip,
    )


def sqlite_rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    assert isinstance(store, SqliteStore)
    conn = store.db.conn
    tables = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        if r[0] != "_sqlite_migrations"  # when each migration ran
    ]
    return {t: sorted(map(tuple, conn.execute(f'SELECT * FROM "{t}"')), key=repr) for t in tables}


async def postgres_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() ORDER BY table_name"
        )
        tables = [r[0] for r in await cur.fetchall() if r[0] != "syncd_migrations"]
        out = {}
        for t in tables:
            cur = await conn.execute(f'SELECT * FROM "{t}"')
            out[t] = sorted(map(tuple, await cur.fetchall()), key=repr)
        return out


async def postgres_clear(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        tables = [r[0] for r in await cur.fetchall() if r[0] != "syncd_migrations"]
        names = ", ".join(f'"{t}"' for t in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@dataclass
class Backends:
    loop: asyncio.AbstractEventLoop
    pool: ParserPool
    tmp: Path
    pg_urls: tuple[str, str]  # skip on, skip off
    pg: tuple[PostgresStore, PostgresStore]


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    loop = asyncio.new_event_loop()
    schemas = [scratch_schema(), scratch_schema()]
    pool = ParserPool(workers=1)
    try:
        loop.run_until_complete(pool.__aenter__())
        urls = [loop.run_until_complete(s.__aenter__()) for s in schemas]
        stores = [loop.run_until_complete(PostgresStore.open(u)) for u in urls]
        yield Backends(
            loop,
            pool,
            tmp_path_factory.mktemp("edit-skip"),
            (urls[0], urls[1]),
            (stores[0], stores[1]),
        )
        for store in stores:
            loop.run_until_complete(store.close())
        for s in schemas:
            loop.run_until_complete(s.__aexit__(None, None, None))
    finally:
        loop.run_until_complete(pool.__aexit__(None, None, None))
        loop.close()


# ---------------------------------------------------------------- the generated histories

items = st.builds(
    Item,
    ident=st.integers(0, 5),
    title=st.integers(0, 1),
    updated=st.integers(0, 2),
    content=st.integers(0, len(CONTENTS) - 1),
    replies=st.integers(0, 2),
    reversed_tags=st.booleans(),
    has_id=st.booleans() | st.just(True),
)


def rarely(n: int = 4) -> st.SearchStrategy[bool]:
    return st.integers(0, n - 1).map(lambda k: k == 0)


def pages(pool: list[Item]) -> st.SearchStrategy[Page]:
    """Pages of entries from a small pool: versions repeat (known entries, the skip's case)
    and differ by one item at a time (edits, comment counts, moves, absences)."""
    return st.builds(
        Page,
        items=st.lists(st.sampled_from(pool), max_size=4).map(tuple),
        rss=rarely(6),
        complete=rarely(6),
        tombstones=st.lists(st.integers(0, 5), max_size=2).map(tuple),
        extra_ns=rarely(6),
        c1=rarely(6),
        xml_base=rarely(6),
        malformed=rarely(6),
    )


FEEDS = (
    FeedConfig(name="f", url=f"{HOST}/feed", changes="off", websub=False),
    # The same URL under another name and another hash projection: same bytes, other entries.
    FeedConfig(
        name="g",
        url=f"{HOST}/feed",
        changes="off",
        websub=False,
        ignore_fields=frozenset({"categories"}),
    ),
    # The first feed after a change of its ignore_fields: its stored keys no longer apply.
    FeedConfig(
        name="f",
        url=f"{HOST}/feed",
        changes="off",
        websub=False,
        ignore_fields=frozenset({"links"}),
    ),
)


@dataclass(frozen=True)
class Step:
    feed: int  # which feed syncs (the feeds share page URLs: entries move between them)
    full: bool
    pages: tuple[Page, ...]  # what the feed's URLs serve now: page 1, then its next pages
    moved: bool  # page 1 answers from another final URL (another base for its entries)


@st.composite
def histories(draw: st.DrawFn) -> list[Step]:
    pool = draw(st.lists(items, min_size=1, max_size=5))
    step = st.builds(
        Step,
        feed=st.sampled_from([0, 0, 0, 1, 2]),  # mostly one feed: its own keys come back
        full=st.booleans(),
        pages=st.lists(pages(pool), min_size=1, max_size=2).map(tuple),
        moved=rarely(5),
    )
    return draw(st.lists(step, min_size=2, max_size=8))


steps = histories()


def serve(server: Server, step: Step) -> None:
    server.docs.clear()
    urls = [f"{HOST}/feed"] + [f"{HOST}/feed?page={n}" for n in range(2, len(step.pages) + 1)]
    for n, page in enumerate(step.pages):
        nxt = urls[n + 1] if n + 1 < len(urls) else None
        final = f"{HOST}/moved/feed" if step.moved and n == 0 else urls[n]
        server.docs[urls[n]] = (final, document(page, nxt))


class CrossChecked:
    """Makes a store's entry reads check themselves against the plain full reading: every
    `known_entries` given the entries as read (built from them where a key matches) equals
    the one without, and `live_entry_ids` lists what `live_entries` does, in its order, as
    `live_entries` of some ids gives those of the full listing (the absence rules' reads)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = store
        self.built = 0  # known entries built from an entry as read rather than decoded
        # The class's own method: a module's store is checked again by every example.
        self.known = functools.partial(type(store).known_entries, store)
        monkeypatch.setattr(store, "known_entries", self.known_entries)

    async def known_entries(
        self,
        feed_id: int,
        entry_ids: Iterable[str],
        as_read: Mapping[str, ParsedEntry] | None = None,
    ) -> dict[str, StoredEntry]:
        ids = list(entry_ids)
        found = await self.known(feed_id, ids, as_read)
        assert found == await self.known(feed_id, ids)
        self.built += sum(1 for e in found.values() if e.parse_key in (as_read or {}))
        return found

    async def check_live(self, feed: str) -> None:
        feed_id = (await self.store.feed_state(feed)).id
        full = await self.store.live_entries(feed_id)
        assert await self.store.live_entry_ids(feed_id) == list(full)
        some = list(full)[::2]
        assert await self.store.live_entries(feed_id, [*some, "no such id"]) == {
            i: full[i] for i in some
        }


async def replay(
    history: list[Step], on: Store, off: Store, pool: ParserPool, check: CrossChecked
) -> int:
    """Sync `history` into both stores, the skip on in `on` and off in `off`; how many entries
    the skip took from the store."""
    server = Server()
    seen_on, seen_off = Recorder(pool), Recorder(pool)
    skipping = syncer(on, server, seen_on, skip=True)
    reading = syncer(off, server, seen_off, skip=False)
    for step in history:
        serve(server, step)
        feed = FEEDS[step.feed]
        first = await skipping.sync(feed, full=step.full)
        second = await reading.sync(feed, full=step.full)
        assert (first.outcome, first.error) == (second.outcome, second.error)
        assert first.seqs == second.seqs
        # Every page, every entry and every key as the full reading gives it (a full crawl
        # reads ahead: pages may finish in another order).
        assert sorted(seen_on.pages) == sorted(seen_off.pages)
        seen_on.pages.clear()
        seen_off.pages.clear()
        await check.check_live(feed.name)
    assert seen_off.reused == 0
    return seen_on.reused


settings_ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings_
@given(history=steps)
def test_sqlite_same_rows_with_and_without_the_skip(
    backends: Backends, history: list[Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = Path(backends.tmp) / f"run{next(_runs)}"
    folder.mkdir()
    on, off = SqliteStore.open(folder / "on.db"), SqliteStore.open(folder / "off.db")
    try:
        check = CrossChecked(on, monkeypatch)
        reused = backends.loop.run_until_complete(replay(history, on, off, backends.pool, check))
        assert sqlite_rows(on) == sqlite_rows(off)
        event("entries taken from the store: " + ("some" if reused else "none"))
        event("known entries built from the reading: " + ("some" if check.built else "none"))
    finally:
        backends.loop.run_until_complete(on.close())
        backends.loop.run_until_complete(off.close())


_runs = itertools.count()


@settings_
@given(history=steps)
def test_postgres_same_rows_with_and_without_the_skip(
    backends: Backends, history: list[Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = backends.loop
    for url in backends.pg_urls:
        loop.run_until_complete(postgres_clear(url))
    check = CrossChecked(backends.pg[0], monkeypatch)
    reused = loop.run_until_complete(replay(history, *backends.pg, backends.pool, check))
    on, off = (loop.run_until_complete(postgres_rows(url)) for url in backends.pg_urls)
    assert on == off
    event("entries taken from the store: " + ("some" if reused else "none"))
    event("known entries built from the reading: " + ("some" if check.built else "none"))


# ---------------------------------------------------------------- it does skip


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the entries the parser reads (normalises) from now on, in order."""
    read: list[str] = []
    original = syncd.parse._make_entry  # both readings (direct and raw) assemble through it

    def counting(*args: Any) -> Any:
        entry = original(*args)
        read.append(entry.entry_id)
        return entry

    monkeypatch.setattr(syncd.parse, "_make_entry", counting)
    return read


def test_an_edit_reads_only_the_edited_entry(
    backends: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of a page whose one entry changed, only that entry is read again; the rest come from
    the store, keyed, and the page still yields exactly one update."""
    store = SqliteStore.open(tmp_path / "syncd.db")
    server = Server()
    sync = syncer(store, server, backends.pool, skip=True)
    feed = FEEDS[0]
    first = [Item(n, 0, 0, n % len(CONTENTS), 0, False, True) for n in range(5)]
    edited = [*first[:2], Item(2, 1, 1, 0, 0, False, True), *first[3:]]
    read = count_reads(monkeypatch)
    try:
        server.docs[feed.url] = (feed.url, document(Page(tuple(first)), None))
        assert len(backends.loop.run_until_complete(sync.sync(feed)).seqs) == 5
        assert len(read) == 5
        read.clear()
        server.docs[feed.url] = (feed.url, document(Page(tuple(edited)), None))
        report = backends.loop.run_until_complete(sync.sync(feed))
        assert read == ["tag:feeds.test,2026:2"]
        assert report.updated == 1 and len(report.seqs) == 1
        # The same bytes from another final URL are another reading: all read again.
        read.clear()
        body = document(Page(tuple(edited)), None) + b"\n"  # not the stored body
        server.docs[feed.url] = (f"{HOST}/elsewhere", body)
        backends.loop.run_until_complete(sync.sync(feed))
        assert len(read) == 5
    finally:
        backends.loop.run_until_complete(store.close())


def test_keys_cover_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another parser (its digest) gives every entry another key: nothing stored by an older
    reading is taken for a newer one."""
    body = document(Page(tuple(Item(n, 0, 0, 0, 0, False, True) for n in range(3))), None)

    def keys() -> tuple[str, ...]:
        opened = syncd.parse.open_page_fast(body, url=f"{HOST}/feed", headers={})
        assert isinstance(opened, syncd.parse.FastPage)
        return opened.keys()

    before = keys()
    assert len(set(before)) == 3
    monkeypatch.setattr(syncd.parse, "_code_digest", lambda: b"another parser")
    assert not set(keys()) & set(before)


def test_the_reused_page_is_the_read_page(backends: Backends, tmp_path: Path) -> None:
    """The store gives back, by key, exactly the entries the fast path reads: a page built
    from it equals a page read afresh (every field, every kind of value of the generator)."""
    store = SqliteStore.open(tmp_path / "syncd.db")
    server = Server()
    sync = syncer(store, server, backends.pool, skip=True)
    feed = FEEDS[0]
    items_ = [Item(n, n % 2, n % 3, n % len(CONTENTS), n % 3, n % 2 == 0, n != 5) for n in range(6)]
    body = document(Page(tuple(items_), c1=True, extra_ns=True), None)
    server.docs[feed.url] = (feed.url, body)
    try:
        backends.loop.run_until_complete(sync.sync(feed))
        opened = syncd.parse.open_page_fast(body, url=feed.url, headers={})
        assert isinstance(opened, syncd.parse.FastPage)
        state = backends.loop.run_until_complete(store.ensure_feed(feed.name, feed.url, START))
        known = backends.loop.run_until_complete(store.entries_by_key(state.id, opened.keys()))
        assert set(known) == set(opened.keys())
        reused = opened.page(known)
        fresh = syncd.parse.parse_page_fast(body, url=feed.url, headers={})
        assert isinstance(fresh, ParsedPage)
        assert reused == fresh
        assert repr(reused) == repr(fresh)
        assert reused.entry_keys == opened.keys()
    finally:
        backends.loop.run_until_complete(store.close())


def test_after_a_parser_change_the_keys_move_on(
    backends: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another parser misses every stored key, reads the page, and finds its entries as stored:
    their rows take the new keys (nothing else changes), so the next edit is skipped again."""
    store = SqliteStore.open(tmp_path / "syncd.db")
    server = Server()
    sync = syncer(store, server, backends.pool, skip=True)
    feed = FEEDS[0]
    items_ = [Item(n, 0, 0, n % len(CONTENTS), 0, False, True) for n in range(4)]

    def serve_items(entries: list[Item], tail: bytes = b"") -> None:
        server.docs[feed.url] = (feed.url, document(Page(tuple(entries)), None) + tail)

    def keys() -> list[str]:
        return [r[0] for r in store.db.conn.execute("SELECT parse_key FROM entries ORDER BY 1")]

    read = count_reads(monkeypatch)
    try:
        serve_items(items_)
        backends.loop.run_until_complete(sync.sync(feed))
        before = keys()
        monkeypatch.setattr(syncd.parse, "_code_digest", lambda: b"the next release")
        read.clear()
        serve_items(items_, b"\n")  # another body, the same entries
        report = backends.loop.run_until_complete(sync.sync(feed))
        assert len(read) == 4 and not report.seqs
        assert not set(keys()) & set(before) and None not in keys()
        read.clear()
        serve_items([*items_[:3], Item(3, 1, 1, 0, 0, False, True)])
        report = backends.loop.run_until_complete(sync.sync(feed))
        assert read == ["tag:feeds.test,2026:3"] and len(report.seqs) == 1
    finally:
        backends.loop.run_until_complete(store.close())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_histories_the_skip_must_get_right(
    backends: Backends, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explicit histories (beside the generated ones): a comment count that changes is no edit,
    so the row keeps the old count and must not take the new key; the entry comes back
    unchanged after a deletion; an entry moves to the other feed and back."""
    a, b, c = (Item(n, 0, 0, n, 0, False, True) for n in range(3))
    a_commented = Item(0, 0, 0, 0, 2, False, True)
    history = [
        Step(0, False, (Page((a, b)),), False),
        Step(0, False, (Page((a_commented, b)),), False),
        Step(0, False, (Page((a_commented, b, c)),), False),
        Step(0, True, (Page((b, c), complete=True),), False),  # a deleted
        Step(0, False, (Page((a_commented, b, c)),), False),  # a back, as it was
        Step(1, False, (Page((a, b, c)),), False),  # the other feed, the same bytes
        Step(0, False, (Page((a, b), tombstones=(2,)),), True),  # another final URL
        Step(0, False, (Page((a, b, c)),), True),
    ]
    loop = backends.loop
    if backend == "sqlite":
        on, off = SqliteStore.open(tmp_path / "on.db"), SqliteStore.open(tmp_path / "off.db")
        try:
            check = CrossChecked(on, monkeypatch)
            assert loop.run_until_complete(replay(history, on, off, backends.pool, check)) > 0
            assert sqlite_rows(on) == sqlite_rows(off)
            assert check.built > 0
        finally:
            loop.run_until_complete(on.close())
            loop.run_until_complete(off.close())
    else:
        for url in backends.pg_urls:
            loop.run_until_complete(postgres_clear(url))
        check = CrossChecked(backends.pg[0], monkeypatch)
        assert loop.run_until_complete(replay(history, *backends.pg, backends.pool, check)) > 0
        rows_on, rows_off = (loop.run_until_complete(postgres_rows(u)) for u in backends.pg_urls)
        assert rows_on == rows_off
        assert check.built > 0
