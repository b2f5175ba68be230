"""Headless Chromium driven over the DevTools protocol, for tests that use a page as a person
would: load it, read what it shows, follow a link, on a phone-sized screen.

Launches the Debian `chromium` found on PATH with a fresh profile and everything that talks to
the internet switched off; installs nothing. `Browser.find()` is None without chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab, spoken to over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        ident = self._id
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), 30)
            if msg.get("id") == ident:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.loaded(url)

    async def loaded(self, url: str | None = None) -> None:
        """Wait until the document (at `url`, if given) has loaded."""
        for _ in range(300):
            try:
                state = await self.evaluate("[location.href, document.readyState]")
            except RuntimeError:  # the old document's context went away mid-navigation
                state = ["", "navigating"]
            if state[1] == "complete" and (url is None or state[0] == url):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"page did not load: {url}")


@contextlib.asynccontextmanager
async def chromium_page(
    executable: str, *, width: int = 390, height: int = 844
) -> AsyncIterator[Page]:
    """A tab in a fresh headless Chromium with a phone-sized, touch, 3x screen."""
    # Chromium's helper processes (crashpad, zygote) may still be writing to the profile for a
    # moment after the browser process is gone: a leftover temporary file must not fail a test.
    with tempfile.TemporaryDirectory(
        prefix="syncd-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = await asyncio.create_subprocess_exec(
            executable,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own group, so the teardown reaches every helper
        )
        try:
            port = await _devtools_port(Path(profile) / "DevToolsActivePort")
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = json.loads(await r.text())
                page_target = next(t for t in targets if t["type"] == "page")
                async with session.ws_connect(
                    page_target["webSocketDebuggerUrl"], max_msg_size=0
                ) as ws:
                    page = Page(ws)
                    await page.call(
                        "Emulation.setDeviceMetricsOverride",
                        width=width,
                        height=height,
                        deviceScaleFactor=3,
                        mobile=True,
                    )
                    yield page
        finally:
            await _stop_group(proc)


async def _stop_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the browser's whole process group, SIGKILL it after 10 s, and reap the browser."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def _devtools_port(path: Path) -> int:
    for _ in range(600):  # Chromium writes the port it picked once it listens
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int((await asyncio.to_thread(path.read_text)).splitlines()[0])
        await asyncio.sleep(0.05)
    raise AssertionError("chromium did not open its DevTools port")
