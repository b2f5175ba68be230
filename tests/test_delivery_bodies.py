"""What the outbox hands to sinks and writes back, the same bytes and rows as the implementation
it replaced, on SQLite (a file) and PostgreSQL (a scratch schema; skipped with one line where no
server answers).

The claims read the stored text as bytes and the rows as tuples, splicing only events that name
a version; PostgreSQL records a transaction's attempts with one statement pair. The references
kept here are the previous code: every body was `spliced(row).encode()` of a row of
ENVELOPE_COLUMNS read as a dict, and every record was written on its own (`record_attempts` of
one record still is)."""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.delivery import BoundSink, Dispatcher
from syncd.diff import diff_page
from syncd.events import build_event
from syncd.model import (
    FeedRef,
    FetchResult,
    OutboundEvent,
    ParsedEntry,
    ParsedPage,
    Person,
    SendOutcome,
)
from syncd.sinks.file import FileSink
from syncd.storage import Store
from syncd.storage.envelopes import ENVELOPE_COLUMNS, VERSION_JOIN, spliced
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.sqlite import SqliteStore
from syncd.storage.values import AttemptRecord, DueDelivery, EntryWrite, PageCommit
from tests.support.outbox import sink_config
from tests.support.postgres import backend_store

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
URL = "http://blog.test/feed"
REF = FeedRef("blog", URL, "Blog")
# Characters JSON, JavaScript and line readers disagree on, non-BMP ones, escapes and markup.
ALPHABET = ["a", "é", "\u2028", "\u2029", "\U0001d11e", "\U0001f600", '"', "\\", "</p>", "\x01",
            "\n", "\t", " ", "ß", "中", "\u00a0"]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with backend_store(request.param, tmp_path) as s:
        yield s


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def _entry(rng: random.Random, n: int) -> ParsedEntry:
    return ParsedEntry(
        entry_id=f"tag:blog.test,2026:{n}",
        id_source="id",
        title=f"T{n} {_text(rng, 12)}",
        link=f"http://blog.test/{n}",
        published=NOW - timedelta(days=n),
        updated=NOW,
        authors=(Person(f"Ann {_text(rng, 4)}", None, None),),
        categories=(_text(rng, 3), "news"),
        summary=_text(rng, 20) if n % 2 else None,
        content=f"<p>{_text(rng, 200)}</p>",
        links=(),
        base_url=None,
        content_hash=f"hash-{n}-{rng.random()}",
    )


async def _commit(
    store: Store, entries: list[ParsedEntry], now: datetime, sinks: tuple[str, ...] = ("hook",)
) -> list[int]:
    feed_id = (await store.ensure_feed("blog", URL, NOW)).id
    known = await store.known_entries(feed_id, [e.entry_id for e in entries])
    writes = tuple(
        EntryWrite(c, build_event(c, REF, initial=False, now=now), sinks)
        for c in diff_page(entries, known, {}).changes
    )
    page = ParsedPage(url=URL, feed_title="Blog", next_url=None, entries=tuple(entries))
    result = FetchResult(URL, URL, 200, b"", {}, None, None, "h", 1.0)
    return await store.commit_page(PageCommit(feed_id, result, page, None, now, writes))


async def _sql(store: Store, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows as dicts, through the backend's own connection (the reference reads as before)."""
    if isinstance(store, SqliteStore):
        return store.db.rows(sql, params)
    assert isinstance(store, PostgresStore)
    return await store.pg.rows(sql.replace("?", "%s"), params)


async def _whole_envelopes(store: Store, seqs: list[int]) -> None:
    """Store these events' envelopes whole, naming no version (as events written before
    versions were named are)."""
    reference = await _reference_bodies(store)
    for seq in seqs:
        whole = reference[seq].decode()
        if isinstance(store, SqliteStore):
            with store.db.write() as conn:
                conn.execute(
                    "UPDATE events SET payload = ?, version_id = NULL WHERE seq = ?", (whole, seq)
                )
        else:
            assert isinstance(store, PostgresStore)
            async with store.pg.write() as conn:
                await conn.execute(
                    "UPDATE events SET payload = %s, version_id = NULL WHERE seq = %s",
                    (whole, seq),
                )


async def _reference_bodies(store: Store) -> dict[int, bytes]:
    """The previous claim's bodies: a dict row of ENVELOPE_COLUMNS, spliced, encoded."""
    rows = await _sql(
        store, f"SELECT e.seq, {ENVELOPE_COLUMNS} FROM events e {VERSION_JOIN} ORDER BY e.seq"
    )
    return {int(r["seq"]): spliced(r).encode() for r in rows}


async def _corpus(store: Store, seed: int) -> list[int]:
    """Created and updated events of 24 entries with random tricky text; a third of them stored
    whole. Returns every seq."""
    rng = random.Random(seed)
    entries = [_entry(rng, n) for n in range(1, 25)]
    seqs = await _commit(store, entries, NOW)
    later = NOW + timedelta(hours=1)
    edited = [replace(e, title=f"{e.title}{_text(rng, 5)}", updated=later) for e in entries[::2]]
    seqs += await _commit(store, edited, later)
    await _whole_envelopes(store, seqs[::3])
    return seqs


@pytest.mark.parametrize("seed", [1, 2])
async def test_claimed_bodies_are_the_previous_claims_bytes(store: Store, seed: int) -> None:
    seqs = await _corpus(store, seed)
    reference = await _reference_bodies(store)
    named = await _sql(store, "SELECT COUNT(version_id) AS n FROM events")
    assert 0 < int(named[0]["n"]) < len(seqs)  # both kinds of stored envelope are claimed
    later = NOW + timedelta(days=1)
    claimed: dict[int, bytes] = {}
    # Claims of several sizes, so the batches and the per-entry order both come into it.
    for limit in (1, 5, 100, 100):
        for d in await store.outbox.claim_due("hook", later, limit, later + timedelta(hours=1)):
            claimed[d.event.seq] = d.event.body
            await store.outbox.record_attempts([_ok(d, later)])
    assert claimed == reference
    assert set(claimed) == set(seqs)


async def test_a_file_sink_writes_the_previous_claims_bytes(store: Store, tmp_path: Path) -> None:
    """The dispatcher into a file sink: the file is every reference body, line separators
    escaped, one per line, in seq order (strict order: `max_in_flight = 1`)."""
    await _corpus(store, 3)
    reference = await _reference_bodies(store)
    sink = FileSink("hook", tmp_path / "events.jsonl", fsync=True)
    dispatcher = Dispatcher(
        store=store,
        sinks=[BoundSink(sink, sink_config("hook", "file", max_in_flight=1))],
        clock=lambda: NOW + timedelta(days=1),
        rng=random.Random(1),
    )
    [report] = await dispatcher.deliver_due()
    await sink.aclose()
    assert report.delivered == len(reference)
    expected = b"".join(
        body.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029") + b"\n"
        for _, body in sorted(reference.items())
    )
    assert (tmp_path / "events.jsonl").read_bytes() == expected


def _ok(d: DueDelivery, at: datetime) -> AttemptRecord:
    return AttemptRecord((d.id,), SendOutcome(ok=True, status=200, latency_ms=1.25), None, at)


def _mixed_records(group: list[DueDelivery], at: datetime) -> list[AttemptRecord]:
    """One record per delivery with every kind of outcome, plus one record for a batch."""
    retry_soon, retry_later = at + timedelta(seconds=5), at + timedelta(hours=1)
    outcomes = [
        (SendOutcome(ok=True, status=204, latency_ms=3.14159), None),
        (SendOutcome(ok=False, status=503, error="unavailable", latency_ms=2.0), retry_soon),
        (SendOutcome(ok=False, status=400, error="refused \u2028 é", retryable=False), None),
        (SendOutcome(ok=False, error="timeout", latency_ms=15000.0), retry_later),
    ]
    singles = group[:-3]
    records = [
        AttemptRecord((d.id,), *outcomes[i % len(outcomes)], at + timedelta(milliseconds=i))
        for i, d in enumerate(singles)
    ]
    batch = SendOutcome(ok=True, latency_ms=0.5)
    records.append(AttemptRecord(tuple(d.id for d in group[-3:]), batch, None, at))
    return records


_DELIVERY_COLUMNS = (
    "state, attempts, last_attempt_at, last_status, last_error, next_attempt_at, leased_until,"
    " delivered_at"
)
_ATTEMPT_COLUMNS = "attempted_at, result, status, latency_ms, error"


async def _written(store: Store, ids: list[int]) -> list[tuple[Any, ...]]:
    out = []
    for i in ids:
        [d] = await _sql(store, f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (i,))
        attempts = await _sql(
            store,
            f"SELECT {_ATTEMPT_COLUMNS} FROM delivery_attempts WHERE delivery_id = ? ORDER BY id",
            (i,),
        )
        out.append((tuple(d.values()), [tuple(a.values()) for a in attempts]))
    return out


async def test_records_written_together_are_the_rows_written_one_by_one(store: Store) -> None:
    """One exchange of many records (webhooks: one delivery each) leaves the same deliveries and
    attempt rows as recording each on its own, the previous code's way."""
    rng = random.Random(4)
    await _commit(store, [_entry(rng, n) for n in range(1, 25)], NOW)
    later = NOW + timedelta(days=1)
    claimed = await store.outbox.claim_due("hook", later, 24, later + timedelta(hours=1))
    assert len(claimed) == 24
    together, apart = claimed[:12], claimed[12:]
    await store.outbox.exchange(_mixed_records(together, later))
    for record in _mixed_records(apart, later):
        await store.outbox.record_attempts([record])
    first = await _written(store, [d.id for d in together])
    second = await _written(store, [d.id for d in apart])
    assert first == second
    states = {row[0][0] for row in first}
    assert states == {"delivered", "failed", "dead"}


@pytest.mark.parametrize("sinks", [("hook",), ("hook", "other")])
async def test_a_batch_leases_and_records_exactly_its_rows(
    store: Store, sinks: tuple[str, ...]
) -> None:
    """A claim's lease and a batch's record name their ids as one range when they are an unbroken
    run (every event goes to one sink; SQLite) and one by one otherwise (another sink's deliveries
    between them): either way exactly those rows change, as recording each on its own does."""
    rng = random.Random(7)
    await _commit(store, [_entry(rng, n) for n in range(1, 13)], NOW, sinks)
    later = NOW + timedelta(days=1)
    claimed = await store.outbox.claim_due("hook", later, 12, later + timedelta(hours=1))
    ids = [d.id for d in claimed]
    assert len(ids) == 12
    assert (ids == list(range(ids[0], ids[0] + 12))) == (sinks == ("hook",))
    leased = await _sql(store, "SELECT id FROM deliveries WHERE leased_until IS NOT NULL")
    assert sorted(r["id"] for r in leased) == ids
    batch = SendOutcome(ok=True, latency_ms=0.5)
    await store.outbox.exchange([AttemptRecord(tuple(ids[:6]), batch, None, later)])
    for i in ids[6:]:
        await store.outbox.record_attempts([AttemptRecord((i,), batch, None, later)])
    together, apart = await _written(store, ids[:6]), await _written(store, ids[6:])
    assert together == apart
    assert {row[0][0] for row in together} == {"delivered"}
    others = await _sql(
        store, "SELECT state, attempts, leased_until FROM deliveries WHERE sink = 'other'"
    )
    assert len(others) == (12 if "other" in sinks else 0)
    assert all(tuple(r.values()) == ("pending", 0, None) for r in others)


async def test_a_delivery_named_twice_in_one_exchange_counts_both_attempts(store: Store) -> None:
    rng = random.Random(5)
    await _commit(store, [_entry(rng, n) for n in range(1, 3)], NOW)
    later = NOW + timedelta(days=1)
    a, b = await store.outbox.claim_due("hook", later, 2, later + timedelta(hours=1))
    failed = SendOutcome(ok=False, status=500, error="boom", latency_ms=1.0)
    await store.outbox.exchange(
        [
            AttemptRecord((a.id,), failed, later + timedelta(seconds=5), later),
            AttemptRecord((b.id,), SendOutcome(ok=True, latency_ms=1.0), None, later),
            AttemptRecord((a.id,), SendOutcome(ok=True, latency_ms=2.0), None, later),
        ]
    )
    [(row, attempts)] = await _written(store, [a.id])
    assert row[:2] == ("delivered", 2)
    assert [x[1] for x in attempts] == ["failed", "delivered"]


async def test_a_probe_takes_the_least_tried_first_as_before(store: Store) -> None:
    """A probe reads the never-tried deliveries along the queue index when there are enough of
    them, and sorts the queue by attempts otherwise: either way the previous order, least
    tried first and oldest among equals, whatever tried ones come before in seq order."""
    rng = random.Random(6)
    await _commit(store, [_entry(rng, n) for n in range(1, 11)], NOW)
    at = NOW + timedelta(days=1)
    lease = at + timedelta(hours=1)
    everything = await store.outbox.claim_due("hook", at, 10, lease)
    # Deliveries 1, 2, 5 and 9 (in seq order) failed once and are due again at once; 2 twice.
    tried = {everything[i].id: n for i, n in ((0, 1), (1, 2), (4, 1), (8, 1))}
    failed = SendOutcome(ok=False, status=500, error="boom")
    records = [
        AttemptRecord((d.id,), failed, at, at)
        for d in everything
        for _ in range(tried.get(d.id, 0))
    ]
    for record in records:
        await store.outbox.record_attempts([record])
    await store.outbox.release([d for d in everything if d.id not in tried])
    order = sorted(everything, key=lambda d: (tried.get(d.id, 0), d.event.seq))
    for limit in (1, 3, 6, 7, 9, 10):
        probe = await store.outbox.claim_due("hook", at, limit, lease, probe=True)
        assert [d.id for d in probe] == [d.id for d in order[:limit]]
        assert [d.attempts for d in probe] == [tried.get(d.id, 0) for d in order[:limit]]
        await store.outbox.release(probe)


def test_an_outbound_event_is_the_frozen_value_plugins_were_given() -> None:
    """Its own __init__ (faster than the generated one) keeps what the Sink protocol promised:
    the same fields, keyword construction, equality and hashing by value, copies, frozen."""
    event = OutboundEvent("evt_1", 7, "entry.created", b"{}")
    same = OutboundEvent(id="evt_1", seq=7, type="entry.created", body=b"{}")
    assert event == same and hash(event) == hash(same)
    assert [f.name for f in dataclasses.fields(OutboundEvent)] == ["id", "seq", "type", "body"]
    assert dataclasses.replace(event, seq=8) == OutboundEvent("evt_1", 8, "entry.created", b"{}")
    assert pickle.loads(pickle.dumps(event)) == event
    assert repr(event) == "OutboundEvent(id='evt_1', seq=7, type='entry.created', body=b'{}')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.seq = 8  # type: ignore[misc]
