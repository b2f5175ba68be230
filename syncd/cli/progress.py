"""The progress display of `syncd sync` on a terminal: a rich bar per feed, above which log lines
scroll. Imported only when stderr is a terminal (rich is not free to import)."""

from __future__ import annotations

import io
import sys
from typing import TextIO

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

__all__ = ["RichProgress"]


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

    @classmethod
    def on_stderr(cls) -> RichProgress:
        return cls(Console(file=sys.stderr))

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
