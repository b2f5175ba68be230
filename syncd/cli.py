"""The `syncd` command line: a thin click layer over the app (DESIGN §2).

Exit codes: 0 success, 1 operational failure, 2 bad usage or bad config. Every error is one
readable line on stderr; `--verbose` adds the traceback. No business logic lives here.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from syncd.app import build_app, validate_sinks
from syncd.config import Config, load_config
from syncd.daemon import run_daemon
from syncd.errors import ConfigError, SyncdError
from syncd.logs import configure_logging
from syncd.schedule import is_stale
from syncd.store import Store, query_readonly
from syncd.timestamps import from_text

T = TypeVar("T")


class Ctx:
    def __init__(self, config_path: Path, verbose: bool) -> None:
        self.config_path = config_path
        self.verbose = verbose

    def config(self) -> Config:
        return load_config(self.config_path)


def _fail(ctx: Ctx, message: str, code: int) -> None:
    if ctx.verbose:
        traceback.print_exc()
    click.echo(f"syncd: {message}", err=True)
    sys.exit(code)


def _guard(ctx: Ctx, fn: Callable[[], T]) -> T:
    """Turn syncd's errors into one line and the documented exit code."""
    try:
        return fn()
    except ConfigError as e:
        _fail(ctx, f"config error: {e}", 2)
    except SyncdError as e:
        _fail(ctx, str(e), 1)
    except OSError as e:
        _fail(ctx, f"{e.strerror or e}: {e.filename or ''}".rstrip(": "), 1)
    except Exception as e:  # a bug: still one line (and the traceback with --verbose)
        _fail(ctx, f"internal error: {type(e).__name__}: {e} (run with --verbose for details)", 1)
    raise AssertionError("unreachable")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=lambda: os.environ.get("SYNCD_CONFIG", "config/syncd.toml"),
    show_default="$SYNCD_CONFIG or config/syncd.toml",
    help="Configuration file (TOML).",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging and tracebacks on errors.")
@click.version_option(package_name="syncd")
@click.pass_context
def main(click_ctx: click.Context, config_path: Path, verbose: bool) -> None:
    """syncd keeps a SQLite mirror of Atom/RSS feeds and delivers change events to sinks."""
    configure_logging(verbose=verbose)
    click_ctx.obj = Ctx(config_path, verbose)


@main.command()
@click.pass_obj
def run(ctx: Ctx) -> None:
    """Poll feeds on schedule and deliver events until SIGTERM or SIGINT."""
    config = _guard(ctx, ctx.config)
    _guard(ctx, lambda: _run(run_daemon(config, load=ctx.config)))


@main.command()
@click.option("--full", is_flag=True, help="Walk every page of each feed, not just the new ones.")
@click.option("--force", is_flag=True, help="Fetch even feeds that asked to wait or are gone.")
@click.argument("feeds", nargs=-1)
@click.pass_obj
def sync(ctx: Ctx, full: bool, force: bool, feeds: tuple[str, ...]) -> None:
    """Sync all (or the named) feeds once, deliver what is due, and exit."""
    config = _guard(ctx, ctx.config)
    selected = _guard(ctx, lambda: [config.feed(n) for n in feeds] if feeds else None)

    progress = TtyProgress(sys.stderr) if sys.stderr.isatty() else None

    async def once() -> bool:
        async with build_app(config, progress=progress) as app:
            reports = await app.sync_feeds(selected or config.feeds, full=full, force=force)
            await app.deliver_due()
            return all(r.completed for r in reports)

    ok = _guard(ctx, lambda: _run(once()))
    sys.exit(0 if ok else 1)


class TtyProgress:
    """A one-line progress display for `syncd sync` on a terminal: entries walked per feed out
    of openSearch:totalResults. Ends each draw with a carriage return so that the next log line
    simply overwrites it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.feeds: dict[str, tuple[int, int | None]] = {}

    def page(self, feed: str, entries: int, total: int | None) -> None:
        self.feeds[feed] = (entries, total)
        parts = [
            f"{name} {n}/{t} ({100 * n // t}%)" if t else f"{name} {n}"
            for name, (n, t) in self.feeds.items()
        ]
        self.stream.write("\x1b[K" + "syncing: " + ", ".join(parts)[:200] + "\r")
        self.stream.flush()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(ctx: Ctx, as_json: bool) -> None:
    """Per feed: last fetch, outcome, next due, entries, errors. Per sink: delivery states."""
    config = _guard(ctx, ctx.config)

    def collect() -> dict[str, Any]:
        store = Store.open(config.store.path)
        try:
            feeds = {f["name"]: f for f in store.feed_summaries()}
            now = datetime.now(UTC)
            sinks = sink_status(config, store, now)
        finally:
            store.close()
        for f in config.feeds:
            if f.name in feeds:
                newest = from_text(feeds[f.name].get("newest_updated"))
                feeds[f.name]["stale"] = is_stale(newest, f.expect_update_within_s, now)
        return {
            "feeds": [
                feeds.get(f.name, {"name": f.name, "url": f.url, "last_outcome": "never synced"})
                for f in config.feeds
            ],
            "sinks": sinks,
        }

    data = _guard(ctx, collect)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo("FEEDS")
    for f in data["feeds"]:
        click.echo(
            f"  {f['name']}: {f.get('last_outcome')} at {f.get('last_fetch_at') or '-'},"
            f" {f.get('entries', 0)} entries, next due {f.get('next_due_at') or 'now'}"
            + (f" ({f['next_due_reason']})," if f.get("next_due_reason") else ",")
            + f" {f.get('consecutive_errors') or 0} consecutive errors"
            + (
                f", {f['hash_only_capped']} muted (hash-only updates over the cap)"
                if f.get("hash_only_capped")
                else ""
            )
            + (f" ({f['last_error']})" if f.get("last_error") else "")
        )
        for note in _freshness_notes(f):
            click.echo(f"    {note}")
    click.echo("SINKS")
    for s in data["sinks"]:
        click.echo(
            f"  {s['name']} ({s['type']}, {describe_sink_state(s)}): {s['pending']} pending,"
            f" {s['failed']} failed, {s['dead']} dead, {s['delivered']} delivered"
        )


def _freshness_notes(f: dict[str, Any]) -> list[str]:
    """The freshness lines under a feed in `status`: its changes query, a full crawl asked for."""
    notes: list[str] = []
    if f.get("changes_error"):
        notes.append(f"changes query off until {f.get('changes_off_until')}: {f['changes_error']}")
    elif f.get("changes_base"):
        notes.append(f"changes query on ({f['changes_base']})")
    if f.get("full_crawl_reason"):
        notes.append(f"full crawl at the next poll: {f['full_crawl_reason']}")
    if f.get("stale"):
        notes.append(f"stale: no entry updated since {f.get('newest_updated')}")
    return notes


@main.command()
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.pass_obj
def query(ctx: Ctx, sql: str, fmt: str) -> None:
    """Run read-only SQL over the store (the database is opened read-only)."""
    config = _guard(ctx, ctx.config)
    cols, rows = _guard(ctx, lambda: query_readonly(config.store.path, sql))
    if fmt == "json":
        click.echo(json.dumps([dict(zip(cols, r, strict=True)) for r in rows], indent=2))
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    else:
        _table(cols, rows)


def _table(cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if v is None else str(v)).replace("\n", " ")[:80] for v in r] for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(cols)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@main.command("check-config")
@click.pass_obj
def check_config(ctx: Ctx) -> None:
    """Validate the configuration and print what syncd would do with it."""
    config = _guard(ctx, ctx.config)
    _guard(ctx, lambda: _run(validate_sinks(config)))
    fc = config.fetch
    click.echo(f"config {config.source}: OK")
    click.echo(f"store: {config.store.path}")
    click.echo(
        f"fetch: timeout {fc.timeout_s:g}s, max body {fc.max_body_bytes} bytes,"
        f" {fc.per_host_rate:g} req/s per host, {fc.concurrency} feeds in flight,"
        f" private networks {'allowed' if fc.allow_private_networks else 'refused'} for"
        " discovered URLs"
    )
    for f in config.feeds:
        click.echo(
            f"feed {f.name}: {f.url} every "
            + (
                f"auto ({f.min_interval_s:g}s..{f.max_interval_s:g}s)"
                if f.interval_auto
                else f"{f.interval_s:g}s"
            )
            + ", full crawl every"
            f" {f.full_sync_every_s:g}s, at most {f.max_pages} pages,"
            f" changes query {f.changes_url or f.changes}, back-off up to {f.max_backoff_s:g}s"
        )
    for s in config.sinks:
        command = s.options.get("command")
        target = (
            s.options.get("url")
            or s.options.get("path")
            or (" ".join(map(str, command)) if isinstance(command, list) else command)
            or "(plugin-defined)"
        )
        click.echo(
            f"sink {s.name} ({s.type}) -> {target}: events {sorted(s.events)}, first sync"
            f" {s.initial}, timeout {s.timeout_s:g}s, {len(s.retry_schedule_s)} retries"
            + (f", {len(s.secrets)} secret(s)" if s.secrets else "")
        )


# The operator's delivery commands live in their own module (DESIGN §2).
from syncd.cli_deliveries import deliveries, describe_sink_state, sink_status, sinks  # noqa: E402

main.add_command(deliveries)
main.add_command(sinks)
