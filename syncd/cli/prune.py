"""`syncd prune`: let go of what `[store] keep_versions`, `keep_events` and `keep_deliveries`
allow, or count it (`--dry-run`)."""

from __future__ import annotations

import click

from syncd.app import system_clock
from syncd.cli.common import Ctx, changing, json_option, pass_ctx
from syncd.cli.output import echo_json
from syncd.storage.reports import Policy

__all__ = ["prune_command"]


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@json_option
@pass_ctx
def prune_command(ctx: Ctx, dry_run: bool, as_json: bool) -> None:
    """Delete old entry versions, events every sink is done with, and old delivery records,
    as the [store] keep_* settings allow (unset: keep everything of that kind)."""
    config = ctx.config()
    sc = config.store
    policy = Policy(sc.keep_versions, sc.keep_events_s, sc.keep_deliveries_s)
    report = changing(config, lambda store: store.prune(policy, system_clock(), dry_run=dry_run))
    if as_json:
        echo_json({**report.as_dict(), "dry_run": dry_run})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {report.versions} versions, {report.events} events, {report.deliveries}"
        f" deliveries, {report.attempts} attempts"
    )
    if report.events_through:
        click.echo(f"events up to seq {report.events_through} are gone; pull cursors restart there")
