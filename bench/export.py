"""Benchmark: `syncd export` memory, streamed against a whole-document baseline.

Builds stores of N entries (the seed page's 25 Blogger posts, ~11 KB of content each, copied
under new ids), then, each in a fresh process, exports the feed as Atom the way `syncd export`
does (row by row into lxml's incremental writer) and the baseline way (every entry read into a
list, one element tree, serialised at once). Prints each one's peak RSS, its growth over the
smallest store, output size and time, and the ratio of the two. Prints figures, not verdicts.

    .venv/bin/python bench/export.py [--sizes 500 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.export import _entry, write_atom  # noqa: E402
from syncd.parse import parse_page  # noqa: E402
from syncd.storage.rows import link_dict, person_dict  # noqa: E402
from syncd.storage.sqlite.store import SqliteStore  # noqa: E402
from syncd.timestamps import to_text  # noqa: E402

SEED = ROOT / "tests" / "data" / "google-research-blog-page1.atom.xml"


def build_store(path: Path, n: int) -> None:
    page = parse_page(SEED.read_bytes(), url="http://example.org/feed", headers={})
    store = SqliteStore.open(path)
    now = to_text(datetime.now(UTC))
    with store.write() as conn:
        conn.execute(
            "INSERT INTO feeds (name, url, title, created_at) VALUES ('blog', ?, ?, ?)",
            ("http://example.org/feed", page.feed_title, now),
        )
        rows = []
        for i in range(n):
            e = page.entries[i % len(page.entries)]
            rows.append(
                (
                    f"{e.entry_id}-{i}",
                    e.title,
                    e.link,
                    to_text(e.published),
                    to_text(e.updated),
                    json.dumps([person_dict(p) for p in e.authors]),
                    json.dumps(list(e.categories)),
                    e.content,
                    json.dumps([link_dict(x) for x in e.links]),
                    now,
                )
            )
        conn.executemany(
            "INSERT INTO entries (feed_id, entry_id, title, link, published, updated, authors,"
            " categories, content, links, content_hash, first_seen, last_seen, revision)"
            " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, 1)",
            [(*r, r[-1]) for r in rows],
        )
    store.db.close()


def export(db: str, mode: str, out: str) -> None:
    """One export, in this (fresh) process."""
    with open(out, "wb") as f:
        asyncio.run(_export(db, mode, f))


async def _export(db: str, mode: str, f: BinaryIO) -> None:
    store = SqliteStore.open_existing(Path(db))
    head = await store.feed_head("blog")
    if mode == "streamed":
        await write_atom(
            f, head, store.feed_history("blog", include_deleted=False), now=datetime.now(UTC)
        )
    else:
        from lxml import etree

        entries = [e async for e in store.feed_history("blog", include_deleted=False)]
        root = etree.Element("{http://www.w3.org/2005/Atom}feed")
        for e in entries:
            root.append(_entry(e))
        f.write(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    await store.close()


def measure(db: Path, mode: str) -> tuple[float, float, int]:
    """Peak RSS (MiB), seconds and output bytes of one export in a child process."""
    with tempfile.NamedTemporaryFile(suffix=".atom") as out:
        started = time.perf_counter()
        code = (
            "import resource, sys; sys.path.insert(0, sys.argv[4]);"
            "from bench.export import export; export(sys.argv[1], sys.argv[2], sys.argv[3]);"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(db), mode, out.name, str(ROOT)],
            check=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        return int(done.stdout.strip()) / 1024, seconds, Path(out.name).stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base: dict[str, float] = {}
        print(
            f"{'entries':>8} {'mode':>9} {'peak MiB':>9} {'growth':>8} {'output MB':>10} {'s':>6}"
        )
        for n in args.sizes:
            db = Path(tmp) / f"{n}.db"
            build_store(db, n)
            peaks = {}
            for mode in ("streamed", "baseline"):
                peak, seconds, size = measure(db, mode)
                base.setdefault(mode, peak)
                peaks[mode] = peak
                print(
                    f"{n:>8} {mode:>9} {peak:>9.1f} {peak - base[mode]:>8.1f}"
                    f" {size / 1e6:>10.1f} {seconds:>6.2f}"
                )
            print(f"{n:>8}  baseline/streamed peak: {peaks['baseline'] / peaks['streamed']:.2f}x")


if __name__ == "__main__":
    main()
