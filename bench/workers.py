"""Benchmark: polls/s and events/s with 1, 2 and 3 `syncd run` workers on one PostgreSQL store.

Every feed of a local farm (its own process, so its CPU is not the workers') is due every second
and gains one entry at each fetch, so each poll commits one page with one event: the workers
run flat out, and the figures show what sharing one database costs them (feed claims under
SKIP LOCKED, fenced commits, the event lock, per-host slots). This machine has 2 cores, shared
by everything: the table measures contention, not speedup. For each worker count a fresh schema,
a warm-up until every feed was fetched once, then a window: requests the farm answered and
events committed, per second. Prints figures, never verdicts.

    .venv/bin/python bench/workers.py [--feeds 200] [--window 20] [--workers 1,2,3]
    SYNCD_TEST_POSTGRES_URL=postgresql://… picks the database (default the test one)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import pytest  # noqa: E402
from aiohttp import web  # noqa: E402

from tests.support.feedfarm import FeedFarm, serve_farm  # noqa: E402
from tests.support.measure import measured_env  # noqa: E402
from tests.support.postgres import scratch_schema  # noqa: E402


async def serve(feeds: int) -> None:
    """The farm alone, growing one entry per fetch; prints its URL, answers /count."""
    farm = FeedFarm(feeds=feeds, entries=1, grow=True)
    async with serve_farm(farm, extra=[("/count", _counter(farm))]):
        print(farm.url, flush=True)
        await asyncio.Event().wait()


def _counter(farm: FeedFarm) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def count(_: web.Request) -> web.StreamResponse:
        return web.Response(text=str(len(farm.log)))

    return count


@asynccontextmanager
async def farm_process(feeds: int, env: dict[str, str]) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", "--feeds", str(feeds),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    url = (await proc.stdout.readline()).decode().strip()
    try:
        yield url
    finally:
        proc.terminate()
        await proc.wait()


async def served(url: str) -> int:
    reader, writer = await asyncio.open_connection(*url.removeprefix("http://").split(":"))
    writer.write(b"GET /count HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    return int(data.split(b"\r\n\r\n", 1)[1])


async def scalar(url: str, sql: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute(sql)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0


async def start_worker(config: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", "--config", str(config), "run",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env=env, start_new_session=True,
    )  # fmt: skip


async def fetched_all(pg: str, feeds: int, procs: list[asyncio.subprocess.Process]) -> None:
    """Until every feed was polled once (the workers are up and claiming)."""
    sql = "SELECT COUNT(*) FROM feeds WHERE last_fetch_at IS NOT NULL"
    done = 0
    while done < feeds:
        await asyncio.sleep(0.5)
        if any(p.returncode is not None for p in procs):
            raise SystemExit("a worker exited; run one by hand with this config to see why")
        try:
            done = await scalar(pg, sql)
        except psycopg.errors.UndefinedTable:  # not migrated yet
            continue


async def figures(farm: str, pg: str) -> tuple[int, int, float]:
    """Requests the farm answered, events committed, and when."""
    return await served(farm), await scalar(pg, "SELECT COUNT(*) FROM events"), time.monotonic()


def write_config(tmp: Path, pg: str, farm: str, feeds: int) -> Path:
    config = tmp / "syncd.toml"
    lines = [
        f'[store]\npath = "{tmp}/unused.db"\nurl = "{pg}"\nlease_seconds = "10s"',
        "[fetch]\nper_host_rate = 1000000\nallow_private_networks = true",
        '[defaults]\ninterval = "1s"\nchanges = "off"',
        '[http]\nlisten = ""',
        "[websub]\nenabled = false",
    ]
    lines += [f'[[feeds]]\nname = "f{i}"\nurl = "{farm}/f/{i}"' for i in range(feeds)]
    config.write_text("\n".join(lines) + "\n")
    return config


async def run(workers: int, feeds: int, window: float, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with farm_process(feeds, env) as farm, scratch_schema() as pg:
            config = write_config(Path(tmp), pg, farm, feeds)
            procs = [await start_worker(config, env) for _ in range(workers)]
            try:
                await fetched_all(pg, feeds, procs)
                await asyncio.sleep(2)  # past the start's burst
                polls0, events0, t0 = await figures(farm, pg)
                await asyncio.sleep(window)
                polls1, events1, t1 = await figures(farm, pg)
            finally:
                for p in procs:
                    os.killpg(p.pid, signal.SIGTERM)
                for p in procs:
                    await p.wait()
    return {
        "workers": workers,
        "polls": (polls1 - polls0) / (t1 - t0),
        "events": (events1 - events0) / (t1 - t0),
    }


async def main(counts: list[int], feeds: int, window: float) -> None:
    env = measured_env()
    print(f"{feeds} feeds due every second, each fetch one new entry; window {window:.0f} s")
    print(f"{'workers':>7}  {'polls/s':>8}  {'events/s':>8}")
    for n in counts:
        r = await run(n, feeds, window, env)
        print(f"{n:>7}  {r['polls']:>8.1f}  {r['events']:>8.1f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.feeds))
    else:
        try:
            asyncio.run(main([int(n) for n in args.workers.split(",")], args.feeds, args.window))
        except pytest.skip.Exception as e:  # no PostgreSQL here: say so, as the tests do
            print(f"bench/workers.py skipped: {e.msg}")
