"""`syncd sync`: sync feeds once, deliver what is due, exit. On a terminal it shows a progress
bar per feed (rich), above which log lines scroll and which is cleared when the command ends or
is interrupted (Ctrl-C: exit 130)."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

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
from rich.text import Text

from syncd.app import build_app
from syncd.cli.common import Ctx, pass_ctx, tag_option
from syncd.config import Config, FeedConfig

__all__ = ["RichProgress", "sync"]


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
    """A bar per feed: entries walked out of openSearch:totalResults (a count when the feed does
    not say). While it is shown, whole lines written to `sys.stderr` (log lines) print above it,
    unwrapped (a JSON log line stays one line); it is erased when the sync ends, however it ends.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            redirect_stderr=False,  # rich's own proxy wraps long lines at the terminal width
            redirect_stdout=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._stderr: TextIO | None = None
        self._partial = ""

    def __enter__(self) -> RichProgress:
        self._bars.start()
        self._stderr, sys.stderr = sys.stderr, _LinesAbove(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._stderr is not None:
            sys.stderr, self._stderr = self._stderr, None
        self._bars.stop()
        if self._partial:
            sys.stderr.write(self._partial)
            self._partial = ""

    def print_lines(self, text: str) -> None:
        """Print whole lines above the bars; keep a trailing partial line for later."""
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._console.print(Text.from_ansi(line), soft_wrap=True)

    def page(self, feed: str, entries: int, total: int | None) -> None:
        task = self._tasks.get(feed)
        if task is None:
            task = self._tasks[feed] = self._bars.add_task(feed, total=total)
        self._bars.update(task, completed=entries, total=total)


class _LinesAbove(io.TextIOBase):
    """`sys.stderr` while the bars are shown: what is written goes above them."""

    def __init__(self, progress: RichProgress) -> None:
        self._progress = progress

    def write(self, text: str) -> int:
        self._progress.print_lines(text)
        return len(text)

    def isatty(self) -> bool:
        return True
