"""Benchmark: the PostgreSQL figures behind docs/design.md, "The path to 10 million feeds".

1. Footprint. A real `syncd sync` into a scratch schema of (a) the local 515-entry Blogger-like
   feed (realistic posts: a few KB of HTML each) with a file sink, and (b) N small feeds of the
   local feed farm (2 short posts each). Per table: rows, bytes on disk (heap, TOAST and indexes:
   `pg_total_relation_size`) and bytes per row; and the WAL the sync wrote per event
   (`pg_current_wal_lsn` before and after: the server is shared, so other suites' writes land in
   it too: an upper bound).
2. Polls/s. `syncd run` on the farm's store with every feed due each second, all answering 304:
   polls/s (304s the farm served in the window), CPU of syncd's process tree in % of one core,
   and the WAL written per poll (an upper bound again).

Prints figures, never verdicts.

    .venv/bin/python bench/pg_figures.py [--feeds 2000] [--window 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.conftest import file_sink, write_config  # noqa: E402
from tests.support.changefarm import ChangeFarm, serve_change_farm  # noqa: E402
from tests.support.feedserver import serve_feed  # noqa: E402
from tests.support.measure import TICKS, measured_env, session_processes  # noqa: E402
from tests.support.postgres import scratch_schema  # noqa: E402

SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid) AS bytes, c.reltuples
FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
ORDER BY c.relname"""


async def syncd(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", "--config", str(config), *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=measured_env(), cwd=str(config.parent),
        start_new_session=True,
    )  # fmt: skip


async def sync_once(config: Path) -> float:
    t0 = time.perf_counter()
    proc = await syncd(config, "sync")
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"syncd sync failed:\n{err.decode()[-2000:]}")
    return time.perf_counter() - t0


async def wal(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def commit_latency(conn: psycopg.AsyncConnection[Any], n: int = 200) -> float:
    """The median seconds of a one-row write transaction, round trip and commit (fsync)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS syncd_bench_probe (n INTEGER)")
    took = []
    for i in range(n):
        t0 = time.perf_counter()
        await conn.execute("INSERT INTO syncd_bench_probe (n) VALUES (%s)", (i,))
        took.append(time.perf_counter() - t0)
    await conn.execute("DROP TABLE syncd_bench_probe")
    return sorted(took)[n // 2]


async def footprint(conn: psycopg.AsyncConnection[Any]) -> dict[str, tuple[int, int]]:
    """Per table (rows counted exactly, bytes on disk)."""
    await conn.execute("ANALYZE")
    cur = await conn.execute(SIZES)
    out = {}
    for name, size, _ in await cur.fetchall():
        count = await conn.execute(f'SELECT COUNT(*) FROM "{name}"')
        row = await count.fetchone()
        out[name] = (int(row[0]) if row else 0, int(size))
    return out


def show(title: str, sizes: dict[str, tuple[int, int]], tables: list[str]) -> None:
    print(title)
    for name in tables:
        rows, size = sizes[name]
        per = f"{size / rows:8.0f} B/row" if rows else "       - B/row"
        print(f"  {name:<18} {rows:>8} rows {size / 2**20:8.2f} MiB {per}")


async def blogger(tmp: Path) -> None:
    async with scratch_schema() as url, serve_feed() as server:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        config = write_config(
            tmp, feeds=[{"name": "research", "url": server.url}],
            sinks=[file_sink(tmp, initial="deliver")], store={"url": url},
        )  # fmt: skip
        w0 = await wal(conn)  # the schema's creation is in the figure: a few KB
        took = await sync_once(config)
        w1 = await wal(conn)
        sizes = await footprint(conn)
        events = sizes["events"][0]
        show(
            f"515-entry feed, one `syncd sync` ({took:.1f} s), file sink:",
            sizes,
            ["feeds", "pages", "entries", "entry_versions", "events", "deliveries",
             "entries_search"],
        )  # fmt: skip
        print(f"  WAL {(w1 - w0) / 2**20:.1f} MiB, {(w1 - w0) / events:.0f} B per event (bound)")
        await conn.close()


async def farm(tmp: Path, feeds: int, window: float) -> None:
    model = ChangeFarm(feeds)
    names = sorted(model.feeds)
    async with scratch_schema() as url, serve_change_farm(model, delay=0) as server:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        config = write_config(
            tmp, feeds=[{"name": n, "url": server.url(n), "interval": "1s"} for n in names],
            fetch={"concurrency": 32}, store={"url": url},
        )  # fmt: skip
        w0 = await wal(conn)
        took = await sync_once(config)
        w1 = await wal(conn)
        sizes = await footprint(conn)
        show(
            f"{feeds} small feeds, one `syncd sync` ({took:.1f} s):",
            sizes, ["feeds", "pages", "entries", "entry_versions", "events", "entries_search"],
        )  # fmt: skip
        print(f"  WAL {(w1 - w0) / feeds:.0f} B per new feed (2 posts; bound)")

        latency = await commit_latency(conn)  # autocommit: each insert is a transaction
        proc = await syncd(config, "run")
        try:
            t_start = time.perf_counter()
            while not _count(server):  # noqa: ASYNC110 (the start registers every feed first)
                await asyncio.sleep(0.2)
            started = time.perf_counter() - t_start
            await asyncio.sleep(5)  # the overdue feeds spread over a second, then steady
            c0, w0, t0 = _count(server), await wal(conn), time.perf_counter()
            cpu0 = _cpu(proc.pid)
            await asyncio.sleep(window)
            c1, w1, t1 = _count(server), await wal(conn), time.perf_counter()
            cpu1 = _cpu(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.communicate()
        polls = c1 - c0
        print(
            json.dumps(
                {
                    "feeds": feeds,
                    "interval_s": 1,
                    "polls_s": round(polls / (t1 - t0), 1),
                    "cpu_syncd_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
                    "wal_bytes_per_poll": round((w1 - w0) / polls) if polls else None,
                    "window_s": round(t1 - t0, 1),
                    "start_to_first_poll_s": round(started, 1),
                    "commit_ms_median": round(1000 * latency, 2),
                }
            )
        )
        await conn.close()


def _count(server: Any) -> int:
    return sum(1 for r in server.log if r.status == 304)


def _cpu(pid: int) -> float:
    return sum((int(f[11]) + int(f[12])) / TICKS for _, f in session_processes(pid))


async def main(feeds: int, window: float) -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        await blogger(Path(a))
        await farm(Path(b), feeds, window)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.feeds, args.window))
