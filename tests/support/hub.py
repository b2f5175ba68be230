"""A local WebSub hub (W3C WebSub §5-§7) for tests: takes subscription requests, verifies the
subscriber's intent with a GET and a random challenge, and distributes content signed with the
subscription's secret (or deliberately tampered, or to a callback of the test's choosing)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class HubSubscription:
    callback: str
    topic: str
    secret: str | None
    lease_seconds: int | None
    verified: bool = False
    verify_status: int | None = None


@dataclass
class Hub:
    requests: list[dict[str, str]] = field(default_factory=list)
    subscriptions: dict[tuple[str, str], HubSubscription] = field(default_factory=dict)
    deny: str | None = None  # a reason: every subscription is denied with it
    session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
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
            self.subscriptions[(sub.callback, sub.topic)] = sub

    async def verify_as(self, callback: str, **params: str) -> tuple[int, str]:
        """A verification GET of the test's own making (a forged or mismatched one)."""
        assert self.session is not None
        async with self.session.get(callback, params=params) as r:
            return r.status, await r.text()

    async def publish(
        self, topic: str, body: bytes, *, method: str = "sha256", tamper: bool = False
    ) -> list[int]:
        """Distribute `body` to every verified subscriber of `topic`; their statuses."""
        statuses = []
        for sub in list(self.subscriptions.values()):
            if sub.topic == topic:
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
