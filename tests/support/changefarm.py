"""Many small feeds on one local server, for tests where several daemons share the work: a
`ChangeFarm` model (N single-page Atom feeds, each an `fh:complete` document, so a dropped entry is
a deletion at the next poll) with random edits, additions and deletions, the true change set
they make (`Change`), and a server that logs every request with the worker that made it (its
User-Agent) and catches two requests for one feed in flight at once (`overlaps`).

The server answers a matching `If-None-Match` with 304 and holds every answer `delay` seconds,
so polls of one feed by two workers at nearly the same time overlap and are seen. It decides
nothing about syncd; tests judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from aiohttp import web

from tests.support.feedserver import run_on_loopback

ChangeKind = Literal["entry.created", "entry.updated", "entry.deleted"]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_FEED_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0">'
    "<id>urn:farm:{feed}</id><title>{feed}</title><updated>{updated}</updated><fh:complete/>"
)
_ENTRY = (
    "<entry><id>{id}</id><title>{title}</title><updated>{updated}</updated>"
    '<link rel="alternate" href="http://farm.test/{id}"/><content>{feed} post {n}, version'
    " {version}</content></entry>"
)


@dataclass(frozen=True)
class Change:
    """One change a feed made, as the events must report it: (feed, entry, kind, version)."""

    feed: str
    entry_id: str
    kind: ChangeKind
    version: int


@dataclass
class FarmEntry:
    entry_id: str
    n: int
    version: int = 0

    def title(self, feed: str) -> str:
        return title_of(feed, self.n, self.version)


def title_of(feed: str, n: int, version: int) -> str:
    return f"{feed} post {n} v{version}"


def version_of(title: str) -> int:
    """The version a title carries (`… v3` -> 3)."""
    return int(title.rsplit(" v", 1)[1])


@dataclass
class FarmFeed:
    name: str
    entries: dict[str, FarmEntry] = field(default_factory=dict)
    generation: int = 0  # bumped by every change: the ETag
    added: int = 0

    def etag(self) -> str:
        return f'"{self.name}-{self.generation}"'

    def render(self) -> bytes:
        updated = _stamp(self.generation)
        parts = [_FEED_HEAD.format(feed=self.name, updated=updated)]
        for e in sorted(self.entries.values(), key=lambda e: -e.n):
            parts.append(
                _ENTRY.format(
                    id=e.entry_id, title=e.title(self.name), updated=_stamp(e.version),
                    feed=self.name, n=e.n, version=e.version,
                )
            )  # fmt: skip
        parts.append("</feed>")
        return "".join(parts).encode()


def _stamp(seconds: int) -> str:
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class ChangeFarm:
    """`count` feeds named f000, f001, … with `per_feed` entries each at first."""

    def __init__(self, count: int, per_feed: int = 2) -> None:
        self.feeds = {f"f{i:03d}": FarmFeed(f"f{i:03d}") for i in range(count)}
        self.changes: list[Change] = []
        for feed in self.feeds.values():
            for _ in range(per_feed):
                self._add(feed)

    def _add(self, feed: FarmFeed) -> FarmEntry:
        feed.added += 1
        entry = FarmEntry(f"urn:farm:{feed.name}:{feed.added}", feed.added)
        feed.entries[entry.entry_id] = entry
        self.changes.append(Change(feed.name, entry.entry_id, "entry.created", 0))
        return entry

    def mutate(self, name: str, rng: random.Random) -> Change:
        """One random change to the feed: an edit (most often), a new post, or a deletion (never
        of its last post)."""
        feed = self.feeds[name]
        roll = rng.random()
        if roll < 0.2:
            self._add(feed)
        elif roll < 0.35 and len(feed.entries) > 1:
            entry = feed.entries.pop(rng.choice(sorted(feed.entries)))
            self.changes.append(Change(name, entry.entry_id, "entry.deleted", entry.version))
        else:
            entry = feed.entries[rng.choice(sorted(feed.entries))]
            entry.version += 1
            self.changes.append(Change(name, entry.entry_id, "entry.updated", entry.version))
        feed.generation += 1
        return self.changes[-1]

    def state(self, name: str) -> dict[str, int]:
        """The feed's live entries and their versions."""
        return {e.entry_id: e.version for e in self.feeds[name].entries.values()}


@dataclass
class Request:
    feed: str
    agent: str
    status: int
    started: float
    ended: float


@dataclass
class Overlap:
    feed: str
    agents: tuple[str, ...]
    at: float


@dataclass
class ChangeFarmServer:
    farm: ChangeFarm
    delay: float
    port: int = 0
    log: list[Request] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    in_flight: dict[str, list[str]] = field(default_factory=dict)

    def url(self, feed: str) -> str:
        return f"http://127.0.0.1:{self.port}/{feed}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["feed"]
        feed = self.farm.feeds.get(name)
        if feed is None:
            return web.Response(status=404)
        agent = request.headers.get("User-Agent", "")
        loop = asyncio.get_running_loop()
        started = loop.time()
        busy = self.in_flight.setdefault(name, [])
        if busy:
            self.overlaps.append(Overlap(name, (*busy, agent), started))
        busy.append(agent)
        status = 499  # the client went away (a killed worker): the handler is cancelled
        try:
            await asyncio.sleep(self.delay)
            # The answer is the feed as it is when the response is made, not when asked.
            if feed.etag() in request.headers.get("If-None-Match", ""):
                status = 304
                return web.Response(status=304, headers={"ETag": feed.etag()})
            status = 200
            return web.Response(
                body=feed.render(),
                content_type="application/atom+xml",
                headers={"ETag": feed.etag()},
            )
        finally:
            busy.remove(agent)
            self.log.append(Request(name, agent, status, started, loop.time()))


@contextlib.asynccontextmanager
async def serve_change_farm(
    farm: ChangeFarm, *, delay: float = 0.01
) -> AsyncIterator[ChangeFarmServer]:
    """Serve `farm` on loopback in this event loop."""
    server = ChangeFarmServer(farm, delay)

    def make_app(_port: int) -> web.Application:
        app = web.Application()
        app.router.add_get("/{feed}", server.handle)
        return app

    async with run_on_loopback(make_app) as port:
        server.port = port
        yield server
