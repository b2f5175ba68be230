"""Delivery-test support: a controllable clock, and events put straight into a real store.

`seed_events` writes events and their delivery rows with plain SQL against the documented schema
(`events`, `deliveries`), exactly as a committed crawl page leaves them, so dispatcher tests do not
depend on the sync pipeline. `FakeClock` is the injected clock for schedules too long to wait out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.config import EVENT_TYPES, SinkConfig
from syncd.retry import DEFAULT_SCHEDULE_S
from syncd.storage.sqlite import SqliteStore
from syncd.timestamps import format_timestamp


@dataclass
class FakeClock:
    """Aware UTC "now" that only moves when told. Starts at the current whole second, so
    signatures made with it also verify against real time until it is advanced far."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return self.now


def envelope(event_id: str, kind: str, seq: int, feed: str, entry: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": kind,
        "timestamp": "2026-11-28T07:00:00.000Z",
        "data": {
            "seq": seq,
            "initial": False,
            "feed": {"name": feed, "url": f"http://feeds.test/{feed}", "title": "Test feed"},
            "entry": {
                "id": f"tag:test,2026:{feed}.post-{entry}",
                "title": f"Post {entry} — café ☕",
                "link": f"http://blog.test/{feed}/{entry}.html",
                "content": "<p>" + "x" * 200 + "</p>",
            },
        },
    }


def seed_events(
    store: SqliteStore,
    count: int,
    *,
    sinks: Sequence[str],
    now: datetime,
    feed: str = "blog",
    kinds: Sequence[str] = ("entry.created",),
    initial: bool = False,
    entries: int | None = None,
) -> list[int]:
    """Insert `count` events (types cycling through `kinds`), each with a pending delivery for
    every sink in `sinks`, due at `now`. Returns their seqs.

    Each event has an entry of its own, unless `entries` is given: then event i belongs to entry
    `i % entries`, so every entry gets several events (created, then updated), interleaved."""
    now_s = format_timestamp(now)
    seqs: list[int] = []
    with store.write() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO feeds (name, url, created_at, consecutive_errors)"
            " VALUES (?, ?, ?, 0)",
            (feed, f"http://feeds.test/{feed}", now_s),
        )
        feed_id = conn.execute("SELECT id FROM feeds WHERE name = ?", (feed,)).fetchone()[0]
        start = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        for i in range(count):
            n = start + i + 1
            kind = kinds[i % len(kinds)]
            entry = n
            if entries is not None:
                entry = i % entries + 1
                kind = "entry.created" if i < entries and start == 0 else "entry.updated"
            event_id = f"evt_{feed}_{n:06d}"
            cur = conn.execute(
                "INSERT INTO events (id, type, feed_id, entry_id, created_at, initial, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, '')",
                (event_id, kind, feed_id, f"post-{entry}", now_s, int(initial)),
            )
            seq = cur.lastrowid
            assert seq is not None
            body = json.dumps(
                envelope(event_id, kind, seq, feed, entry),
                ensure_ascii=False,
                separators=(",", ":"),
            )
            conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (body, seq))
            conn.executemany(
                "INSERT INTO deliveries (event_seq, sink, state, attempts, created_at,"
                " next_attempt_at) VALUES (?, ?, 'pending', 0, ?, ?)",
                [(seq, sink, now_s, now_s) for sink in sinks],
            )
            seqs.append(seq)
    return seqs


def deliveries_of(store: SqliteStore, sink: str) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT d.*, e.id AS event_id FROM deliveries d JOIN events e ON e.seq = d.event_seq"
        " WHERE d.sink = ? ORDER BY d.event_seq",
        (sink,),
    )


def attempts_of(store: SqliteStore, delivery_id: int) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY id", (delivery_id,)
    )


def when(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def sink_config(
    name: str = "hook",
    kind: str = "webhook",
    *,
    schedule: Sequence[float] = DEFAULT_SCHEDULE_S,
    timeout_s: float = 15.0,
    max_in_flight: int = 4,
    options: dict[str, Any] | None = None,
) -> SinkConfig:
    return SinkConfig(
        name=name,
        type=kind,
        initial="deliver",
        events=EVENT_TYPES,
        feeds=None,
        timeout_s=timeout_s,
        retry_schedule_s=tuple(schedule),
        max_in_flight=max_in_flight,
        options=options or {},
        table=options or {},
    )
