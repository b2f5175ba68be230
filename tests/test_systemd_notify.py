"""systemd's notification protocol against the real `syncd run`: a datagram socket set as
$NOTIFY_SOCKET (a path, and an abstract `@` name) receives READY=1 with a STATUS= line, then
WATCHDOG=1 at half of $WATCHDOG_USEC from the running loop, then STOPPING=1 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import start_syncd


class NotifyListener:
    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    async def next(self, timeout: float = 20.0) -> dict[str, str]:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout)
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
        self.messages.append(fields)
        return fields

    async def until(self, key: str, timeout: float = 20.0) -> dict[str, str]:  # noqa: ASYNC109
        while True:
            fields = await self.next(timeout)
            if key in fields:
                return fields

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("kind", ["path", "abstract"])
async def test_ready_watchdog_stopping_in_order(tmp_path: Path, kind: str) -> None:
    address = str(tmp_path / "notify.sock") if kind == "path" else f"@syncd-test-{os.getpid()}"
    listener = NotifyListener(address)
    async with serve_feed(BloggerFeed(5)) as server:
        config = write_config(tmp_path, feeds=[{"name": "blog", "url": server.url}])
        proc = await start_syncd(
            config,
            "run",
            stdout=asyncio.subprocess.DEVNULL,
            env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"},
        )
        try:
            first = await listener.next()
            assert first.get("READY") == "1", first
            assert "1 feeds" in first["STATUS"]
            for _ in range(3):  # every 0.2 s, from the event loop
                assert (await listener.next()) == {"WATCHDOG": "1"}
            proc.send_signal(signal.SIGTERM)
            stopping = await listener.until("STOPPING")
            assert stopping == {"STOPPING": "1"}
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            listener.close()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    kinds = [next(iter(m)) for m in listener.messages]
    assert kinds.index("READY") < kinds.index("WATCHDOG") < kinds.index("STOPPING")
    assert "READY" not in kinds[kinds.index("STOPPING") :]


async def test_no_watchdog_without_watchdog_usec(tmp_path: Path) -> None:
    """Without $WATCHDOG_USEC only READY (and STATUS refreshes) are sent: no WATCHDOG=1."""
    address = str(tmp_path / "notify.sock")
    listener = NotifyListener(address)
    config = write_config(tmp_path, feeds=[])
    proc = await start_syncd(
        config, "run", stdout=asyncio.subprocess.DEVNULL, env={"NOTIFY_SOCKET": address}
    )
    try:
        first = await listener.next()
        assert first.get("READY") == "1"
        proc.send_signal(signal.SIGTERM)
        await listener.until("STOPPING")
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        listener.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert all("WATCHDOG" not in m for m in listener.messages)
