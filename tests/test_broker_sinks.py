"""The nats and redis sinks against real brokers: the shared ones on 127.0.0.1, and private
broker processes that are SIGKILLed mid-stream and restarted under the real dispatcher."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import nats
import pytest
from nats.js import JetStreamContext
from redis.asyncio import Redis

from syncd.config import load_config
from syncd.delivery import BoundSink, Dispatcher
from syncd.errors import ConfigError
from syncd.model import OutboundEvent
from syncd.sinks import Sink, SinkContext, default_registry
from syncd.sinks.nats_stream import NatsSink, render_subject, subject_token
from syncd.sinks.redis_stream import RedisSink, dedupe_key
from syncd.storage.sqlite import SqliteStore
from tests.support.brokers import (
    NATS_URL,
    REDIS_URL,
    BrokerProcess,
    missing_binary,
    private_nats,
    private_redis,
    unreachable,
)
from tests.support.envelopes import envelopes
from tests.support.outbox import FakeClock, deliveries_of, seed_events, sink_config

NO_NATS = unreachable(NATS_URL, "NATS")
NO_REDIS = unreachable(REDIS_URL, "Redis")
needs_nats = pytest.mark.skipif(NO_NATS is not None, reason=NO_NATS or "")
needs_redis = pytest.mark.skipif(NO_REDIS is not None, reason=NO_REDIS or "")


def event(n: int, feed: str = "blog", kind: str = "entry.created") -> OutboundEvent:
    eid = f"evt_{uuid.uuid4().hex}"
    body = json.dumps(
        {"id": eid, "type": kind, "data": {"seq": n, "feed": {"name": feed}, "x": "café"}},
        ensure_ascii=False,
    ).encode()
    return OutboundEvent(id=eid, seq=n, type=kind, body=body)


# --- subjects and options (no broker) ---------------------------------------------------------


def test_feed_names_become_one_reversible_subject_token() -> None:
    names = ["blog", "news.example", "a b", "x*>y", "café", "a_b", "a%2Eb", ""]
    tokens = [subject_token(n) for n in names]
    assert len(set(tokens)) == len(names)  # no two names share a token
    for name, token in zip(names[:-1], tokens[:-1], strict=True):
        assert unquote(token) == name
        assert not any(c in token for c in ".*> \t")
    subject = render_subject("syncd.{feed}.{type}", feed="news.example", type="entry.created")
    assert subject == "syncd.news%2Eexample.entry.created"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"stream": "S", "subject": "syncd.{feed}.{kind}"}, "unknown placeholder {kind}"),
        ({"stream": "S", "subject": "syncd.*.{type}"}, "wildcard"),
        ({"stream": "S", "subject": "syncd..{type}"}, "empty token"),
        ({"stream": "a.b"}, "is not a stream name"),
        ({"stream": "S", "url": "http://x"}, "is not a nats://"),
        ({"stream": "S", "subjcet": "x"}, "subjcet"),
    ],
)
def test_bad_nats_options_name_the_sink_and_key(options, fragment) -> None:
    with pytest.raises(ConfigError) as info:
        default_registry().create("nats", name="bus", options=options, context=SinkContext())
    assert "sinks['bus']" in str(info.value) and fragment in str(info.value)


def test_bad_redis_options_name_the_sink_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        default_registry().create(
            "redis", name="q", options={"stream": "s", "maxlen": 0}, context=SinkContext()
        )
    assert "sinks['q'].maxlen" in str(info.value)


async def test_both_types_come_from_the_entry_points_like_a_plugin() -> None:
    registry = default_registry()
    assert {"nats", "redis"} <= set(registry.known_types())
    assert "nats" not in registry.builtin_models()  # not built in: loaded on demand
    sink = registry.create(
        "nats", name="bus", options={"stream": "S"}, context=SinkContext(timeout_s=2)
    )
    other = registry.create("redis", name="q", options={"stream": "s"}, context=SinkContext())
    assert isinstance(sink, NatsSink) and isinstance(other, RedisSink)
    await sink.aclose()
    await other.aclose()


@pytest.mark.parametrize("kind", ["nats", "redis"])
async def test_an_unreachable_broker_is_a_failed_outcome_not_an_exception(kind) -> None:
    from tests.support.brokers import free_port

    port = free_port()
    url = (
        f"nats://u:hunter2@127.0.0.1:{port}"
        if kind == "nats"
        else f"redis://:hunter2@127.0.0.1:{port}/0"
    )
    sink: Sink = (
        NatsSink("bus", url, "syncd.{feed}.{type}", "S", 2)
        if kind == "nats"
        else RedisSink("bus", url, "s", timeout_s=2)
    )
    try:
        outcome = await sink.send(event(1))
    finally:
        await sink.aclose()
    assert not outcome.ok and outcome.retryable
    assert outcome.error and str(port) in outcome.error and "hunter2" not in outcome.error
    assert "hunter2" not in repr(sink)


# --- the shared brokers -----------------------------------------------------------------------


@pytest.fixture
async def js() -> AsyncIterator[JetStreamContext]:
    if NO_NATS:
        pytest.skip(NO_NATS)
    nc = await nats.connect(NATS_URL)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    if NO_REDIS:
        pytest.skip(NO_REDIS)
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@needs_nats
async def test_nats_publishes_with_the_event_id_and_the_server_drops_a_repeat(js) -> None:
    stream = f"T{uuid.uuid4().hex[:10]}"
    prefix = f"t{stream.lower()}"
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
    sink = NatsSink("bus", NATS_URL, prefix + ".{feed}.{type}", stream, 5)
    try:
        first = event(1, feed="news.example", kind="entry.updated")
        outcomes = [await sink.send(first), await sink.send(first), await sink.send(event(2))]
        assert all(o.ok for o in outcomes)
        info = await js.stream_info(stream)
        assert info.state.messages == 2  # the repeat was a duplicate by Nats-Msg-Id
        msg = await js.get_msg(stream, 1)
        assert msg.subject == f"{prefix}.news%2Eexample.entry.updated"
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == first.id
        assert msg.data == first.body
    finally:
        await sink.aclose()
        await js.delete_stream(stream)


@needs_nats
async def test_nats_missing_stream_is_a_retryable_failure_that_names_it() -> None:
    sink = NatsSink("bus", NATS_URL, "nostream.{feed}", f"Missing{uuid.uuid4().hex[:8]}", 5)
    try:
        outcome = await sink.send(event(1))
    finally:
        await sink.aclose()
    assert not outcome.ok and outcome.retryable
    assert outcome.error and "Missing" in outcome.error and "does not exist" in outcome.error


@needs_redis
async def test_redis_adds_one_entry_per_event_id_and_caps_the_stream(redis_client) -> None:
    stream = f"syncd-test-{uuid.uuid4().hex}"
    sink = RedisSink("q", REDIS_URL, stream, maxlen=10, timeout_s=5)
    events = [event(n) for n in range(300)]
    try:
        assert all([(await sink.send(e)).ok for e in events])
        assert (await sink.send(events[-1])).ok  # a retry after a lost reply
        entries = await redis_client.xrange(stream)
        ids = [fields[b"id"].decode() for _, fields in entries]
        assert ids == [e.id for e in events[-len(ids) :]]  # newest kept, in order, no repeat
        assert 10 <= len(ids) < 300  # MAXLEN ~ trims whole macro nodes: approximately 10
        _, last = entries[-1]
        assert last[b"body"] == events[-1].body and last[b"type"] == b"entry.created"
        assert last[b"seq"] == b"299"
        assert await redis_client.ttl(dedupe_key(stream, events[0].id)) > 0
    finally:
        await sink.aclose()
        keys = [dedupe_key(stream, e.id) for e in events]
        await redis_client.delete(stream, *keys)


# --- kill the broker mid-stream, restart it ---------------------------------------------------

EVENTS = 400


async def kill_and_restart(
    store: SqliteStore, sink: Sink, broker: BrokerProcess, *, kill_after: int
) -> tuple[int, int]:
    """Deliver EVENTS events through the real dispatcher; SIGKILL the broker once `kill_after`
    are recorded delivered, restart it, and go on until all are delivered. Returns (passes,
    failed attempts)."""
    clock = FakeClock()
    seed_events(store, EVENTS, sinks=[sink.name], now=clock())
    cfg = sink_config(sink.name, kind="broker", timeout_s=5, max_in_flight=8)
    d = Dispatcher(store=store, sinks=[BoundSink(sink, cfg)], clock=clock, rng=random.Random(3))

    def delivered() -> int:
        return sum(r["state"] == "delivered" for r in deliveries_of(store, sink.name))

    async def killer() -> None:
        # Polls the store the dispatcher writes: the kill lands while sends are in flight.
        while True:
            if delivered() >= kill_after:
                broker.kill()
                return
            await asyncio.sleep(0.002)

    kill = asyncio.create_task(killer())
    failed = 0
    passes = 0
    while delivered() < EVENTS and passes < 40:
        passes += 1
        reports = await d.deliver_due()
        failed += sum(r.failed for r in reports)
        if kill.done() and broker.proc is not None and broker.proc.poll() is not None:
            broker.start()
        clock.advance(6 * 3600)  # past any back-off or pause the failures scheduled
        if not kill.done() and passes > 1:
            kill.cancel()  # all went before the killer saw `kill_after`: the test fails below
    assert kill.done() and not kill.cancelled() and broker.kills == 1
    return passes, failed


def verdict(store: SqliteStore, sink: str, received: list[tuple[str, bytes]]) -> dict[str, int]:
    expected = {eid: envelope for _, eid, envelope in envelopes(store.path)}
    counts = Counter(eid for eid, _ in received)
    for eid, body in received:  # a duplicate is the same event: same id, same bytes
        assert json.loads(body)["id"] == eid and body == expected[eid].encode()
    rows = deliveries_of(store, sink)
    return {
        "events": len(expected),
        "received": len(received),
        "duplicates": len(received) - len(counts),
        "lost": len(set(expected) - set(counts)),
        "undelivered": sum(r["state"] != "delivered" for r in rows),
    }


def running(
    binary: str, make: Callable[[Path], BrokerProcess], tmp: Path
) -> Iterator[BrokerProcess]:
    reason = missing_binary(binary)
    if reason:
        pytest.skip(reason)
    broker = make(tmp)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def nats_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    yield from running("nats-server", private_nats, tmp_path)


@pytest.fixture
def redis_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    yield from running("redis-server", private_redis, tmp_path)


async def read_all_nats(url: str, stream: str) -> list[tuple[str, bytes]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        out = []
        for seq in range(1, last + 1):
            msg = await js.get_msg(stream, seq)
            assert msg.headers is not None and msg.data is not None
            out.append((msg.headers["Nats-Msg-Id"], msg.data))
        return out
    finally:
        await nc.close()


async def test_nats_broker_killed_mid_stream_loses_nothing(
    store, nats_broker: BrokerProcess, capsys
) -> None:
    url = f"nats://127.0.0.1:{nats_broker.port}"
    nc = await nats.connect(url)
    await nc.jetstream().add_stream(name="EVENTS", subjects=["syncd.>"])
    await nc.close()
    sink = NatsSink("bus", url, "syncd.{feed}.{type}", "EVENTS", 5)
    try:
        passes, failed = await kill_and_restart(store, sink, nats_broker, kill_after=EVENTS // 3)
    finally:
        await sink.aclose()
    figures = verdict(store, "bus", await read_all_nats(url, "EVENTS"))
    report("nats", figures, passes, failed, capsys)
    assert figures["lost"] == 0 and figures["undelivered"] == 0 and failed > 0


@pytest.mark.parametrize("window", [86400.0, 0.0], ids=["dedupe", "no-dedupe"])
async def test_redis_broker_killed_mid_stream_loses_nothing(
    store, redis_broker: BrokerProcess, capsys, window: float
) -> None:
    """Without the marker (window 0) a repeat may land; it is the same event, same bytes."""
    url = f"redis://127.0.0.1:{redis_broker.port}/0"
    sink = RedisSink("q", url, "events", timeout_s=5, dedupe_window_s=window)
    try:
        passes, failed = await kill_and_restart(store, sink, redis_broker, kill_after=EVENTS // 3)
    finally:
        await sink.aclose()
    client = Redis.from_url(url)
    try:
        entries = await client.xrange("events")
    finally:
        await client.aclose()
    received = [(f[b"id"].decode(), f[b"body"]) for _, f in entries]
    figures = verdict(store, "q", received)
    report(f"redis window={window:g}", figures, passes, failed, capsys)
    assert figures["lost"] == 0 and figures["undelivered"] == 0 and failed > 0


def report(kind: str, figures: dict[str, int], passes: int, failed: int, capsys) -> None:
    with capsys.disabled():
        print(f"\n{kind} kill/restart: {figures}, failed attempts {failed}, passes {passes}")


def test_the_config_file_checks_broker_keys_like_built_in_ones(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    sinks = (
        '[[sinks]]\nname="bus"\ntype="nats"\nstream="S"\nsubject="x.{feed}"\n'
        '[[sinks]]\nname="q"\ntype="redis"\nstream="s"\nmaxlen=5\ndedupe_window="2h"\n'
    )
    path.write_text(sinks)
    config = load_config(path)
    bus, q = config.sinks
    assert (bus.type, bus.options.stream, bus.options.subject) == ("nats", "S", "x.{feed}")
    assert (q.type, q.options.maxlen, q.options.dedupe_window) == ("redis", 5, 7200.0)
    path.write_text(sinks.replace("maxlen=5", "maxlne=5"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "sinks[1].maxlne: is not a known setting (did you mean 'maxlen'?)" in str(info.value)
