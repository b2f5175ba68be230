"""Benchmark: how big the SQLite store of the 515-post backfill is, per table, against the raw
page bytes, before and after content was stored once per version (migration m014).

Both stores come from the real `syncd sync` against the same local feed server (21 pages, 515
posts, the e2e test's feed): "after" runs this tree's syncd; "before" runs the syncd of the
commit just before m014 landed (`--before`, default: found with `git log -S`), extracted with
`git archive` into a temporary directory and put first on PYTHONPATH, so nothing is guessed or
remembered. Sizes are SQLite's own page accounting (the `dbstat` table), indexes counted with
their table; the file itself is the sum, as a backfill frees nothing.

    .venv/bin/python bench/store_size.py [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.feedserver import spawn_feed_server  # noqa: E402
from tests.support.measure import measured_env  # noqa: E402
from tests.support.pages import fetch_pages  # noqa: E402

MIGRATION = "m014_content_once_per_version"
MB = 1e6


def before_revision() -> str:
    """The parent of the commit that added MIGRATION; HEAD while it is not committed yet."""
    found = subprocess.run(
        ["git", "log", "--format=%H", "-S", MIGRATION, "--", "syncd/storage/sqlite/migrations.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return f"{found[-1]}^" if found else "HEAD"


def extract(revision: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", revision, "syncd"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


async def backfill(url: str, directory: Path, pythonpath: Path) -> Path:
    """Run `syncd sync` (the code at `pythonpath`) into a new store; its path."""
    db = directory / "syncd.db"
    (directory / "syncd.toml").write_text(
        f'[store]\npath = "{db}"\n'
        'keep_events = "1s"\nkeep_deliveries = "1s"\nkeep_versions = 1\n'
        "[fetch]\nper_host_rate = 1000\nallow_private_networks = true\n"
        f'[[feeds]]\nname = "bench"\nurl = "{url}"\n'
        f'[[sinks]]\nname = "file"\ntype = "file"\npath = "{directory}/events.jsonl"\n'
    )
    await run_syncd(directory, pythonpath, "sync")
    return db


async def run_syncd(directory: Path, pythonpath: Path, *args: str) -> str:
    """Run `syncd` (the code at `pythonpath`) on the store in `directory`; its output."""
    env = {**measured_env(), "PYTHONPATH": str(pythonpath)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", "--config", str(directory / "syncd.toml"), *args,
        cwd=str(directory), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"syncd {args[0]} failed ({pythonpath}): {err.decode()[-2000:]}")
    return out.decode()


def file_size(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("PRAGMA page_count").fetchone()[0]
            * conn.execute("PRAGMA page_size").fetchone()[0]
        )
    finally:
        conn.close()


def table_sizes(db: Path) -> dict[str, int]:
    """Bytes per table, its indexes (and FTS shadow tables) counted with it."""
    conn = sqlite3.connect(db)
    try:
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
        sizes: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            for suffix in ("_data", "_idx", "_content", "_docsize", "_config"):
                if table.startswith("entries_search") and table.endswith(suffix):
                    table = "entries_search"
            sizes[table] = sizes.get(table, 0) + int(size)
        migrations = {r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")}
    finally:
        conn.close()
    if "entries_search_keys" in sizes:
        sizes["entries_search"] = sizes.get("entries_search", 0) + sizes.pop("entries_search_keys")
    sizes["(has m014)"] = int(MIGRATION in migrations)
    return sizes


async def main(revision: str) -> None:
    async with spawn_feed_server(entries=515) as spawned:
        url = spawned.server.url
        raw = sum(map(len, await fetch_pages(url)))
        with tempfile.TemporaryDirectory() as tmp:
            old_code = Path(tmp) / "before-code"
            old_code.mkdir()
            extract(revision, old_code)
            (Path(tmp) / "before").mkdir()
            (Path(tmp) / "after").mkdir()
            before = table_sizes(await backfill(url, Path(tmp) / "before", old_code))
            db = await backfill(url, Path(tmp) / "after", ROOT)
            after = table_sizes(db)
            # Retention: every event delivered (the file sink), then all of them older than
            # keep_events; what `syncd prune` and `syncd vacuum` leave.
            await asyncio.sleep(1.5)
            pruned = await run_syncd(db.parent, ROOT, "prune")
            kept = table_sizes(db)
            kept.pop("(has m014)")
            unvacuumed = file_size(db)
            vacuumed = await run_syncd(db.parent, ROOT, "vacuum")
            final = file_size(db)
    if before.pop("(has m014)") or not after.pop("(has m014)"):
        raise SystemExit(f"{revision} already stores content once, or this tree does not")
    print(f"515-post backfill, raw page bytes: {raw / MB:.2f} MB (21 pages)")
    print(f"before: syncd at {revision} (whole envelope in every event); after: this tree")
    print(f"{'table':<22}{'before MB':>11}{'after MB':>11}{'after/before':>14}")
    for table in sorted(set(before) | set(after), key=lambda t: -before.get(t, 0)):
        b, a = before.get(table, 0), after.get(table, 0)
        if max(a, b) < 8192:
            continue
        ratio = f"{a / b:.2f}" if b else "new"
        print(f"{table:<22}{b / MB:>11.2f}{a / MB:>11.2f}{ratio:>14}")
    total_b, total_a = sum(before.values()), sum(after.values())
    ratio = f"{total_a / total_b:.2f}"
    print(f"{'store (file)':<22}{total_b / MB:>11.2f}{total_a / MB:>11.2f}{ratio:>14}")
    print(f"store / raw page bytes: before {total_b / raw:.2f}, after {total_a / raw:.2f}")
    print()
    print("retention, after (keep_events = 1s, keep_deliveries = 1s, keep_versions = 1, every")
    print("event delivered to the file sink, then 1.5 s):")
    print(f"  syncd prune: {pruned.strip().replace(chr(10), '; ')}")
    largest = sorted(kept.items(), key=lambda item: -item[1])
    tables = ", ".join(f"{t} {b / MB:.2f}" for t, b in largest if b >= 100_000)
    print(f"  tables after prune: {sum(kept.values()) / MB:.2f} MB ({tables})")
    print(f"  file after prune: {unvacuumed / MB:.2f} MB (freed pages stay until a vacuum)")
    print(f"  syncd vacuum: {vacuumed.strip()}; file {final / MB:.2f} MB")
    print(f"  store / raw page bytes after prune and vacuum: {final / raw:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", help="the revision to compare with (default: before m014)")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    revision = subprocess.run(
        ["git", "rev-parse", "--short", args.before or before_revision()],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    asyncio.run(main(revision))
