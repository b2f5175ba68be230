"""A local WebSub hub (W3C WebSub §5-§7) for tests: takes subscription requests, verifies the
subscriber's intent with a GET and a random challenge, keeps a verified subscription until its
lease ends or it is unsubscribed, and distributes content signed with the subscription's secret
(or deliberately tampered, or to a callback of the test's choosing)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import webhook_sink, write_config


@dataclass
class HubSubscription:
    callback: str
    topic: str
    secret: str | None
    lease_seconds: int | None
    verified: bool = False
    verify_status: int | None = None
    expires: float | None = None  # time.monotonic() when the lease ends

    def live(self) -> bool:
        return self.expires is None or time.monotonic() < self.expires


@dataclass
class Hub:
    requests: list[dict[str, str]] = field(default_factory=list)
    received: list[float] = field(default_factory=list)  # time.monotonic() of each request
    subscriptions: dict[tuple[str, str], HubSubscription] = field(default_factory=dict)
    deny: str | None = None  # a reason: every subscription is denied with it
    session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        self.received.append(time.monotonic())
        callback, topic = form.get("hub.callback", ""), form.get("hub.topic", "")
        if not callback or not topic or form.get("hub.mode") not in ("subscribe", "unsubscribe"):
            return web.Response(status=400, text="hub.callback, hub.topic and hub.mode needed")
        lease = form.get("hub.lease_seconds")
        sub = HubSubscription(
            callback, topic, form.get("hub.secret"), int(lease) if lease else None
        )
        task = asyncio.create_task(self._verify(sub, form["hub.mode"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=202)

    async def _verify(self, sub: HubSubscription, mode: str) -> None:
        assert self.session is not None
        if self.deny is not None:
            params = {"hub.mode": "denied", "hub.topic": sub.topic, "hub.reason": self.deny}
            async with self.session.get(sub.callback, params=params) as r:
                sub.verify_status = r.status
            return
        challenge = secrets.token_hex(16)
        params = {"hub.mode": mode, "hub.topic": sub.topic, "hub.challenge": challenge}
        if sub.lease_seconds is not None:
            params["hub.lease_seconds"] = str(sub.lease_seconds)
        async with self.session.get(sub.callback, params=params) as r:
            sub.verify_status = r.status
            sub.verified = r.status == 200 and await r.text() == challenge
        if sub.verified and mode == "subscribe":
            if sub.lease_seconds is not None:
                sub.expires = time.monotonic() + sub.lease_seconds
            self.subscriptions[(sub.callback, sub.topic)] = sub
        elif sub.verified:
            self.subscriptions.pop((sub.callback, sub.topic), None)

    async def verify_as(self, callback: str, **params: str) -> tuple[int, str]:
        """A verification GET of the test's own making (a forged or mismatched one)."""
        assert self.session is not None
        async with self.session.get(callback, params=params) as r:
            return r.status, await r.text()

    async def publish(
        self, topic: str, body: bytes, *, method: str = "sha256", tamper: bool = False
    ) -> list[int]:
        """Distribute `body` to every subscriber of `topic` whose lease runs; their statuses."""
        statuses = []
        for sub in list(self.subscriptions.values()):
            if sub.topic == topic and sub.live():
                statuses.append(await self.push(sub, body, method=method, tamper=tamper))
        return statuses

    async def push(
        self,
        sub: HubSubscription,
        body: bytes,
        *,
        method: str = "sha256",
        tamper: bool = False,
        callback: str | None = None,
    ) -> int:
        assert self.session is not None
        headers = {"Content-Type": "application/atom+xml", "Link": f'<{sub.topic}>; rel="self"'}
        if sub.secret is not None:
            signed = hmac.new(sub.secret.encode(), body, getattr(hashlib, method)).hexdigest()
            if tamper:
                signed = signed[:-1] + ("0" if signed[-1] != "0" else "1")
            headers["X-Hub-Signature"] = f"{method}={signed}"
        async with self.session.post(callback or sub.callback, data=body, headers=headers) as r:
            return r.status


@dataclass
class HubServer:
    hub: Hub
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub"


@asynccontextmanager
async def serve_hub() -> AsyncIterator[HubServer]:
    hub = Hub()
    app = web.Application()
    app.router.add_post("/hub", hub.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        hub.session = session
        try:
            yield HubServer(hub, port)
        finally:
            for task in hub._tasks:
                task.cancel()
            await asyncio.gather(*hub._tasks, return_exceptions=True)
            await runner.cleanup()


def websub_config(
    tmp_path: Path,
    port: int,
    feeds: list[dict[str, str | int]],
    hook: str,
    websub: str = "",
    fetch: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
) -> Path:
    """A test config whose daemon listens on `port` and subscribes through any hub."""
    config = write_config(
        tmp_path,
        feeds=feeds,
        sinks=[webhook_sink(hook, initial="skip")],
        fetch=fetch,
        http={"listen": f"127.0.0.1:{port}"},
        store=store,
    )
    with config.open("a") as f:
        f.write(
            f'\n[websub]\npublic_url = "http://127.0.0.1:{port}"\n'
            f"allow_insecure_hubs = true\n{websub}"
        )
    return config


_ENTRY = re.compile(rb"<entry>.*?</entry>", re.S)


def keep_entries(body: bytes, n: int, start: int = 0) -> bytes:
    """The feed document with only `n` of its entries from the `start`-th: what a hub pushes
    (the new or changed ones)."""
    first = _ENTRY.search(body)
    assert first is not None
    return body[: first.start()] + b"".join(_ENTRY.findall(body)[start : start + n]) + b"</feed>"
