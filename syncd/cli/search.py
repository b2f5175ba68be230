"""`syncd search`: full-text search over the live entries, best first, with snippets."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from syncd.cli.common import Ctx, json_option, pass_ctx, reading
from syncd.cli.errors import UsageFailure
from syncd.cli.index import caught_up
from syncd.cli.output import echo_json, short_time
from syncd.errors import SearchQueryError
from syncd.since import parse_since
from syncd.storage import Store
from syncd.storage.reports import Hit, SearchQuery

__all__ = ["search"]


@click.command("search")
@click.argument("query")
@click.option("--feed", metavar="NAME", help="Only this feed's entries.")
@click.option(
    "--since",
    metavar="TIME",
    help="Only entries published since: a duration ago (7d) or a date/time (UTC).",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
@pass_ctx
def search(
    ctx: Ctx, query: str, feed: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """Search titles, summaries and content (FTS5 syntax: words, "a phrase", a AND b, a OR b,
    NOT c, pre*, title:word). Matches are marked [like this]. Indexes what waits first."""
    since_dt = None
    if since is not None:
        try:
            since_dt = parse_since(since, datetime.now(UTC))
        except ValueError as e:
            raise UsageFailure(f"--since: {e}") from None
    try:
        wanted = SearchQuery(query, feed=feed, since=since_dt, limit=limit)
        hits = reading(ctx.config(), lambda store: _search(store, wanted))
    except SearchQueryError as e:
        raise UsageFailure(str(e)) from None
    if as_json:
        echo_json([h.as_dict() for h in hits])
        return
    for h in hits:
        click.echo(f"{short_time(h.published)}  {h.feed}  {h.title or '(untitled)'}")
        click.echo(f"    {h.snippet}")
        if h.link:
            click.echo(f"    {h.link}")
    if not hits:
        click.echo("no matches", err=True)


async def _search(store: Store, wanted: SearchQuery) -> list[Hit]:
    # The index first takes in what `syncd sync` (or a daemon not caught up yet) left queued.
    await caught_up(store)
    return await store.search(wanted)
