"""`syncd sync` progress: the syncer reports entries walked against openSearch:totalResults,
and the terminal renderer draws one self-overwriting line from it."""

from __future__ import annotations

import io
from pathlib import Path

from syncd.app import build_app
from syncd.cli import TtyProgress
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


def test_tty_line_overwrites_itself() -> None:
    out = io.StringIO()
    bar = TtyProgress(out)
    bar.page("research", 25, 515)
    bar.page("other", 3, None)
    drawn = out.getvalue().split("\r")
    assert drawn[0] == "\x1b[Ksyncing: research 25/515 (4%)"
    assert drawn[1] == "\x1b[Ksyncing: research 25/515 (4%), other 3"
