"""Three real `syncd run` workers on one PostgreSQL schema and a local farm of small feeds polled
every second (docs/design.md, "Many workers"). One feed's answer is held, so the worker that
leased it is mid-crawl; that worker is SIGKILLed. Its feeds are taken over once its lease runs
out (not before: the lease holds them), the farm's log shows no feed fetched twice at once, every
entry's event exists exactly once, and the survivors stop cleanly and leave the `workers` table.
Skipped with one line where no PostgreSQL answers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from tests.conftest import write_config
from tests.support.feedfarm import FeedFarm, serve_farm
from tests.support.postgres import scratch_schema
from tests.support.process import start_syncd
from tests.test_e2e_daemon import wait_until

FEEDS = 9
LEASE_S = 2.0


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with scratch_schema() as url:
        yield url


async def scalar(url: str, sql: str) -> object:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(sql)
        row = await cur.fetchone()
        return None if row is None else row[0]


async def workers_registered(url: str) -> int:
    try:
        n = await scalar(url, "SELECT COUNT(*) FROM workers")
    except psycopg.errors.UndefinedTable:  # no worker has migrated the schema yet
        return 0
    assert isinstance(n, int)
    return n


async def owners_of(url: str, names: list[str]) -> dict[str, str | None]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT name, lease_owner FROM feeds WHERE name = ANY(%s)", (names,)
        )
        return {name: holder for name, holder in await cur.fetchall()}


async def test_a_killed_workers_feeds_are_taken_over_within_one_lease_period(
    tmp_path: Path, pg_url: str
) -> None:
    farm = FeedFarm(feeds=FEEDS, delay_s=0.2)
    held = farm.hold(0)
    async with serve_farm(farm):
        config = write_config(
            tmp_path,
            feeds=[
                {"name": f"f{n}", "url": farm.feed_url(n), "interval": "1s"} for n in range(FEEDS)
            ],
            store={"url": pg_url, "lease_seconds": LEASE_S},
        )
        procs = []
        logs = [(tmp_path / f"worker{i}.log").open("wb") for i in range(3)]
        try:
            for log in logs:
                procs.append(
                    await start_syncd(
                        config,
                        "run",
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=log,
                        new_session=True,
                    )
                )
            # All three are registered before the kill: one starting later would retire the dead
            # worker of its host at once (workers.dead_here), not wait for its lease to run out.
            registered = 0
            async with asyncio.timeout(60):
                while registered != 3:
                    await asyncio.sleep(0.1)
                    registered = await workers_registered(pg_url)
            # Whoever leased f0 first is stuck on its answer: that worker is killed.
            await wait_until(lambda: len(farm.arrivals.get(0, [])) == 1, timeout=60)
            owner = await scalar(pg_url, "SELECT lease_owner FROM feeds WHERE name = 'f0'")
            assert isinstance(owner, str)
            [victim] = [p for p in procs if f":{p.pid}:" in owner]
            os.killpg(victim.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await victim.wait()
            stranded = await scalar(
                pg_url,
                f"SELECT array_agg(name) FROM feeds WHERE lease_owner = '{owner}'",
            )
            assert isinstance(stranded, list) and "f0" in stranded
            # When the victim's leases run out, in seconds after the kill: its last heartbeat or
            # claim set them, and a heartbeat late on a loaded machine leaves less of a lease.
            until = await scalar(
                pg_url, f"SELECT MAX(lease_until) FROM feeds WHERE lease_owner = '{owner}'"
            )
            assert isinstance(until, str)
            runs_out = (
                datetime.fromisoformat(until).timestamp() - time.time()
                + time.monotonic() - killed_at
            )  # fmt: skip
            del farm.gates[0]
            held.set()  # the dead worker's request ends now, long before anyone takes f0 over

            # Taken over = leased by another worker (the victim, dead, never hands a lease back).
            takeovers: dict[str, float] = {}
            async with asyncio.timeout(30):
                while len(takeovers) < len(stranded):
                    owners = await owners_of(pg_url, stranded)
                    for name, holder in owners.items():
                        if holder != owner and name not in takeovers:
                            takeovers[name] = time.monotonic() - killed_at
                    await asyncio.sleep(0.05)
            # The feed is polled again while workers keep adding: each gains one entry.
            for n in range(FEEDS):
                farm.bump(n)
            expected = FEEDS * (farm.entries + 1)
            deadline = time.monotonic() + 60
            while (await scalar(pg_url, "SELECT COUNT(*) FROM events")) != expected:
                assert time.monotonic() < deadline, "events not all written in time"
                await asyncio.sleep(0.2)
            survivors = [p for p in procs if p is not victim]
            for p in survivors:
                p.send_signal(signal.SIGTERM)
            for p in survivors:
                assert await asyncio.wait_for(p.wait(), 30) == 0
        finally:
            for p in procs:
                if p.returncode is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    await p.wait()
            for log in logs:
                log.close()
    # Not before the leases ran out (at `until`: the victim's last heartbeat was at most a third
    # of a lease before the kill, unless a loaded machine delayed it), and within one lease
    # period plus a poll tick and a loaded machine's lag.
    assert all(runs_out - 0.1 < t < LEASE_S + 4 for t in takeovers.values()), (takeovers, runs_out)
    # The farm saw each stranded feed fetched again after that.
    assert all(farm.arrivals[int(n[1:])][-1] > killed_at + LEASE_S / 2 for n in stranded)
    assert farm.overlaps() == []
    per_entry = await scalar(
        pg_url, "SELECT COUNT(*) FROM (SELECT 1 FROM events GROUP BY feed_id, entry_id) x"
    )
    assert per_entry == expected  # every entry's created event, none twice
    assert await scalar(pg_url, "SELECT array_agg(id) FROM workers") == [owner]
    for i in range(3):
        text = (tmp_path / f"worker{i}.log").read_text()
        assert "Traceback" not in text, text
