"""Benchmark: the CPU of the store's write path for new and changed entries, alone.

One Blogger page of 25 entries is fetched from a local feed server and parsed once; then, on a
fresh SQLite store, `commit_page` writes it as the syncer would (known entries read, diffed,
events built) for `--feeds` feeds (cold), again with one entry of each edited (edit), and as a
backfill of 21 pages of distinct entries on one feed (backfill). The figure is the CPU seconds
(`time.process_time`) spent in `commit_page`, so neither fetching, parsing nor a loaded
machine's scheduling counts. `--tree PATH` measures another checkout's syncd (e.g. main) on the
same page, interleaved run by run with this one. Prints figures and ratios, never verdicts.

    .venv/bin/python bench/store_writes.py [--runs 5] [--feeds 200] [--tree /tmp/main]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("cold", "edit", "backfill")


async def child(body: bytes, url: str, feeds: int) -> dict[str, float]:
    """In the measured checkout's syncd (PYTHONPATH): CPU seconds of `commit_page` per row."""
    from syncd.diff import diff_page
    from syncd.events import build_event
    from syncd.model import FeedRef, FetchResult, ParsedEntry
    from syncd.parse import parse_page
    from syncd.storage.sqlite import SqliteStore
    from syncd.storage.values import EntryWrite, PageCommit

    page = parse_page(body, url=url, headers={})
    now = datetime.now(UTC)
    spent = dict.fromkeys(ROWS, 0.0)

    async def commit(store: SqliteStore, feed_id: int, entries: tuple[ParsedEntry, ...]) -> None:
        known = await store.known_entries(feed_id, [e.entry_id for e in entries])
        decided = diff_page(entries, known, {})
        ref = FeedRef(f"f{feed_id}", url, page.feed_title)
        writes = tuple(
            EntryWrite(c, build_event(c, ref, initial=False, now=now), ("file",))
            for c in decided.changes
        )
        result = FetchResult(url, url, 200, body, {}, None, None, "hash", 0.0)
        parsed = replace(page, entries=entries)
        t0 = time.process_time()
        await store.commit_page(PageCommit(feed_id, result, parsed, None, now, writes))
        spent[row] += time.process_time() - t0

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore.open(Path(tmp) / "syncd.db")
        ids = [(await store.ensure_feed(f"f{i}", f"{url}?{i}", now)).id for i in range(feeds)]
        row = "cold"
        for feed_id in ids:
            await commit(store, feed_id, page.entries)
        row = "edit"
        first = page.entries[0]
        edited = replace(first, title=f"{first.title} (edited)", content_hash="edited")
        now += timedelta(minutes=1)
        for feed_id in ids:
            await commit(store, feed_id, (edited, *page.entries[1:]))
        row = "backfill"
        (backfill,) = [(await store.ensure_feed("backfill", f"{url}?b", now)).id]
        for p in range(21):
            await commit(
                store,
                backfill,
                tuple(replace(e, entry_id=f"{e.entry_id}-{p}") for e in page.entries),
            )
        await store.close()
    return spent


def measure(tree: Path, body_file: Path, url: str, feeds: int) -> dict[str, float]:
    """One child run against `tree`'s syncd, its bytecode compiled first (as installed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "syncd")], env=env)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(body_file), url, str(feeds)],
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        check=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


async def fetch_body() -> tuple[bytes, str]:
    import aiohttp

    from tests.support.feedserver import spawn_feed_server

    async with (
        spawn_feed_server(entries=25) as server,
        aiohttp.ClientSession() as http,
        http.get(server.server.url) as response,
    ):
        return await response.read(), server.server.url


def main(runs: int, feeds: int, other: Path | None) -> None:
    body, url = asyncio.run(fetch_body())
    trees = {"this": ROOT, **({"other": other} if other else {})}
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "page.xml"
        body_file.write_bytes(body)
        for run in range(runs):
            order = list(trees) if run % 2 == 0 else list(trees)[::-1]
            for name in order:
                figures[name].append(measure(trees[name], body_file, url, feeds))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"CPU s in commit_page, SQLite, median of {runs} (load average now {load})")
    print(f"cold/edit: {feeds} feeds of one 25-entry page; backfill: 21 pages of 25 on one feed")
    med = {n: {r: statistics.median(f[r] for f in figures[n]) for r in ROWS} for n in trees}
    header = f"{'work':<10} {'this':>8}" + (f" {'other':>8} {'this/other':>11}" if other else "")
    print(header)
    for r in ROWS:
        line = f"{r:<10} {med['this'][r]:8.3f}"
        if other:
            line += f" {med['other'][r]:8.3f} {med['this'][r] / med['other'][r]:10.2f}x"
        print(line)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _, _, body_path, page_url, count = sys.argv
        result: Any = asyncio.run(child(Path(body_path).read_bytes(), page_url, int(count)))
        print(json.dumps(result))
    else:
        sys.path.insert(0, str(ROOT))
        ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        ap.add_argument("--runs", type=int, default=5)
        ap.add_argument("--feeds", type=int, default=200)
        ap.add_argument("--tree", type=Path, help="another checkout to measure beside this one")
        args = ap.parse_args()
        main(args.runs, args.feeds, args.tree)
