"""Crash-test machinery: run the real `syncd` in its own process group, SIGKILL it at a chosen
point, and read back what it left on disk without touching it.

* :class:`KillPoint` and :func:`plan_kill_points`: where to kill, drawn from a seeded
  ``random.Random``. A point is a *phase* of a run (startup, crawl, delivery, late) plus a position
  inside it and a random extra delay, so the points land in the same phases on a fast or a slow
  machine instead of depending on wall-clock guesses.
* :func:`run_and_kill`: start ``python -m syncd ...`` in a new session, wait for an anchor predicate
  (polled every 2 ms), sleep the offset, then ``SIGKILL`` the whole process group — the syncd
  process and its parser workers at once, as systemd's control-group kill would — and report
  whether the kill landed (exit by SIGKILL) or the run had finished first.
* :func:`read_store`: a consistent read-only snapshot of the SQLite store (``mode=ro``), including
  ``PRAGMA integrity_check`` and ``foreign_key_check``.
* :func:`read_lines`: a JSON Lines file split into complete lines and a torn tail (bytes after the
  last newline).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from tests.support.envelopes import read_envelopes
from tests.support.process import start_syncd

Phase = Literal["startup", "crawl", "delivery", "late"]

# Extra delay after a phase's anchor, in seconds: (low, high) of a uniform draw.
OFFSETS: dict[Phase, tuple[float, float]] = {
    "startup": (0.0, 0.45),  # from spawn: imports, Store.open (migrations), pool start, 1st fetch
    "crawl": (0.0, 0.15),  # after page n was answered: its body, parse, commit, the next fetch
    "delivery": (0.0, 0.01),  # after the k-th delivery of a sink began: mid-stream deliveries
    "late": (0.0, 0.25),  # after the last page was answered: last commit, finish, delivery, exit
}


@dataclass(frozen=True)
class KillPoint:
    """Where to kill one run: a phase, a position in it (0 < fraction <= 1), an extra delay."""

    phase: Phase
    fraction: float
    offset_s: float
    sink: str | None = None  # delivery phase: whose progress anchors the kill

    def describe(self) -> str:
        where = f"{self.phase}@{self.fraction:.2f}"
        if self.sink:
            where += f"[{self.sink}]"
        return f"{where}+{self.offset_s * 1000:.0f}ms"


def kill_point(rng: random.Random, phase: Phase, sinks: Sequence[str] = ()) -> KillPoint:
    low, high = OFFSETS[phase]
    sink = rng.choice(list(sinks)) if phase == "delivery" and sinks else None
    return KillPoint(phase, 1.0 - rng.random(), rng.uniform(low, high), sink)


def plan_kill_points(rng: random.Random, n: int, sinks: Sequence[str] = ()) -> list[KillPoint]:
    """``n`` points (n >= 12) in a seeded order: about 1/6 at startup, 1/5 mid-delivery, 1/10
    late (after the last page), the rest mid-crawl.

    The first run dies at startup; the next half of the runs die only at startup or mid-crawl,
    so the initial backfill is built under fire, page by page, before any run gets as far as
    delivering. The second half starts with a kill in the middle of delivering that backfill to
    the first sink, then mixes the other delivery and late points with more crawl ones.
    """
    if n < 12:
        raise ValueError("plan at least 12 kill points")
    startup, delivery, late = n // 6, n // 5, n // 10
    crawl = n - startup - delivery - late
    early_crawl = math.ceil(crawl * 0.6)
    counts: dict[Phase, int] = {"startup": startup - 1, "crawl": early_crawl}
    early = [p for p, k in counts.items() for _ in range(k)]
    counts = {"crawl": crawl - early_crawl, "delivery": delivery - 1, "late": late}
    later = [p for p, k in counts.items() for _ in range(k)]
    rng.shuffle(early)
    rng.shuffle(later)
    return [
        kill_point(rng, "startup"),
        *(kill_point(rng, p, sinks) for p in early),
        kill_point(rng, "delivery", sinks[:1]),
        *(kill_point(rng, p, sinks) for p in later),
    ]


def page_anchor(point: KillPoint, pages: int) -> int:
    """The 1-based page whose answer anchors a crawl-phase point."""
    return min(pages, 1 + math.floor(point.fraction * pages))


def count_anchor(point: KillPoint, total: int) -> int:
    """The 1-based position among ``total`` things (deliveries) that anchors a point."""
    return max(1, math.ceil(point.fraction * total))


@dataclass(frozen=True)
class RunOutcome:
    returncode: int
    killed: bool  # ended by our SIGKILL (False: it exited on its own before the kill)
    anchor_reached: bool
    anchor_s: float | None  # seconds from spawn to the anchor (None: not reached)
    elapsed_s: float  # seconds from spawn to exit
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


async def run_and_kill(
    config: Path,
    args: Sequence[str],
    *,
    anchor: Callable[[], bool] | None,
    offset_s: float,
    log_path: Path,
    deadline_s: float = 90.0,
) -> RunOutcome:
    """Run ``syncd --config CONFIG ARGS``; once ``anchor()`` holds (None: at once) and ``offset_s``
    more seconds have passed, SIGKILL its process group, unless it has exited by then.

    Raises ``TimeoutError`` if the process neither exits nor reaches the anchor within
    ``deadline_s`` (a hang is a finding, not something to wait out)."""
    started = time.monotonic()
    with log_path.open("wb") as log:
        # Its own process group: the parser workers die with it.
        proc = await start_syncd(config, *args, stdout=log, stderr=log, new_session=True)
    exited = asyncio.ensure_future(proc.wait())
    reached = False
    anchor_s: float | None = None
    try:
        while anchor is not None and not (reached := anchor()):
            if exited.done():
                break
            if time.monotonic() - started > deadline_s:
                raise TimeoutError(
                    f"syncd neither exited nor reached the kill anchor in {deadline_s}s"
                )
            await asyncio.sleep(0.002)
        if anchor is None:
            reached = True
        if reached:
            anchor_s = time.monotonic() - started
        if reached and not exited.done():
            await asyncio.wait({exited}, timeout=offset_s)
    finally:
        if not exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        code = await exited
    return RunOutcome(
        returncode=code,
        killed=code == -signal.SIGKILL,
        anchor_reached=reached,
        anchor_s=anchor_s,
        elapsed_s=time.monotonic() - started,
        log_path=log_path,
    )


# --------------------------------------------------------------------------------------------
# reading what a run left behind


@dataclass(frozen=True)
class EventRow:
    seq: int
    id: str
    type: str
    entry_id: str
    initial: bool
    payload: bytes
    version: tuple[str, str] | None  # (updated, content_hash) of the entry_versions row it wrote


@dataclass(frozen=True)
class StoreSnapshot:
    """What the store holds, read through a read-only connection. Empty if it does not exist."""

    exists: bool
    tables: frozenset[str] = frozenset()
    integrity: tuple[str, ...] = ()
    foreign_key_violations: int = 0
    events: tuple[EventRow, ...] = ()
    entries: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (updated, hash)
    deleted: frozenset[str] = frozenset()  # entries marked deleted
    deliveries: tuple[tuple[int, str, str], ...] = ()  # (event_seq, sink, state)
    undelivered: tuple[dict[str, Any], ...] = ()  # whole rows of deliveries not delivered yet
    versions_per_event: dict[str, int] = field(default_factory=dict)  # event id → version rows
    first_synced_at: datetime | None = None
    last_outcome: str | None = None
    max_seq_allocated: int = 0  # sqlite_sequence for events

    def payloads(self) -> dict[str, bytes]:
        return {e.id: e.payload for e in self.events}


def _table_rows(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    return conn.execute(sql).fetchall()


def read_store(db: Path) -> StoreSnapshot:
    """Snapshot the store in one read transaction (no writer runs while the test reads)."""
    if not db.exists():
        return StoreSnapshot(exists=False)
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        tables = frozenset(
            r[0] for r in _table_rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        integrity = tuple(r[0] for r in _table_rows(conn, "PRAGMA integrity_check"))
        fk = len(_table_rows(conn, "PRAGMA foreign_key_check"))
        if "events" not in tables:
            return StoreSnapshot(True, tables, integrity, fk)
        versions: dict[str, tuple[str, str]] = {}
        versions_per_event: dict[str, int] = {}
        for event_id, updated, content_hash in _table_rows(
            conn,
            "SELECT event_id, updated, content_hash FROM entry_versions WHERE event_id IS NOT NULL",
        ):
            versions[event_id] = (updated, content_hash)
            versions_per_event[event_id] = versions_per_event.get(event_id, 0) + 1
        envelope = {seq: text for seq, _, text in read_envelopes(conn)}
        events = tuple(
            EventRow(
                seq=seq,
                id=eid,
                type=etype,
                entry_id=entry_id,
                initial=bool(initial),
                payload=envelope[seq].encode(),
                version=versions.get(eid),
            )
            for seq, eid, etype, entry_id, initial in _table_rows(
                conn, "SELECT seq, id, type, entry_id, initial FROM events ORDER BY seq"
            )
        )
        rows = _table_rows(conn, "SELECT entry_id, updated, content_hash, deleted_at FROM entries")
        entries = {r[0]: (r[1], r[2]) for r in rows}
        deleted = frozenset(r[0] for r in rows if r[3] is not None)
        deliveries = tuple(
            (r[0], r[1], r[2])
            for r in _table_rows(conn, "SELECT event_seq, sink, state FROM deliveries")
        )
        cur = conn.execute("SELECT * FROM deliveries WHERE state != 'delivered' ORDER BY id")
        columns = [c[0] for c in cur.description]
        undelivered = tuple(dict(zip(columns, r, strict=True)) for r in cur.fetchall())
        feeds = _table_rows(conn, "SELECT first_synced_at, last_outcome FROM feeds")
        sequence = _table_rows(conn, "SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        conn.execute("COMMIT")
    finally:
        conn.close()
    first_synced = feeds[0][0] if feeds else None
    return StoreSnapshot(
        exists=True,
        tables=tables,
        integrity=integrity,
        foreign_key_violations=fk,
        events=events,
        entries=entries,
        deleted=deleted,
        deliveries=deliveries,
        undelivered=undelivered,
        versions_per_event=versions_per_event,
        first_synced_at=datetime.fromisoformat(first_synced) if first_synced else None,
        last_outcome=feeds[0][1] if feeds else None,
        max_seq_allocated=sequence[0][0] if sequence else 0,
    )


def _scalars(db: Path, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    """One row of a read-only query; None if the database or its schema is not there yet."""
    if not db.exists():
        return None
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row: tuple[Any, ...] = conn.execute(sql, params).fetchone()
        return row
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None
        raise
    finally:
        conn.close()


def committed_pages(db: Path) -> int:
    """How many page URLs the store has committed (their validators and entries)."""
    row = _scalars(db, "SELECT COUNT(*) FROM pages")
    return int(row[0]) if row else 0


def pending_payload_bytes(db: Path, sink: str) -> tuple[int, int]:
    """(deliveries not yet delivered to ``sink``, the bytes their lines would take)."""
    if not db.exists():
        return (0, 0)
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        found = read_envelopes(
            conn,
            "e.seq IN (SELECT event_seq FROM deliveries WHERE sink = ?"
            " AND state IN ('pending', 'failed'))",
            (sink,),
        )
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return (0, 0)
        raise
    finally:
        conn.close()
    return len(found), sum(len(text.encode()) + 1 for _, _, text in found)


def read_lines(path: Path) -> tuple[list[bytes], bytes]:
    """A JSON Lines file as (its newline-terminated lines, without the newline; the torn tail)."""
    if not path.exists():
        return [], b""
    *lines, tail = path.read_bytes().split(b"\n")
    return lines, tail
