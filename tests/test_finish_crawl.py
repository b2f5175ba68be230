"""A crawl's record leaves the same feed row on both backends: SQLite writes it in one statement
of CASEs (its fence checked in the WHERE), PostgreSQL builds its SET list in Python. Random
outcomes (hypothesis), each sequence on a fresh feed in both stores, under a lease and with or
without its release, must leave equal rows and the same lease for the next worker.

Both stores live on one event loop for the whole module: a PostgreSQL store per example would
spend the run on migrations."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.errors import LeaseLost
from syncd.moves import MoveState
from syncd.storage import Store
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.sqlite import SqliteStore
from syncd.storage.values import ChangesOutcome, CrawlOutcome
from tests.support.postgres import scratch_schema

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
LEASE = timedelta(seconds=60)
Stores = tuple[asyncio.AbstractEventLoop, list[Store]]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    loop = asyncio.new_event_loop()
    schema = scratch_schema()
    try:
        url = loop.run_until_complete(schema.__aenter__())
        path: Path = tmp_path_factory.mktemp("finish") / "syncd.db"
        opened: list[Store] = [
            SqliteStore.open(path),
            loop.run_until_complete(PostgresStore.open(url)),
        ]
        yield loop, opened
        for store in opened:
            loop.run_until_complete(store.close())
        loop.run_until_complete(schema.__aexit__(None, None, None))
    finally:
        loop.close()


instants = st.integers(0, 10**7).map(lambda ms: NOW + timedelta(milliseconds=ms))
# No NUL: PostgreSQL's text refuses it (and no crawl outcome carries one).
texts = st.none() | st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)
urls = st.none() | st.sampled_from(["http://a.test/feed", "http://b.test/feed?x=1"])
moves = st.none() | st.builds(
    MoveState, moved_to=urls, seen=st.integers(0, 5), adopt=st.booleans()
).filter(lambda m: not (m.adopt and m.moved_to is None))
changes = st.none() | st.builds(
    ChangesOutcome,
    base=urls,
    since=st.none() | instants,
    off_until=st.none() | instants,
    error=texts,
    keep_pages=st.none() | st.just(("http://a.test/changes?1",)),
)
outcomes = st.builds(
    CrawlOutcome,
    outcome=st.sampled_from(["ok", "not_modified", "error", "gone", "throttled"]),
    error=texts,
    next_due_at=instants,
    consecutive_errors=st.integers(0, 9),
    full=st.booleans(),
    completed=st.booleans(),
    retry_after_until=st.none() | instants,
    title=texts,
    move=moves,
    changes=changes,
    next_due_reason=texts,
    counted=st.none() | st.tuples(st.none() | st.integers(0, 500), st.none() | st.integers(0, 25)),
    full_crawl_reason=texts,
    publisher=st.none()
    | st.tuples(st.none() | st.floats(1, 86400, allow_nan=False), st.none() | texts),
)
names = itertools.count()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(outcomes, st.booleans()), min_size=1, max_size=4))
def test_sqlite_and_postgres_record_a_crawl_alike(
    stores: Stores, crawls: list[tuple[CrawlOutcome, bool]]
) -> None:
    loop, both = stores
    name = f"feed{next(names)}"
    rows = [loop.run_until_complete(_record(store, name, crawls)) for store in both]
    assert rows[0] == rows[1]


async def _record(
    store: Store, name: str, crawls: list[tuple[CrawlOutcome, bool]]
) -> tuple[object, ...]:
    """The feed's row after each crawl (its id left out: the stores number feeds on their own)
    and whether the next worker could lease the feed at once."""
    feed_id = (await store.ensure_feed(name, f"http://blog.test/{name}", NOW)).id
    seen: list[object] = []
    for outcome, release in crawls:
        lease = await store.lease_feed("A", feed_id, NOW, NOW + LEASE)
        assert lease is not None
        await store.finish_crawl(feed_id, NOW, outcome, fence=lease.token, release=release)
        taken = await store.lease_feed("B", feed_id, NOW, NOW + LEASE)
        seen += [replace(await store.feed_state(name), id=0), taken is not None]
        if taken is None:  # still A's: released as the app does when the record did not
            await store.release_feed(lease)
            taken = await store.lease_feed("B", feed_id, NOW, NOW + LEASE)
            assert taken is not None
        # A's fence is stale now: its record is refused whole, on either backend.
        with pytest.raises(LeaseLost):
            await store.finish_crawl(feed_id, NOW, outcome, fence=lease.token)
        await store.release_feed(taken)
    seen.append(replace(await store.feed_state(name), id=0))
    return tuple(seen)
