"""`syncd run` as a real process: polls on schedule, delivers continuously, stops cleanly on
SIGTERM and SIGINT with exit code 0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.conftest import db_rows, file_sink, jsonl_so_far, webhook_sink, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import start_syncd
from tests.support.receiver import ReceiverServer


async def wait_until(predicate, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_run_polls_delivers_and_stops_gracefully(
    tmp_path: Path, receiver: ReceiverServer, sig: signal.Signals
) -> None:
    feed = BloggerFeed(30)
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "f", "url": server.url, "interval": "1s"}],
            sinks=[webhook_sink(receiver.url), file_sink(tmp_path)],
        )
        proc = await start_syncd(config, "run")
        try:
            archive = tmp_path / "archive.jsonl"
            # The backfill, file sink only.
            await wait_until(lambda: len(jsonl_so_far(archive)) == 30)
            assert receiver.receiver.requests == []
            new_id = feed.add_entry("Published while the daemon runs")
            events = await receiver.wait_for(1, timeout=20)
            assert events[0]["data"]["entry"]["id"] == new_id
            assert events[0]["type"] == "entry.created"
            await wait_until(lambda: len(jsonl_so_far(archive)) == 31)
            proc.send_signal(sig)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert db_rows(tmp_path / "syncd.db", "SELECT COUNT(*) FROM entries") == [(31,)]
