"""lemon24/reader on the benchmark's feeds, as a whole process: run by bench/speed.py --reader.

Runs under the side environment's Python, where reader is installed (never syncd's: the two do
not share dependencies). Adds every URL of URLS_FILE to the reader database DB (if new) and
updates them all once, as `reader`'s own `update` does, with its defaults (one worker), but
without its schedule (`scheduled=False`): every row of the table updates every feed, as syncd's
`sync` polls every feed. Prints nothing; exits non-zero if any feed failed to update.

    .venv-reader/bin/python bench/reader_run.py URLS_FILE DB
"""

from __future__ import annotations

import sys
from pathlib import Path

from reader import make_reader  # type: ignore[import-not-found, unused-ignore]


def main(urls_file: Path, db: Path) -> int:
    reader = make_reader(str(db))
    try:
        for url in urls_file.read_text().split():
            reader.add_feed(url, exist_ok=True)
        failed = 0
        for result in reader.update_feeds_iter(scheduled=False):
            if isinstance(result.value, Exception):
                print(f"{result.url}: {result.value}", file=sys.stderr)
                failed += 1
        return 1 if failed else 0
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
