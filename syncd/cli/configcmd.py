"""`syncd check-config` (validate, build every sink, say what would happen) and `syncd
config-schema` (the file's JSON Schema, for editors and CI)."""

from __future__ import annotations

import asyncio
import json

import click

from syncd.app import validate_sinks
from syncd.cli.common import Ctx, pass_ctx
from syncd.config import config_schema as schema_of_config

__all__ = ["check_config", "config_schema"]


@click.command("check-config")
@pass_ctx
def check_config(ctx: Ctx) -> None:
    """Validate the configuration (secrets included) and print what syncd would do with it."""
    config = ctx.config()
    asyncio.run(validate_sinks(config))
    fc = config.fetch
    click.echo(f"config {config.source}: OK")
    click.echo(f"store: {config.store.where}")
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
            + (f", tags {', '.join(f.tags)}" if f.tags else "")
            + (f" (from {f.opml})" if f.opml else "")
        )
    for s in config.sinks:
        click.echo(
            f"sink {s.name} ({s.type}) -> {s.target()}: events {sorted(s.events)}, first sync"
            f" {s.initial}, timeout {s.timeout_s:g}s, {len(s.retry_schedule_s)} retries"
        )


@click.command("config-schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration file (TOML, as JSON), installed sink plugins'
    types included; a plugin that fails to load is named on stderr and left out."""
    problems: list[str] = []
    schema = schema_of_config(problems=problems)
    for line in problems:
        click.echo(f"warning: {line}", err=True)
    click.echo(json.dumps(schema, indent=2))
