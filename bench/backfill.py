"""Benchmark: the 515-entry, 21-page backfill and an unchanged re-sync, against a local server.

Prints figures, not verdicts. The feed server runs in its own process; `syncd sync` runs as the
real command in a subprocess, in a session of its own. Its CPU figure covers the whole process
tree (syncd, the forkserver, the parser workers): /proc is sampled every 5 ms and each process's
last reading is summed, since the workers' own parent never reports their usage to us. The
baseline, run in this same process on the same bytes, is feedparser parsing all 21 pages one
after another on one core with syncd's settings: the floor a single-threaded syncer would pay.

    .venv/bin/python bench/backfill.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.feedserver import spawn_feed_server  # noqa: E402
from tests.support.measure import measure  # noqa: E402
from tests.support.pages import fetch_pages  # noqa: E402


async def run_syncd(config: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process tree) of one `syncd` command."""
    return await measure(
        [sys.executable, "-m", "syncd", "--config", str(config), *args], config.parent
    )


def baseline_parse(bodies: list[bytes]) -> float:
    cpu0 = time.process_time()
    for body in bodies:
        feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    return time.process_time() - cpu0


async def main(runs: int) -> None:
    async with spawn_feed_server(entries=515) as spawned:
        url = spawned.server.url
        bodies = await fetch_pages(url)
        print(f"feed: {len(bodies)} pages, {sum(map(len, bodies)) / 1e6:.1f} MB, 515 entries")
        base = [baseline_parse(bodies) for _ in range(runs)]
        backfill_wall, backfill_cpu, resync_wall, resync_cpu = [], [], [], []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                config = Path(tmp) / "syncd.toml"
                config.write_text(
                    f'[store]\npath = "{tmp}/syncd.db"\n'
                    "[fetch]\nper_host_rate = 1000\nallow_private_networks = true\n"
                    f'[[feeds]]\nname = "bench"\nurl = "{url}"\n'
                    f'[[sinks]]\nname = "file"\ntype = "file"\npath = "{tmp}/events.jsonl"\n'
                )
                w, c = await run_syncd(config, "sync")
                backfill_wall.append(w)
                backfill_cpu.append(c)
                w, c = await run_syncd(config, "sync")
                resync_wall.append(w)
                resync_cpu.append(c)
    med = statistics.median
    print(f"baseline: feedparser, 21 pages serially in-process: {med(base) * 1000:.0f} ms CPU")
    print(
        f"backfill (syncd sync, 515 entries, 21 pages): wall {med(backfill_wall):.2f} s,"
        f" CPU {med(backfill_cpu):.2f} s (process tree, median of {runs})"
    )
    print(
        f"unchanged re-sync (syncd sync): wall {med(resync_wall):.2f} s,"
        f" CPU {med(resync_cpu):.2f} s"
    )
    print(f"ratio backfill wall / baseline parse CPU: {med(backfill_wall) / med(base):.2f}")
    print(f"ratio re-sync wall / backfill wall: {med(resync_wall) / med(backfill_wall):.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    asyncio.run(main(ap.parse_args().runs))
