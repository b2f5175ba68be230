"""Benchmark: the index text of a Blogger page's posts, the lxml.html walk vs the C walk.

Every title, summary and content of the 25 posts of tests/data/google-research-blog-page1 (the
page the speed bench serves 200 times), through `reference` (the former implementation, kept in
tests/test_plaintext.py) and through `syncd.plaintext.html_to_text`, alternating, in one
process. Prints CPU milliseconds per page (median of --rounds) and the ratio, never verdicts.

    .venv/bin/python bench/plaintext.py [--rounds 9] [--reps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.parse import parse_page  # noqa: E402
from syncd.plaintext import html_to_text  # noqa: E402
from tests.test_plaintext import reference  # noqa: E402

PAGE = ROOT / "tests" / "data" / "google-research-blog-page1.atom.xml"


def cpu_ms(fn: Callable[[str | None], str], fields: Sequence[str | None], reps: int) -> float:
    """CPU milliseconds for one pass over `fields`, averaged over `reps` passes."""
    start = time.process_time()
    for _ in range(reps):
        for field in fields:
            fn(field)
    return (time.process_time() - start) * 1000 / reps


def main(rounds: int, reps: int) -> None:
    page = parse_page(PAGE.read_bytes(), url="https://x.test/feed", headers={})
    fields = [f for e in page.entries for f in (e.title, e.summary, e.content)]
    assert [html_to_text(f) for f in fields] == [reference(f) for f in fields]
    old: list[float] = []
    new: list[float] = []
    for _ in range(rounds):
        old.append(cpu_ms(reference, fields, reps))
        new.append(cpu_ms(html_to_text, fields, reps))
    size = sum(len(f or "") for f in fields)
    print(f"{len(page.entries)} posts, {len(fields)} fields, {size:,} characters of markup")
    print(f"CPU ms per page, median of {rounds} rounds of {reps} passes")
    o, n = statistics.median(old), statistics.median(new)
    print(f"lxml.html walk (before) {o:7.2f}")
    print(f"C walk (after)          {n:7.2f}   {o / n:.2f}x faster")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    main(args.rounds, args.reps)
