"""What the HTTP handlers may use: the daemon's health, metrics and store snapshot. Handlers
reach them through the application (`request.app[SERVICES]`), never through globals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from syncd.health import Health
from syncd.metrics import Metrics
from syncd.overview import Overview


@dataclass
class Services:
    health: Health
    metrics: Metrics
    overview: Callable[[], Overview]


SERVICES = web.AppKey("syncd.services", Services)
