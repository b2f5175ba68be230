"""Benchmark: porter vs unicode61 for the full-text index, on a real store.

Indexes the store's live entries (text as syncd indexes it) into two in-memory FTS5 tables, one
per tokenizer, and prints for each: build time, index size, and hits for a set of queries. The
baseline is unicode61 (exact words). Prints figures, not verdicts.

    .venv/bin/python bench/search_tokenizers.py var/syncd.db
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.plaintext import html_to_text  # noqa: E402

TOKENIZERS = {
    "unicode61": "unicode61 remove_diacritics 2",
    "porter": "porter unicode61 remove_diacritics 2",
}
QUERIES = (
    "robot",
    "robots",
    "deploy",
    "deploying",
    "translate",
    "translation",
    "learn",
    "neural network",
    '"neural networks"',
    "optimization",
    "optimize",
)


def build(rows: list[tuple[str, str, str]], tokenize: str) -> tuple[sqlite3.Connection, float]:
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE t USING fts5(title, summary, content, tokenize='{tokenize}')")
    t0 = time.perf_counter()
    db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    db.execute("INSERT INTO t(t) VALUES ('optimize')")
    db.commit()
    return db, time.perf_counter() - t0


def size(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT SUM(LENGTH(block)) FROM t_data").fetchone()[0])


def main(path: Path) -> None:
    src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    raw = src.execute(
        "SELECT title, summary, content FROM entries WHERE deleted_at IS NULL"
    ).fetchall()
    t0 = time.perf_counter()
    rows = [(html_to_text(a), html_to_text(b), html_to_text(c)) for a, b, c in raw]
    strip_s = time.perf_counter() - t0
    raw_bytes = sum(len((a or "") + (b or "") + (c or "")) for a, b, c in raw)
    text_bytes = sum(len(a + b + c) for a, b, c in rows)
    print(f"{len(rows)} live entries: {raw_bytes / 1e6:.2f} MB markup -> {text_bytes / 1e6:.2f} MB")
    print(f"  text (html_to_text {strip_s * 1000:.0f} ms)")
    built = {name: build(rows, tok) for name, tok in TOKENIZERS.items()}
    base_db, base_s = built["unicode61"]
    base_size = size(base_db)
    for name, (db, secs) in built.items():
        print(
            f"{name:10} build {secs * 1000:6.0f} ms ({secs / base_s:.2f}x)"
            f"  index {size(db) / 1e6:.2f} MB ({size(db) / base_size:.2f}x)"
        )
    print(f"{'query':22} " + " ".join(f"{n:>10}" for n in TOKENIZERS))
    for q in QUERIES:
        counts = [
            db.execute("SELECT COUNT(*) FROM t WHERE t MATCH ?", (q,)).fetchone()[0]
            for db, _ in built.values()
        ]
        print(f"{q:22} " + " ".join(f"{c:>10}" for c in counts))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", type=Path)
    main(ap.parse_args().store)
