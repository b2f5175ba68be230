"""The two parse paths side by side: equal, declined (and why) or different, plus their speed.

Runs over a generated corpus (tests/support/feedgen.py, hypothesis) and, when given, a directory of
feed documents, e.g. feedparser's own test corpus from its sdist:

    .venv/bin/pip download --no-deps --no-binary :all: feedparser==6.0.14 -d /tmp/fp
    tar xzf /tmp/fp/feedparser-6.0.14.tar.gz -C /tmp/fp
    .venv/bin/python bench/parse_paths.py --corpus /tmp/fp/feedparser-6.0.14/tests/wellformed

Then the seed page: milliseconds per parse on each path (best of --runs). Prints figures only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.parse import parse_page_fast, parse_page_feedparser  # noqa: E402
from tests.support.feedgen import Document, compare_paths, documents  # noqa: E402

SEED = ROOT / "tests" / "data" / "google-research-blog-page1.atom.xml"
URL = "https://example.com/feed"


def tally(outcomes: Counter[str], title: str, differences: list[str]) -> None:
    total = sum(outcomes.values())
    read = outcomes["(equal: read by the fast path)"]
    declined = total - read - outcomes["DIFFERENT"]
    print(f"{title}: {total} documents, {read} equal, {declined} declined,")
    print(f"  {outcomes['DIFFERENT']} different")
    for reason, count in outcomes.most_common():
        print(f"  {count:6d}  {reason}")
    for line in differences[:10]:
        print(f"  DIFFERENT {line}")


def classify(body: bytes, headers: dict[str, str], outcomes: Counter[str], label: str) -> str:
    try:
        reason = compare_paths(body, headers, URL)
    except AssertionError as exc:
        outcomes["DIFFERENT"] += 1
        return f"{label}: {str(exc)[:300]}"
    # Group reasons that name a position or a value.
    key = reason.split(",")[0][:90] if reason else "(equal: read by the fast path)"
    outcomes[key] += 1
    return ""


def generated(count: int) -> None:
    outcomes: Counter[str] = Counter()
    differences: list[str] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(documents())
    def run(doc: Document) -> None:
        problem = classify(doc.body, doc.headers, outcomes, doc.kind)
        if problem:
            differences.append(problem)

    run()
    tally(outcomes, "generated corpus", differences)


def corpus(directory: Path) -> None:
    outcomes: Counter[str] = Counter()
    differences: list[str] = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in (".xml", ".rdf", ".rss", ".atom"):
            problem = classify(path.read_bytes(), {}, outcomes, str(path.relative_to(directory)))
            if problem:
                differences.append(problem)
    tally(outcomes, f"corpus {directory}", differences)


def speed(runs: int) -> None:
    body = SEED.read_bytes()
    headers = {"content-type": "application/atom+xml; charset=UTF-8"}
    for name, parse in (("fast (lxml)", parse_page_fast), ("feedparser", parse_page_feedparser)):
        best = min(_timed(parse, body, headers) for _ in range(runs))
        print(f"seed page ({len(body) // 1000} KB, 25 entries), {name}: {best * 1000:.1f} ms")


def _timed(parse: object, body: bytes, headers: dict[str, str]) -> float:
    assert callable(parse)
    t0 = time.process_time()
    parse(body, url=URL, headers=headers)
    return time.process_time() - t0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generated", type=int, default=2000, help="generated documents (0: none)")
    ap.add_argument("--corpus", type=Path, action="append", default=[], help="a directory")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if args.generated:
        generated(args.generated)
    for directory in args.corpus:
        corpus(directory)
    speed(args.runs)
