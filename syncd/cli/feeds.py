"""`syncd feeds`: the configured feeds (list) and the subscription list as OPML (export).
Read-only: a missing database only means no feed was synced yet."""

from __future__ import annotations

from pathlib import Path

import click

from syncd.app import system_clock
from syncd.cli.common import Ctx, json_option, pass_ctx, reading_if_present, tag_option
from syncd.cli.errors import UsageFailure
from syncd.cli.output import echo_json, short_time, table
from syncd.opml import ExportedFeed, write_opml
from syncd.status import feed_list

__all__ = ["feeds"]


@click.group()
def feeds() -> None:
    """The configured feeds: list them, export them as OPML."""


@feeds.command("list")
@tag_option
@json_option
@pass_ctx
def feeds_list(ctx: Ctx, tags: tuple[str, ...], as_json: bool) -> None:
    """Each configured feed: URL, tags, interval, where it is configured, last sync."""
    config = ctx.config()
    selected = ctx.feeds(tags)
    data = reading_if_present(config, lambda store: feed_list(selected, store))
    if as_json:
        echo_json(data)
        return
    table(
        ["FEED", "URL", "TAGS", "INTERVAL", "SOURCE", "LAST SYNC", "OUTCOME", "ENTRIES"],
        [
            (
                f["name"],
                f["url"],
                ",".join(f["tags"]),
                f["interval"] if f["interval"] == "auto" else f"{f['interval']:g}s",
                f["source"] if f["opml"] is None else f"opml ({Path(f['opml']).name})",
                short_time(f["last_fetch_at"]),
                f["last_outcome"],
                f["entries"],
            )
            for f in data
        ],
    )


@feeds.command("export")
@click.option("--opml", "as_opml", is_flag=True, help="As an OPML 2.0 subscription list.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    help="Write to this file instead of stdout.",
)
@tag_option
@pass_ctx
def feeds_export(ctx: Ctx, as_opml: bool, output: Path | None, tags: tuple[str, ...]) -> None:
    """Export the configured feeds (tags as folders) for another reader, or for
    `[[feeds_from]]`: the list reads back to the same names, URLs and tags."""
    if not as_opml:
        raise UsageFailure("choose a format: --opml (the only one so far)")
    config = ctx.config()
    selected = ctx.feeds(tags)
    rows = reading_if_present(config, lambda store: feed_list(selected, store))
    document = write_opml(
        (ExportedFeed(f["name"], f["url"], f["title"], f["tags"]) for f in rows),
        title=f"syncd feeds ({config.source})",
        now=system_clock(),
    )
    if output is None:
        click.echo(document.decode(), nl=False)
    else:
        output.write_bytes(document)
        click.echo(f"{len(rows)} feeds written to {output}", err=True)
