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

    .venv/bin/python bench/speed.py [--runs 3] [--feeds 200] [--root OTHER_CHECKOUT]
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
    tmp: Path,
    urls: Sequence[str],
    rows: Sequence[str],
    figures: Figures,
    between: object,
    roots: Sequence[tuple[str, Path]],
) -> None:
    """Run each syncd (label, checkout) and the yardstick once per row, each with its own state
    (store, validators) kept across rows."""
    (tmp / "urls.txt").write_text("\n".join(urls))
    state = tmp / "yardstick.json"
    commands: list[tuple[str, list[str], Path]] = []
    for label, root in roots:
        own = tmp / label
        own.mkdir()
        config = write_config(own, urls)
        commands.append(
            (label, [sys.executable, "-m", "syncd", "--config", str(config), "sync"], root)
        )
    commands.append(
        ("yardstick", [sys.executable, str(YARDSTICK), str(tmp / "urls.txt"), str(state)], ROOT)
    )
    for row in rows:
        if row == "edit":
            assert callable(between)
            await between()
        for label, argv, root in commands:
            figures.setdefault(f"{row}/{label}", []).append(await measure(argv, tmp, root))


async def main(runs: int, feeds: int, other: Path | None) -> None:
    roots = [("syncd", ROOT)] + ([("before", other)] if other else [])
    figures: Figures = {}
    async with spawn_feed_server(entries=25) as single:
        urls = [f"{single.server.url}?feed={i}" for i in range(feeds)]
        first_id = (await single.control.ids())[0]

        async def edit() -> None:
            await single.control.edit_entry(first_id)

        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                await side_by_side(
                    Path(tmp), urls, ("cold", "edit", "unchanged"), figures, edit, roots
                )
    async with spawn_feed_server(entries=515) as paged:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                await side_by_side(
                    Path(tmp), [paged.server.url], ("backfill",), figures, None, roots
                )

    med = statistics.median

    def cell(key: str) -> tuple[float, float]:
        return med(w for w, _ in figures[key]), med(c for _, c in figures[key])

    print(f"{feeds} single-page feeds of 25 Blogger entries; backfill 515 entries / 21 pages")
    print(f"whole processes, median of {runs}; wall s (CPU s of the process tree)")
    if other:
        print(f"before = the syncd of {other}")
    labels = [label for label, _ in roots]
    head = "".join(f"{label:>16}" for label in labels)
    ratios = "".join(f"{label + '/yard':>16}" for label in labels)
    print(f"{'work':<10}{head}{'yardstick':>16}{ratios}{'  syncd/before' if other else ''}")
    for row in ("cold", "edit", "unchanged", "backfill"):
        y_wall, y_cpu = cell(f"{row}/yardstick")
        line = f"{row:<10}"
        for label in labels:
            wall, cpu = cell(f"{row}/{label}")
            line += f"{wall:8.2f} ({cpu:5.2f})"
        line += f"{y_wall:8.2f} ({y_cpu:5.2f})"
        for label in labels:
            wall, cpu = cell(f"{row}/{label}")
            line += f"   {wall / y_wall:5.2f}x/{cpu / y_cpu:5.2f}x"
        if other:
            (wall, cpu), (b_wall, b_cpu) = cell(f"{row}/syncd"), cell(f"{row}/before")
            line += f"   {wall / b_wall:5.2f}x/{cpu / b_cpu:5.2f}x"
        print(line)
    print("ratios: wall/CPU")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument(
        "--root", type=Path, help="also run the syncd of this checkout (e.g. an old commit's)"
    )
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.feeds, args.root.resolve() if args.root else None))
