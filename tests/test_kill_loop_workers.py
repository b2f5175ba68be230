"""Several `syncd run` workers on one PostgreSQL store, SIGKILLed and restarted while 500 feeds
change (issue 12, "Proof").

A local server serves 500 small feeds (tests/support/changefarm.py). Three workers (real processes,
each in its own process group, with its own config naming all 500 feeds and its own User-Agent)
share one scratch schema, leasing feeds with a 2 s lease. While a worker is killed and restarted
every `KILL_EVERY_S`, random feeds get an edit, a new post or a deletion. A feed is changed again
only once the store shows its previous change (the entries table holds exactly what the feed
serves), so the true change set is known exactly: one `entry.created` per post (initial ones
included), one `entry.updated` per edit, one `entry.deleted` per deletion. At the end (no more
kills, every change stored):

* the events equal that change set: none missing, none extra, none twice (by feed, entry,
  type and the version the entry's title carries);
* no feed was ever fetched by two requests at once (the server tracks requests in flight per
  feed, including those of a worker that was killed mid-request, until its socket closes);
* a cursor reader that followed `after = seq` through the store's reads (what the pull API
  serves) all along saw every event exactly once.

The figures (kills, changes, events, duplicates, skipped, polls, overlaps) are printed; run with
`-s` to see them. `SYNCD_KILL_LOOP_SEED`, `SYNCD_KILL_LOOP_WORKERS` override the defaults.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest

from syncd.storage.postgres.store import PostgresStore
from tests.conftest import write_config
from tests.support.changefarm import (
    Change,
    ChangeFarm,
    ChangeFarmServer,
    serve_change_farm,
    version_of,
)
from tests.support.postgres import scratch_schema
from tests.support.process import start_syncd

SEED = int(os.environ.get("SYNCD_KILL_LOOP_SEED", "20261130"))
WORKERS = int(os.environ.get("SYNCD_KILL_LOOP_WORKERS", "3"))
FEEDS = 500
INTERVAL = "3s"  # each feed's poll interval
CHAOS_S = 15.0  # how long feeds change and workers die
KILL_EVERY_S = 1.5
MIN_LIFE_S = 3.0  # a worker is killed once it has been up this long (past its start)
MIN_KILLS = 5
RESTART_AFTER_S = 0.3
MUTATE_EVERY_S = 0.05
SETTLE_TIMEOUT_S = 90.0
# A killed worker's feeds are taken over within one lease period: short, so a test of many kills
# stays short (its heartbeat renews every third of it).
LEASE_SECONDS = 2
Conn = psycopg.AsyncConnection[Any]


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with scratch_schema() as url:
        yield url


@dataclass
class Worker:
    """One `syncd run` with its own config (feeds, User-Agent) and log."""

    index: int
    config: Path
    log: IO[bytes]
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    since: float = 0.0  # when it was last started (monotonic)

    async def start(self) -> None:
        self.starts += 1
        self.since = time.monotonic()
        self.log.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
        self.log.flush()
        self.proc = await start_syncd(
            self.config, "run", stdout=asyncio.subprocess.DEVNULL, stderr=self.log,
            new_session=True,
        )  # fmt: skip

    async def kill(self) -> None:
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # its parser workers too
        await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)


@dataclass
class Cursor:
    """A pull API client: `after = seq`, page by page, all along."""

    store: PostgresStore
    after: int = 0
    seen: Counter[int] = field(default_factory=Counter)
    pages: int = 0

    async def read(self) -> None:
        while True:
            page = await self.store.reads().events(self.after, 500)
            self.pages += 1
            for envelope in page.events:
                self.seen[int(envelope["data"]["seq"])] += 1
            if page.next == self.after:
                return
            self.after = page.next


async def stored_state(conn: Conn, names: list[str]) -> dict[str, Any]:
    """Per feed, its live entries and their versions as the store holds them."""
    cur = await conn.execute(
        "SELECT f.name, e.entry_id, e.title FROM entries e JOIN feeds f ON f.id = e.feed_id"
        " WHERE e.deleted_at IS NULL AND f.name = ANY(%s)",
        (names,),
    )
    state: dict[str, dict[str, int]] = {n: {} for n in names}
    for name, entry_id, title in await cur.fetchall():
        state[name][entry_id] = version_of(title)
    return state


async def forget_stored(conn: Conn, farm: ChangeFarm, dirty: set[str]) -> None:
    """Drop from `dirty` the feeds whose served state the store now holds. A feed in `dirty` is
    not changed again meanwhile, so a match cannot be with a state it has left."""
    names = sorted(dirty)
    if names:
        state = await stored_state(conn, names)
        dirty.difference_update(n for n in names if state[n] == farm.state(n))


async def settle(conn: Conn, farm: ChangeFarm, dirty: set[str], within: float) -> None:
    """Wait until the store holds what every feed in `dirty` serves; drop each as it does."""
    deadline = time.monotonic() + within
    while dirty:
        await forget_stored(conn, farm, dirty)
        if not dirty:
            return
        assert time.monotonic() < deadline, (
            f"{len(dirty)} feeds never stored their last change, e.g. {sorted(dirty)[:3]}"
        )
        await asyncio.sleep(0.2)


def worker_config(
    root: Path, index: int, server: ChangeFarmServer, pg_url: str, names: list[str]
) -> Path:
    home = root / f"worker{index}"
    home.mkdir()
    return write_config(
        home,
        feeds=[{"name": n, "url": server.url(n), "interval": INTERVAL} for n in names],
        fetch={"contact_url": f"http://worker{index}.test/", "concurrency": 16},
        store={"url": pg_url, "lease_seconds": LEASE_SECONDS},
    )


async def every(seconds: float, stop: asyncio.Event, step: Callable[[], Any]) -> None:
    while not stop.is_set():
        await step()
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def test_workers_killed_while_feeds_change_lose_and_duplicate_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    rng = random.Random(SEED)
    farm = ChangeFarm(FEEDS)
    names = sorted(farm.feeds)
    started = time.monotonic()
    async with serve_change_farm(farm) as server:
        workers = [
            Worker(i, worker_config(tmp_path, i, server, pg_url, names),
                   (tmp_path / f"worker{i}.log").open("ab"))
            for i in range(WORKERS)
        ]  # fmt: skip
        store = await PostgresStore.open(pg_url)
        conn = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        cursor = Cursor(store)
        kills = 0
        try:
            for w in workers:
                await w.start()
            await settle(conn, farm, set(names), SETTLE_TIMEOUT_S)  # the first crawls
            backfilled = time.monotonic()
            stop = asyncio.Event()
            dirty: set[str] = set()

            async def mutate() -> None:
                clean = [n for n in names if n not in dirty]
                if clean:
                    name = rng.choice(clean)
                    farm.mutate(name, rng)
                    dirty.add(name)

            async def check() -> None:
                await forget_stored(conn, farm, dirty)

            async def kill() -> None:
                nonlocal kills
                # One that has been up a while: a kill in the middle of work, not of a start.
                now = time.monotonic()
                up = [w for w in workers if now - w.since >= MIN_LIFE_S]
                if not up:
                    return
                w = rng.choice(up)
                await w.kill()
                kills += 1
                await asyncio.sleep(RESTART_AFTER_S)
                await w.start()

            loops = [
                asyncio.create_task(every(MUTATE_EVERY_S, stop, mutate)),
                asyncio.create_task(every(0.3, stop, check)),
                asyncio.create_task(every(0.2, stop, cursor.read)),
            ]
            await asyncio.sleep(KILL_EVERY_S)
            while time.monotonic() - backfilled < CHAOS_S:
                await kill()
                await asyncio.sleep(KILL_EVERY_S)
            stop.set()
            await asyncio.gather(*loops)
            chaos_done = time.monotonic()
            await settle(conn, farm, dirty, SETTLE_TIMEOUT_S)
            await cursor.read()
            codes = [await w.stop() for w in workers]
        finally:
            for w in workers:
                if w.proc is not None and w.proc.returncode is None:
                    await w.kill()
                w.log.close()
            events = await _events(conn)
            await conn.close()
            await store.close()
    assert codes == [0] * WORKERS, [_tail(tmp_path / f"worker{i}.log") for i in range(WORKERS)]

    expected = Counter(farm.changes)
    actual = Counter(events.values())
    missing, extra = expected - actual, actual - expected
    duplicates = sum(n - 1 for n in actual.values() if n > 1)
    skipped = sorted(set(events) - set(cursor.seen))
    twice = sorted(seq for seq, n in cursor.seen.items() if n > 1)
    polls = Counter(r.status for r in server.log)
    print(
        f"\nkill-loop: seed={SEED} workers={WORKERS} feeds={FEEDS} kills={kills}"
        f" starts={sum(w.starts for w in workers)} changes={len(farm.changes)}"
        f" (after the backfill: {len(farm.changes) - 2 * FEEDS}) events={len(events)}"
        f" missing={sum(missing.values())} extra={sum(extra.values())} duplicates={duplicates}"
        f" cursor: read={sum(cursor.seen.values())} pages={cursor.pages} skipped={len(skipped)}"
        f" twice={len(twice)} requests={len(server.log)} {dict(polls)}"
        f" overlaps={len(server.overlaps)} backfill={backfilled - started:.1f}s"
        f" settle={time.monotonic() - chaos_done:.1f}s total={time.monotonic() - started:.1f}s"
    )
    assert kills >= MIN_KILLS, f"only {kills} kills"
    assert not missing and not extra, (
        f"events differ from the change set: missing {list(missing)[:3]}, extra {list(extra)[:3]}"
    )
    assert not server.overlaps, f"a feed fetched twice at once: {server.overlaps[:3]}"
    assert not skipped and not twice, f"cursor skipped {skipped[:5]}, saw twice {twice[:5]}"


async def _events(conn: Conn) -> dict[int, Change]:
    """Every event as the change it reports (its entry's version from the title), by seq."""
    cur = await conn.execute(
        "SELECT e.seq, f.name, e.entry_id, e.type,"
        " COALESCE(v.title, e.payload::json #>> '{data,entry,title}') FROM events e"
        " JOIN feeds f ON f.id = e.feed_id LEFT JOIN entry_versions v ON v.id = e.version_id"
        " ORDER BY e.seq"
    )
    return {
        seq: Change(name, entry_id, kind, version_of(title))
        for seq, name, entry_id, kind, title in await cur.fetchall()
    }


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-20:])
