"""A local aiohttp server of many small Atom feeds (`/f/<n>`), for tests and benchmarks of several
workers: each feed has a few entries and a version that `bump` moves (a new entry), an optional
per-feed delay or gate that holds its answers, and a log of every request's start and end, so a
test can tell whether two fetches of one feed overlapped or how requests to one host were spaced.
Nothing here judges; callers do.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Fetch:
    feed: int
    started: float  # time.monotonic() when the request arrived
    ended: float  # … and when its answer was sent


@dataclass
class FeedFarm:
    feeds: int
    entries: int = 3
    delay_s: float = 0.0  # every answer waits this long (a fetch in flight is observable)
    grow: bool = False  # every fetch first adds an entry (each poll has one change)
    versions: dict[int, int] = field(default_factory=dict)
    gates: dict[int, asyncio.Event] = field(default_factory=dict)  # closed: the answer waits
    log: list[Fetch] = field(default_factory=list)
    arrivals: dict[int, list[float]] = field(default_factory=dict)  # feed → arrival times
    url: str = ""

    def feed_url(self, n: int) -> str:
        return f"{self.url}/f/{n}"

    def bump(self, n: int) -> None:
        """One more entry in feed `n`."""
        self.versions[n] = self.versions.get(n, 0) + 1

    def hold(self, n: int) -> asyncio.Event:
        """Answers for feed `n` wait until the returned event is set."""
        gate = self.gates[n] = asyncio.Event()
        return gate

    def document(self, n: int) -> str:
        count = self.entries + self.versions.get(n, 0)
        items = "".join(
            f"<entry><id>urn:farm:{n}:{i}</id><title>Feed {n} post {i}</title>"
            f"<updated>2026-01-01T00:00:{i % 60:02d}Z</updated>"
            f"<link href='http://farm.test/{n}/{i}'/><content>post {i} of feed {n}</content>"
            "</entry>"
            for i in range(count)
        )
        return (
            "<?xml version='1.0' encoding='utf-8'?>"
            "<feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<id>urn:farm:{n}</id><title>Feed {n}</title>"
            f"<updated>2026-01-01T00:00:00Z</updated>{items}</feed>"
        )

    def overlaps(self) -> list[tuple[Fetch, Fetch]]:
        """Pairs of fetches of one feed that were in flight at the same time."""
        found = []
        by_feed: dict[int, list[Fetch]] = {}
        for f in self.log:
            by_feed.setdefault(f.feed, []).append(f)
        for fetches in by_feed.values():
            fetches.sort(key=lambda f: f.started)
            found += [(a, b) for a, b in itertools.pairwise(fetches) if b.started < a.ended]
        return found

    async def _serve(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if self.grow:
            self.bump(n)
        started = time.monotonic()
        self.arrivals.setdefault(n, []).append(started)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        gate = self.gates.get(n)
        if gate is not None:
            await gate.wait()
        body = self.document(n)
        self.log.append(Fetch(n, started, time.monotonic()))
        return web.Response(body=body.encode(), content_type="application/atom+xml")


Route = tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


@asynccontextmanager
async def serve_farm(farm: FeedFarm, extra: Sequence[Route] = ()) -> AsyncIterator[FeedFarm]:
    """The farm on a free port of 127.0.0.1 (its `url` set), with `extra` GET routes."""
    app = web.Application()
    app.router.add_get("/f/{n}", farm._serve)
    for path, handler in extra:
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    farm.url = f"http://127.0.0.1:{port}"
    try:
        yield farm
    finally:
        for gate in farm.gates.values():
            gate.set()
        await runner.cleanup()
