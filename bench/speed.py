"""Benchmark: syncd against the aiohttp+lxml yardstick, side by side, on one local server.

The table of issue 7, as whole processes (wall seconds and CPU seconds of the process tree,
median of --runs), each row measured for both in the same run against the same server:

* cold: 200 single-page feeds of 25 Blogger entries, first sync;
* edit: the same 200 feeds after one entry was edited (every feed serves the edited entry);
* unchanged: the same 200 feeds again, every answer a 304;
* backfill: the 515-entry feed, 21 pages, walking the same next links.

syncd runs with `changes = "off"`: the GData changes query (issue 9) adds a request and a parse
to every incremental poll of a Blogger feed, which the yardstick does not make.

The yardstick is bench/yardstick.py (conditional GET, lxml, no store). `reader` is not installed
here; see docs/design.md for the side environment that would add its column. Prints figures and
ratios, never verdicts.

    .venv/bin/python bench/speed.py [--runs 3] [--feeds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.feedserver import spawn_feed_server  # noqa: E402
from tests.support.measure import measure  # noqa: E402

YARDSTICK = ROOT / "bench" / "yardstick.py"

Figures = dict[str, list[tuple[float, float]]]  # row -> [(wall, cpu)] per run


def write_config(tmp: Path, urls: Sequence[str], changes: str = "off") -> Path:
    """`changes = "off"`: no GData changes query (issue 9), which the yardstick does not make."""
    feeds = "".join(
        f'[[feeds]]\nname = "f{i}"\nurl = "{url}"\nchanges = "{changes}"\n'
        for i, url in enumerate(urls)
    )
    config = tmp / "syncd.toml"
    config.write_text(
        f'[store]\npath = "{tmp}/syncd.db"\n'
        "[fetch]\nper_host_rate = 100000\nallow_private_networks = true\n"
        f"{feeds}"
        f'[[sinks]]\nname = "file"\ntype = "file"\npath = "{tmp}/events.jsonl"\n'
    )
    return config


async def side_by_side(
    tmp: Path, urls: Sequence[str], rows: Sequence[str], figures: Figures, between: object
) -> None:
    """Run syncd and the yardstick once per row, each with its own state kept across rows."""
    config = write_config(tmp, urls)
    (tmp / "urls.txt").write_text("\n".join(urls))
    state = tmp / "yardstick.json"
    syncd = [sys.executable, "-m", "syncd", "--config", str(config), "sync"]
    yardstick = [sys.executable, str(YARDSTICK), str(tmp / "urls.txt"), str(state)]
    for row in rows:
        if row == "edit":
            assert callable(between)
            await between()
        figures.setdefault(f"{row}/syncd", []).append(await measure(syncd, tmp))
        figures.setdefault(f"{row}/yardstick", []).append(await measure(yardstick, tmp))


async def main(runs: int, feeds: int) -> None:
    figures: Figures = {}
    async with spawn_feed_server(entries=25) as single:
        urls = [f"{single.server.url}?feed={i}" for i in range(feeds)]
        first_id = (await single.control.ids())[0]

        async def edit() -> None:
            await single.control.edit_entry(first_id)

        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                await side_by_side(
                    Path(tmp), urls, ("cold", "edit", "unchanged"), figures, between=edit
                )
    async with spawn_feed_server(entries=515) as paged:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                await side_by_side(Path(tmp), [paged.server.url], ("backfill",), figures, None)

    med = statistics.median
    print(f"{feeds} single-page feeds of 25 Blogger entries; backfill 515 entries / 21 pages")
    print(f"whole processes, median of {runs}; wall s (CPU s of the process tree)")
    print(f"{'work':<12} {'syncd':>16} {'yardstick':>16} {'ratio wall':>11} {'ratio CPU':>10}")
    for row in ("cold", "edit", "unchanged", "backfill"):
        s_wall = med(w for w, _ in figures[f"{row}/syncd"])
        s_cpu = med(c for _, c in figures[f"{row}/syncd"])
        y_wall = med(w for w, _ in figures[f"{row}/yardstick"])
        y_cpu = med(c for _, c in figures[f"{row}/yardstick"])
        print(
            f"{row:<12} {s_wall:8.2f} ({s_cpu:5.2f}) {y_wall:8.2f} ({y_cpu:5.2f})"
            f" {s_wall / y_wall:10.2f}x {s_cpu / y_cpu:9.2f}x"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--feeds", type=int, default=200)
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.feeds))
