"""`syncd sync`: sync feeds once, deliver what is due, exit. On a terminal it shows a progress
bar per feed (rich), above which log lines scroll and which is cleared when the command ends or
is interrupted (Ctrl-C: exit 130)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from syncd.app import build_app
from syncd.cli.common import Ctx, pass_ctx
from syncd.config import Config, FeedConfig

__all__ = ["RichProgress", "sync"]


@click.command()
@click.option("--full", is_flag=True, help="Walk every page of each feed, not just the new ones.")
@click.option("--force", is_flag=True, help="Fetch even feeds that asked to wait or are gone.")
@click.argument("feeds", nargs=-1)
@pass_ctx
def sync(ctx: Ctx, full: bool, force: bool, feeds: tuple[str, ...]) -> None:
    """Sync all (or the named) feeds once, deliver what is due, and exit."""
    config = ctx.config()
    selected = [config.feed(n) for n in feeds] if feeds else list(config.feeds)
    with _progress_on_terminal() as progress:
        ok = asyncio.run(_once(config, selected, progress, full=full, force=force))
    if not ok:
        raise click.exceptions.Exit(1)


async def _once(
    config: Config,
    feeds: list[FeedConfig],
    progress: RichProgress | None,
    *,
    full: bool,
    force: bool,
) -> bool:
    async with build_app(config, progress=progress) as app:
        reports = await app.sync_feeds(feeds, full=full, force=force)
        await app.deliver_due()
        return all(r.completed for r in reports)


@contextmanager
def _progress_on_terminal() -> Iterator[RichProgress | None]:
    if not sys.stderr.isatty():
        yield None
        return
    with RichProgress(Console(file=sys.stderr)) as progress:
        yield progress


class RichProgress:
    """A bar per feed: entries walked out of openSearch:totalResults (a spinner-less count when
    the feed does not say). While it is shown, anything written to stderr (log lines) prints
    above it; it is removed from the screen when the sync ends, however it ends."""

    def __init__(self, console: Console) -> None:
        self._bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            redirect_stderr=True,
            redirect_stdout=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def page(self, feed: str, entries: int, total: int | None) -> None:
        task = self._tasks.get(feed)
        if task is None:
            task = self._tasks[feed] = self._bars.add_task(feed, total=total)
        self._bars.update(task, completed=entries, total=total)
