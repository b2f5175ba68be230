"""The daemon's HTTP server, against the real `syncd run`: /metrics (parsed with
prometheus-client's own parser) follows a local feed and receiver, /healthz turns 503 while the
store cannot be written and recovers, /readyz, and access control beyond the probes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import file_sink, webhook_sink, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import free_port, start_syncd
from tests.support.receiver import ReceiverServer


class Samples:
    def __init__(self, text: str) -> None:
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.values[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, frozenset(labels.items())))

    def names(self) -> set[str]:
        return {name for name, _ in self.values}


@contextlib.asynccontextmanager
async def daemon(config: Path, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await start_syncd(config, "run", stdout=asyncio.subprocess.DEVNULL, env=env)
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in err, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def get(url: str, **headers: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=20)) as r,
    ):
        return r.status, await r.text()


async def eventually(probe: Any, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
    """Await `probe()` until it returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = await probe()
        except aiohttp.ClientConnectionError:
            value = None
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {probe}")
        await asyncio.sleep(0.1)


async def test_metrics_follow_the_feed_and_the_receiver(
    tmp_path: Path, receiver: ReceiverServer
) -> None:
    feed = BloggerFeed(30)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": server.url, "interval": "1s"}],
            sinks=[
                webhook_sink(receiver.url, retry_schedule=["1h"]),
                file_sink(tmp_path),
            ],
            http={"listen": f"127.0.0.1:{port}"},
        )
        async with daemon(config):

            async def scrape() -> Samples:
                status, text = await get(base + "/metrics")
                assert status == 200
                return Samples(text)

            async def after_backfill() -> Samples | None:
                m = await scrape()
                done = m.get("syncd_deliveries_total", sink="archive", outcome="delivered")
                return m if done == 30 else None

            m = await eventually(after_backfill)
            assert m.get("syncd_events_total", type="entry.created") == 30
            assert (m.get("syncd_fetches_total", status_code="200") or 0) >= 1
            assert (m.get("syncd_fetched_bytes_total") or 0) > 10_000
            assert (m.get("syncd_parse_duration_seconds_count") or 0) >= 1
            assert (m.get("syncd_crawls_total", outcome="ok") or 0) >= 1
            assert (m.get("syncd_crawl_pages_count") or 0) >= 1
            assert m.get("syncd_deliveries_pending", sink="archive") == 0
            assert m.get("syncd_deliveries_pending", sink="hook") == 0  # initial: skip
            assert m.get("syncd_sink_paused", sink="hook") == 0
            assert m.get("syncd_store_up") == 1
            assert (m.get("syncd_feed_last_success_timestamp_seconds", feed="blog") or 0) > 0
            assert m.get("syncd_feeds_backing_off") == 0

            # A new entry: one more event, delivered to both sinks.
            feed.add_entry("Published while the daemon runs")

            async def delivered_to_hook() -> Samples | None:
                m = await scrape()
                ok = m.get("syncd_deliveries_total", sink="hook", outcome="delivered") == 1
                return m if ok else None

            m = await eventually(delivered_to_hook)
            assert m.get("syncd_events_total", type="entry.created") == 31
            assert len(receiver.events()) == 1

            # The receiver fails: the next event waits, and its wait shows as delivery lag.
            receiver.receiver.set_default(500)
            feed.add_entry("Published while the receiver is down")

            async def waiting_for_hook() -> Samples | None:
                m = await scrape()
                failed = m.get("syncd_deliveries_total", sink="hook", outcome="failed")
                # The file sink's fsync may end after the receiver's 500: wait for both.
                archived = m.get("syncd_deliveries_pending", sink="archive") == 0
                waiting = m.get("syncd_deliveries_pending", sink="hook")
                return m if failed and waiting and archived else None

            m = await eventually(waiting_for_hook)
            assert m.get("syncd_deliveries_pending", sink="hook") == 1
            assert m.get("syncd_deliveries_pending", sink="archive") == 0
            lag1 = m.get("syncd_delivery_lag_seconds", sink="hook") or 0
            await asyncio.sleep(1.1)
            lag2 = (await scrape()).get("syncd_delivery_lag_seconds", sink="hook") or 0
            assert lag2 > lag1 > 0

            # The feed fails: it goes into back-off.
            feed.set_status(None, 500)

            async def backing_off() -> Samples | None:
                m = await scrape()
                return m if m.get("syncd_feeds_backing_off") == 1 else None

            m = await eventually(backing_off)
            assert (m.get("syncd_fetches_total", status_code="500") or 0) >= 1
            assert (m.get("syncd_crawls_total", outcome="error") or 0) >= 1


async def test_healthz_turns_503_while_the_store_cannot_be_written(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, feeds=[], http={"listen": f"127.0.0.1:{port}"})
    async with daemon(config):

        async def ready() -> bool:
            return (await get(base + "/readyz"))[0] == 200

        await eventually(ready)
        status, body = await get(base + "/healthz")
        assert status == 200, body
        assert '"status": "ok"' in body

        # Another process takes the write lock and keeps it: the store cannot be written.
        blocker = sqlite3.connect(tmp_path / "syncd.db", isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            status, body = await get(base + "/healthz")
            assert status == 503, body
            assert "not writable" in body and "syncd.db" in body
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        status, body = await get(base + "/healthz")
        assert status == 200, body


async def test_everything_but_the_probes_needs_an_allowed_address_and_the_token(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    config = write_config(
        tmp_path, feeds=[], http={"listen": f"127.0.0.1:{port}", "token_file": str(token)}
    )
    async with daemon(config):

        async def up() -> bool:
            return (await get(base + "/readyz"))[0] == 200

        await eventually(up)
        assert (await get(base + "/healthz"))[0] == 200
        assert (await get(base + "/metrics"))[0] == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await get(base + "/metrics", **wrong))[0] == 401
        right = {"Authorization": "Bearer s3cret-token"}
        status, text = await get(base + "/metrics", **right)
        assert status == 200
        assert "syncd_store_up" in Samples(text).names()

    elsewhere = write_config(
        tmp_path, feeds=[], http={"listen": f"127.0.0.1:{port}", "allowed_networks": ["10.0.0.0/8"]}
    )
    async with daemon(elsewhere):
        await eventually(up)
        assert (await get(base + "/healthz"))[0] == 200
        status, body = await get(base + "/metrics")
        assert status == 403
        assert "127.0.0.1 is not in http.allowed_networks" in body


async def test_http_off_and_a_busy_port_refused_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path, feeds=[], http={"listen": f"127.0.0.1:{port}"})
        proc = await start_syncd(config, "run")
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if not line.startswith("{")]
    assert lines == [
        f"syncd: cannot listen on 127.0.0.1:{port} (http.listen): Address already in use"
    ]

    off = write_config(tmp_path, feeds=[], http={"listen": ""})
    async with daemon(off) as proc:
        assert proc.stderr is not None
        started = json.loads(await asyncio.wait_for(_log_line(proc, "syncd started"), 30))
    assert started["http"] == "off"


async def _log_line(proc: asyncio.subprocess.Process, event: str) -> str:
    assert proc.stderr is not None
    while True:
        line = (await proc.stderr.readline()).decode()
        if not line:
            raise AssertionError(f"no {event!r} log line")
        if f'"event": "{event}"' in line:
            return line
