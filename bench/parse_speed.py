"""The fast parse path's CPU per page on the seed page (25 Blogger entries), and where it goes.

Prints, for this checkout and (with --root) another one, interleaved in one run, each in its own
process: CPU milliseconds per `parse_page_fast` call (min and median of --runs rounds of --pages
calls) and pages per CPU second; the same for the edit skip's parse of the page (keys, then the
page with all but one entry known by key; the checkout must have the edit skip). Then, for this
checkout, the split an edit pass cares about: the per-page part (the same page without its
entries), the per-entry part, what the entries' keys cost, the page read with the edit skip (the
store knowing all but one entry by key), and the diff of the page against a store that knows all
but one entry. Figures only, never verdicts.

    .venv/bin/python bench/parse_speed.py [--runs 9] [--pages 40] [--root OTHER_CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "google-research-blog-page1.atom.xml"
URL = "https://www.blogger.com/feeds/21224994/posts/default"
HEADERS = {"content-type": "application/atom+xml; charset=UTF-8"}
_ENTRY_RE = re.compile(rb"<entry>.*?</entry>", re.DOTALL)  # the seed's entries, for the split

# Runs in a child process with the measured checkout first on sys.path.
# "page": parse_page_fast. "edit": the edit skip's parse (keys, then the page with every entry
# but the first known by its key), where the parse is libxml2's read, the checks and the keys.
_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from syncd.parse import open_page_fast, parse_page_fast
body = open(sys.argv[2], "rb").read()
url, pages, mode = sys.argv[3], int(sys.argv[4]), sys.argv[5]
headers = {"content-type": "application/atom+xml; charset=UTF-8"}
page = parse_page_fast(body, url=url, headers=headers)
known = dict(zip(open_page_fast(body, url=url, headers=headers).keys()[1:], page.entries[1:]))
def edit():
    opened = open_page_fast(body, url=url, headers=headers)
    opened.page({key: known[key] for key in opened.keys() if key in known})
def plain():
    parse_page_fast(body, url=url, headers=headers)
work = edit if mode == "edit" else plain
for _ in range(3):
    work()
t0 = time.process_time()
for _ in range(pages):
    work()
print(time.process_time() - t0)
"""


def cpu_per_page(root: Path, pages: int, mode: str = "page") -> float:
    """CPU seconds per parse of the seed page by the syncd of checkout `root` (see _CHILD)."""
    argv = [sys.executable, "-c", _CHILD, str(root), str(SEED), URL, str(pages), mode]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout
    return float(out) / pages


def compare(roots: list[tuple[str, Path]], runs: int, pages: int, mode: str = "page") -> None:
    samples: dict[str, list[float]] = {label: [] for label, _ in roots}
    for _ in range(runs):
        for label, root in roots:  # interleaved: load changes hit both alike
            samples[label].append(cpu_per_page(root, pages, mode))
    what = "parse_page_fast" if mode == "page" else "the edit skip's parse (24 of 25 known)"
    print(f"seed page, {what}, {runs} rounds of {pages} pages, each in its own process")
    for label, values in samples.items():
        best, med = min(values), statistics.median(values)
        print(
            f"  {label:<8} CPU per page min {best * 1e3:6.2f} ms, median {med * 1e3:6.2f} ms;"
            f" {1 / med:6.0f} pages per CPU second"
        )
    if len(roots) == 2:
        (a, av), (b, bv) = samples.items()
        print(f"  {a} / {b} (medians): {statistics.median(av) / statistics.median(bv):.2f}")


def best_of(fn: Callable[[], object], rounds: int = 30) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def edit_split() -> None:
    """Where one edited page's parse and diff go, in-process, with this checkout's code."""
    sys.path.insert(0, str(ROOT))
    from lxml import etree

    from syncd.diff import diff_page
    from syncd.model import ParsedEntry, ParsedPage
    from syncd.parse import FastPage, open_page_fast, parse_page_fast
    from tests.test_diff import stored  # a StoredEntry that knows a parsed entry as it is

    body = SEED.read_bytes()
    spans = [m.span() for m in _ENTRY_RE.finditer(body)]
    bare = body[: spans[0][0]] + body[spans[-1][1] :]
    page = parse_page_fast(body, url=URL, headers=HEADERS)
    assert isinstance(page, ParsedPage) and len(page.entries) == len(spans)
    n = len(spans)

    def parse(data: bytes) -> Callable[[], object]:
        return lambda: parse_page_fast(data, url=URL, headers=HEADERS)

    whole, fixed = best_of(parse(body)), best_of(parse(bare))
    per_entry = (whole - fixed) / n

    def xml(data: bytes) -> Callable[[], object]:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        return lambda: etree.fromstring(data, parser)

    # What a skip could not save: libxml2 must still read every entry (well-formedness decides
    # whether the fast path may read the page at all).
    libxml2 = (best_of(xml(body)) - best_of(xml(bare))) / n
    opened = open_page_fast(body, url=URL, headers=HEADERS)
    assert isinstance(opened, FastPage)
    # The store knows every entry but the first by its key: the edit skip's parse.
    reuse = dict(zip(opened.keys()[1:], page.entries[1:], strict=True))

    def keyed(known: dict[str, ParsedEntry]) -> Callable[[], object]:
        return lambda: open_page_fast(body, url=URL, headers=HEADERS).page(known)  # type: ignore[union-attr]

    def keys() -> object:
        return open_page_fast(body, url=URL, headers=HEADERS).keys()  # type: ignore[union-attr]

    known = {e.entry_id: stored(e) for e in page.entries}
    edited = (replace(page.entries[0], content_hash="edited"), *page.entries[1:])
    diff = best_of(lambda: diff_page(edited, known, {}))
    unchanged = (n - 1) * per_entry
    print(f"edit split, one seed page ({len(body) // 1000} KB, {n} entries, one edited), CPU:")
    print(f"  parse_page_fast, whole page           {whole * 1e3:6.2f} ms")
    print(f"  the same page without its entries     {fixed * 1e3:6.2f} ms (libxml2, checks, feed)")
    print(f"  per entry (walk, assembly, hash)      {per_entry * 1e3:6.3f} ms")
    print(f"    of which libxml2 reading it         {libxml2 * 1e3:6.3f} ms")
    print(f"  the {n - 1} unchanged entries            {unchanged * 1e3:6.2f} ms")
    skippable = (n - 1) * (per_entry - libxml2)
    print(f"    without libxml2's share             {skippable * 1e3:6.2f} ms")
    opening = best_of(lambda: open_page_fast(body, url=URL, headers=HEADERS))
    print(f"  keys (FastPage.keys: tostring+sha256) {best_of(keys) * 1e3 - opening * 1e3:6.2f} ms")
    print(f"  keyed, the store knows none (cold)    {best_of(keyed({})) * 1e3:6.2f} ms")
    print(f"  keyed, the store knows {n - 1} (edit skip) {best_of(keyed(reuse)) * 1e3:6.2f} ms")
    print(f"  diff_page, {n} entries, {n - 1} unchanged     {diff * 1e3:6.3f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--root", type=Path, help="also measure the syncd of this checkout")
    args = ap.parse_args()
    roots = [("syncd", ROOT)] + ([("before", args.root.resolve())] if args.root else [])
    compare(roots, args.runs, args.pages)
    compare(roots, args.runs, args.pages, mode="edit")
    edit_split()
