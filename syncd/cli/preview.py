"""`syncd preview URL`: a feed fetched and parsed as a sync would, and what syncd would do with
it. Nothing is stored: no database is opened, let alone created."""

from __future__ import annotations

import asyncio

import click

from syncd.app import build_reader
from syncd.cli.common import Ctx, json_option, pass_ctx
from syncd.cli.errors import CliError
from syncd.cli.output import echo_json, short
from syncd.config import Config
from syncd.preview import Preview, preview_feed
from syncd.timestamps import to_text

__all__ = ["preview"]


@click.command()
@click.argument("url")
@click.option(
    "--pages",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Follow next links for up to this many pages.",
)
@click.option(
    "--entries",
    "shown",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Entries shown per page (--json shows all).",
)
@json_option
@pass_ctx
def preview(ctx: Ctx, url: str, pages: int, shown: int, as_json: bool) -> None:
    """Fetch and parse the feed at URL without storing anything: its entries, next links,
    validators, hub, which parser read it, and what a sync would do. The config's [fetch] and
    [defaults] apply (a configured feed's own options, if URL is one). Exit 1 if the first page
    cannot be fetched or parsed."""
    config = ctx.config()
    result = asyncio.run(_preview(config, url, pages))
    if as_json:
        echo_json(result.as_dict())
    else:
        _show(result, shown)
    if not result.pages:
        raise CliError(result.error or "nothing fetched")


async def _preview(config: Config, url: str, pages: int) -> Preview:
    async with build_reader(config) as reader:
        return await preview_feed(
            url,
            fetcher=reader.fetcher,
            parser=reader.parser,
            feed=config.feed_at(url),
            clock=reader.clock,
            pages=pages,
        )


def _show(result: Preview, shown: int) -> None:
    for i, p in enumerate(result.pages, 1):
        page = p.page
        click.echo(f"page {i}: {p.final_url}")
        click.echo(
            f"  {p.status} {p.content_type or '-'}, {p.bytes} bytes in {p.elapsed_ms:.0f} ms;"
            f" ETag {p.etag or '-'}; Last-Modified {p.last_modified or '-'}"
        )
        path = p.parse_path + (f" (fast path declined: {p.declined})" if p.declined else "")
        click.echo(
            f"  parsed by {path}: {page.feed_title or '(untitled)'},"
            f" {len(page.entries)} entries"
            + (f" of {page.total_results}" if page.total_results else "")
        )
        for e in page.entries[:shown]:
            updated = to_text(e.updated) or "-"
            click.echo(f"    {updated}  {e.entry_id}  {short(e.title, 60)}")
        if len(page.entries) > shown:
            click.echo(f"    … {len(page.entries) - shown} more")
        for label, value in (("next", page.next_url), ("prev-archive", page.prev_archive_url)):
            if value:
                click.echo(f"  {label}: {value}")
        for w in page.warnings:
            click.echo(f"  warning: {w}")
    if result.hub or result.self_url:
        click.echo(f"hub: {result.hub or '-'}; self: {result.self_url or '-'}")
    if result.error:
        click.echo(f"failed: {result.error}")
    if result.plan:
        click.echo("syncd would:")
        for line in result.plan:
            click.echo(f"  - {line}")
