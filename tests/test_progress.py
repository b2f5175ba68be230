"""`syncd sync` progress: the syncer reports entries walked against openSearch:totalResults,
and the terminal renderer draws a bar per feed from it, gone from the screen when it ends."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from syncd.app import build_app
from syncd.cli.progress import RichProgress
from syncd.config import load_config
from tests.conftest import write_config
from tests.support.feedserver import BloggerFeed, serve_feed


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int | None]] = []

    def page(self, feed: str, entries: int, total: int | None) -> None:
        self.calls.append((feed, entries, total))


async def test_progress_follows_the_crawl(tmp_path: Path) -> None:
    recorder = Recorder()
    async with serve_feed(BloggerFeed(120)) as server:
        config = load_config(write_config(tmp_path, feeds=[{"name": "f", "url": server.url}]))
        async with build_app(config, progress=recorder) as app:
            await app.sync_feeds(config.feeds, full=False, force=False)
            first = list(recorder.calls)
            await app.sync_feeds(config.feeds, full=True, force=False)  # all 304: still counted
    assert [n for _, n, _ in first] == [25, 50, 75, 100, 120]
    assert {t for _, _, t in first} == {120}
    assert recorder.calls[len(first) :][-1][1] == 120


def test_bars_show_each_feed_and_clear_at_the_end() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with RichProgress(console) as bars:
        bars.page("research", 25, 515)
        bars.page("other", 3, None)
        console.print("a log line")
        drawn = out.getvalue()
        assert "research" in drawn and "25/515" in drawn
        assert "other" in drawn
    final = out.getvalue()
    assert "a log line" in final
    # Transient: the last thing written erases the bars (cursor up + erase line).
    assert final.rstrip("\n").endswith("\x1b[2K") or "\x1b[2K" in final[-40:]
