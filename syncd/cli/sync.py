"""`syncd sync`: sync feeds once, deliver what is due, exit. On a terminal it shows a progress
bar per feed (`syncd.cli.progress`, imported only then), cleared when the command ends or is
interrupted (Ctrl-C: exit 130)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from syncd.app import build_app
from syncd.cli.common import Ctx, pass_ctx, tag_option
from syncd.config import Config, FeedConfig
from syncd.sync import Progress

__all__ = ["sync"]


@click.command()
@click.option("--full", is_flag=True, help="Walk every page of each feed, not just the new ones.")
@click.option("--force", is_flag=True, help="Fetch even feeds that asked to wait or are gone.")
@tag_option
@click.argument("feeds", nargs=-1)
@pass_ctx
def sync(ctx: Ctx, full: bool, force: bool, tags: tuple[str, ...], feeds: tuple[str, ...]) -> None:
    """Sync all (or the named, or the tagged) feeds once, deliver what is due, and exit."""
    config = ctx.config()
    named = [config.feed(n) for n in feeds]
    selected = list(dict.fromkeys([*named, *ctx.feeds(tags)])) if tags else named
    selected = selected or list(config.feeds)
    with _progress_on_terminal() as progress:
        ok = asyncio.run(_once(config, selected, progress, full=full, force=force))
    if not ok:
        raise click.exceptions.Exit(1)


async def _once(
    config: Config,
    feeds: list[FeedConfig],
    progress: Progress | None,
    *,
    full: bool,
    force: bool,
) -> bool:
    async with build_app(config, progress=progress) as app:
        reports = await app.sync_feeds(feeds, full=full, force=force)
        await app.deliver_due()
        return all(r.completed for r in reports)


@contextmanager
def _progress_on_terminal() -> Iterator[Progress | None]:
    if not sys.stderr.isatty():
        yield None
        return
    from syncd.cli.progress import RichProgress  # rich costs startup time; only a terminal needs it

    with RichProgress.on_stderr() as progress:
        yield progress
