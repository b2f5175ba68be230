"""`syncd status`: per feed its last crawl, per sink its deliveries. Read-only: it needs no
secret and never creates a database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from syncd.app import system_clock
from syncd.cli.common import Ctx, json_option, pass_ctx, reading, tag_option
from syncd.cli.output import echo_json, short, short_time
from syncd.status import describe_websub, status_report

__all__ = ["describe_sink_state", "describe_worker", "freshness_notes", "status"]


@click.command()
@tag_option
@json_option
@pass_ctx
def status(ctx: Ctx, tags: tuple[str, ...], as_json: bool) -> None:
    """Per feed: last fetch, outcome, next due, entries, errors. Per sink: delivery states.
    Per worker (`syncd run` process): alive or gone, and the leases it holds."""
    config = ctx.config()
    feeds = ctx.feeds(tags)
    data = reading(config, lambda store: status_report(config, store, system_clock(), feeds))
    if as_json:
        echo_json(data)
        return
    click.echo("FEEDS")
    for f in data["feeds"]:
        click.echo(
            f"  {f['name']}: {f['last_outcome']} at {f.get('last_fetch_at') or '-'},"
            f" {f.get('entries', 0)} entries, next due {f.get('next_due_at') or 'now'}"
            + (f" ({f['next_due_reason']})," if f.get("next_due_reason") else ",")
            + f" {f.get('consecutive_errors') or 0} consecutive errors"
            + (
                f", {f['hash_only_capped']} muted (hash-only updates over the cap)"
                if f.get("hash_only_capped")
                else ""
            )
            + (f" ({f['last_error']})" if f.get("last_error") else "")
            + (f" [{', '.join(f['tags'])}]" if f.get("tags") else "")
        )
        for note in freshness_notes(f):
            click.echo(f"    {note}")
    click.echo("SINKS")
    for s in data["sinks"]:
        click.echo(
            f"  {s['name']} ({s['type']}, {describe_sink_state(s)}): {s['pending']} pending,"
            f" {s['failed']} failed, {s['dead']} dead, {s['delivered']} delivered"
        )
    click.echo("WORKERS")
    for w in data["workers"]:
        click.echo(f"  {describe_worker(w)}")
    if not data["workers"]:
        click.echo("  none: no syncd run works on this store")
    pending = data["search"]["pending"]
    click.echo("SEARCH")
    click.echo(
        f"  {pending} entries waiting for the index (`syncd run` catches up, or `syncd index`)"
        if pending
        else "  index up to date"
    )


def freshness_notes(f: Mapping[str, Any]) -> list[str]:
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
    if f.get("websub"):
        notes.append(f"websub {describe_websub(f['websub'])}")
    return notes


def describe_worker(w: Mapping[str, Any]) -> str:
    """One line for a worker (a `syncd run` process) in `status`."""
    seen = short_time(w["seen_at"])
    if not w["alive"]:
        # Its leases run out on their own; the next worker to start removes its row.
        return f"{w['id']}: GONE, last seen {seen} (expired {short_time(w['expires_at'])})"
    return (
        f"{w['id']}: alive since {short_time(w['started_at'])}, last seen {seen},"
        f" {w['feeds_leased']} feeds leased, {w['deliveries_leased']} deliveries in flight"
    )


def describe_sink_state(s: Mapping[str, Any]) -> str:
    """One phrase for a sink's state, as `status` and `sinks list` print it."""
    if s.get("unconfigured"):
        return "removed from the config: its queue waits, undelivered"
    if s["disabled"]:
        return f"DISABLED: {s['disabled_reason'] or 'by operator'} (syncd sinks enable {s['name']})"
    if s["paused_until"]:
        return f"paused until {short_time(s['paused_until'])}: {short(s['pause_reason'], 80)}"
    return "enabled"
