"""What the HTTP handlers may use: the daemon's health, metrics, store snapshot and reader. Handlers
reach them through the application (`request.app[SERVICES]`), never through globals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from syncd.health import Health
from syncd.metrics import Metrics
from syncd.overview import Overview
from syncd.pull import Bell
from syncd.storage import Reads
from syncd.subscriber import Subscriber


@dataclass
class Services:
    health: Health
    metrics: Metrics
    overview: Callable[[], Awaitable[Overview]]
    status: Callable[[], Awaitable[dict[str, Any]]]  # what `syncd status --json` prints
    events: Callable[[str | None, int], Awaitable[list[dict[str, Any]]]]  # (feed or all, how many)
    summary: Callable[[], Awaitable[str]]  # the one line systemd's STATUS= shows
    reader: Reads | None = None  # the pull API's store reads (syncd.web.api)
    bell: Bell | None = None  # rung when events were committed: wakes long-polls and streams
    websub: Subscriber | None = None  # the WebSub callback routes' (syncd.web.websub)
    # Brings the search index up to date (syncd.indexer): run before a read that searches it.
    index: Callable[[], Awaitable[int]] | None = None


SERVICES = web.AppKey("syncd.services", Services)
