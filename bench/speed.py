"""Benchmark: syncd against the aiohttp+lxml yardstick, side by side, on one local server.

The table of issue 7, as whole processes (wall seconds and CPU seconds of the process tree,
median of --runs), each row measured for both in the same run against the same server:

* cold: 200 single-page feeds of 25 Blogger entries, first sync;
* index: `syncd index` after cold: the search index catching up with the 5,000 entries the sync
  left queued (a sync only queues them since the index left the page's transaction; the daemon
  does this in the background). Only for a checkout that has the command; like reader's
  `update_search()`, which its `update_feeds()` does not do either;
* edit: the same 200 feeds after one entry was edited (every feed serves the edited entry);
* edit-index: `syncd index` after edit (200 entries);
* unchanged: the same 200 feeds again, every answer a 304;
* backfill: the 515-entry feed, 21 pages, walking the same next links.

syncd runs with `changes = "off"`: the GData changes query (issue 9) adds a request and a parse
to every incremental poll of a Blogger feed, which the yardstick does not make.

The yardstick is bench/yardstick.py (conditional GET, lxml, no store). `--reader PYTHON` adds
lemon24/reader's column (bench/reader_run.py under that Python): `make .venv-reader/bin/python`
makes that side environment, and `make bench` passes it when it exists. reader cannot follow
next links, so it has no backfill figure. `--root` adds another checkout's syncd (e.g. an old
commit's) beside this one. Prints figures and ratios, never verdicts.

    .venv/bin/python bench/speed.py [--runs 3] [--feeds 200] [--root OTHER_CHECKOUT]
                                    [--reader .venv-reader/bin/python]
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
READER = ROOT / "bench" / "reader_run.py"

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
        # A loaded machine can keep the bench's feed server from accepting within the default 10 s.
        '[fetch]\nper_host_rate = 100000\nallow_private_networks = true\ntimeout = "120s"\n'
        f"{feeds}"
        f'[[sinks]]\nname = "file"\ntype = "file"\npath = "{tmp}/events.jsonl"\n'
    )
    return config


Command = tuple[str, list[str], Path]  # label, argv, the checkout whose syncd it may import


async def side_by_side(
    tmp: Path,
    urls: Sequence[str],
    rows: Sequence[str],
    figures: Figures,
    between: object,
    roots: Sequence[tuple[str, Path]],
    reader: Path | None,
) -> None:
    """Run each syncd (label, checkout), reader if given, and the yardstick once per row, each
    with its own state (store, validators) kept across rows."""
    urls_file = tmp / "urls.txt"
    urls_file.write_text("\n".join(urls))
    commands: list[Command] = []
    indexing: list[Command] = []  # the search index's catch-up, where the checkout has one
    for label, root in roots:
        own = tmp / label
        own.mkdir()
        config = write_config(own, urls)
        syncd = [sys.executable, "-m", "syncd", "--config", str(config)]
        commands.append((label, [*syncd, "sync"], root))
        if (root / "syncd" / "cli" / "index.py").exists():
            indexing.append((label, [*syncd, "index"], root))
    if reader is not None:
        commands.append(
            ("reader", [str(reader), str(READER), str(urls_file), str(tmp / "r.db")], ROOT)
        )
    yardstick = [sys.executable, str(YARDSTICK), str(urls_file), str(tmp / "yardstick.json")]
    commands.append(("yardstick", yardstick, ROOT))
    for row in rows:
        if row == "edit":
            assert callable(between)
            await between()
        for label, argv, root in indexing if row.endswith("index") else commands:
            if label == "reader" and row == "backfill":
                continue  # reader reads the first page only
            figures.setdefault(f"{row}/{label}", []).append(await measure(argv, tmp, root))


async def main(runs: int, feeds: int, other: Path | None, reader: Path | None) -> None:
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
                    Path(tmp),
                    urls,
                    ("cold", "index", "edit", "edit-index", "unchanged"),
                    figures,
                    edit,
                    roots,
                    reader,
                )
    async with spawn_feed_server(entries=515) as paged:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                await side_by_side(
                    Path(tmp), [paged.server.url], ("backfill",), figures, None, roots, reader
                )
    report(
        figures, runs, feeds, other, [label for label, _ in roots] + (["reader"] if reader else [])
    )


def report(
    figures: Figures, runs: int, feeds: int, other: Path | None, labels: Sequence[str]
) -> None:
    """Each command's median wall (CPU) per row, then syncd against each of the others."""

    def cell(row: str, label: str) -> tuple[float, float] | None:
        runs_of = figures.get(f"{row}/{label}")
        if not runs_of:
            return None
        med = statistics.median
        return med(w for w, _ in runs_of), med(c for _, c in runs_of)

    print(f"{feeds} single-page feeds of 25 Blogger entries; backfill 515 entries / 21 pages")
    print(f"whole processes, median of {runs}; wall s (CPU s of the process tree)")
    if other:
        print(f"before = the syncd of {other}")
    columns = [*labels, "yardstick"]
    against = [c for c in columns if c != "syncd"]
    print(
        f"{'work':<10}" + "".join(f"{c:>16}" for c in columns)
        + "".join(f"{'syncd/' + c:>16}" for c in against) + "   (ratios: wall/CPU)"
    )  # fmt: skip
    for row in ("cold", "index", "edit", "edit-index", "unchanged", "backfill"):
        line = f"{row:<10}"
        for c in columns:
            got = cell(row, c)
            line += f"{got[0]:8.2f} ({got[1]:5.2f})" if got else f"{'-':>16}"
        mine = cell(row, "syncd")
        for c in against:
            theirs = cell(row, c)
            if mine and theirs:
                line += f"   {mine[0] / theirs[0]:5.2f}x/{mine[1] / theirs[1]:5.2f}x"
            else:
                line += f"{'-':>16}"
        print(line)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument(
        "--root", type=Path, help="also run the syncd of this checkout (e.g. an old commit's)"
    )
    ap.add_argument(
        "--reader",
        type=Path,
        help="a Python with lemon24/reader installed (make .venv-reader/bin/python)",
    )
    args = ap.parse_args()
    other = args.root.resolve() if args.root else None
    asyncio.run(main(args.runs, args.feeds, other, args.reader.absolute() if args.reader else None))
