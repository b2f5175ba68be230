"""A stop sent to syncd's whole process group (systemd's KillMode=control-group, a terminal's
Ctrl-C) reaches the parser workers too. While they parse, that must still be a clean stop: exit 0,
no `parser worker died`, and no failure recorded against the feed being crawled."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import db_rows, file_sink, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import start_syncd


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("whole_group", [True, False], ids=["group", "main-only"])
async def test_a_stop_while_workers_parse_is_clean(
    tmp_path: Path, sig: signal.Signals, whole_group: bool
) -> None:
    # A big first page that is not well-formed: the fast path declines it and feedparser reads it
    # in the worker pool, which starts on this first need and takes most of a second for it.
    feed = BloggerFeed(400, page_size=200)
    feed.set_malformed(1, "broken")
    feed.set_delay(5.0, page=2)  # the crawl is still going when the stop comes
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "f", "url": server.url, "interval": "1h"}],
            sinks=[file_sink(tmp_path)],
        )
        proc = await start_syncd(config, "run", new_session=True)
        try:
            for _ in range(400):
                if any(r.page == 1 and r.status == 200 for r in feed.log):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("page 1 was never fetched")
            await asyncio.sleep(0.5)  # page 1 is with the pool now
            if whole_group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
    log = err.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log and "parser worker died" not in log, log
    assert "InvalidStateError" not in log, log
    rows = db_rows(tmp_path / "syncd.db", "SELECT consecutive_errors, last_error FROM feeds")
    assert rows == [(0, None)], log
