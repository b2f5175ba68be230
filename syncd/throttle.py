"""Per-host politeness: at most `rate_per_s` requests per second to any one host (DESIGN §3, §4.10).

`HostThrottle` paces one process: asyncio-throttle offers one untyped sliding window with no
notion of keys, so this adapter keeps one `Throttler` per host, created on first use.
`ClusterThrottle` paces every worker of a shared store: each request reserves the host's next slot
in the store (`Store.reserve_host_slot`, one statement) and sleeps until it. Hosts never wait for
each other. This module only paces requests; it does not cap concurrency (the HTTP connector
does), and its only I/O is the reservation it is given.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

import structlog
from asyncio_throttle.throttler import Throttler

from syncd.errors import SyncdError

__all__ = ["ClusterThrottle", "HostThrottle", "Throttle", "window_for_rate"]

log = structlog.get_logger("syncd.throttle")

# Past this many idle-capable windows, forget the idle ones so a long-running daemon that has met
# many hosts (next links may point anywhere) does not keep a throttler for each forever.
_PRUNE_ABOVE = 64


class Throttle(Protocol):
    async def wait(self, host: str) -> None:
        """Return when one more request to `host` is allowed."""
        ...


def _key(host: str) -> str:
    return host.lower().rstrip(".")


class _Window(Protocol):
    """The part of asyncio_throttle.Throttler this module relies on, typed."""

    async def acquire(self) -> None: ...


def window_for_rate(rate_per_s: float) -> tuple[int, float]:
    """Map a rate to asyncio-throttle's (rate_limit, period): >=1/s → (int(rate), 1 s);
    below 1/s → one request per 1/rate seconds (0.25/s → (1, 4.0))."""
    if not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ValueError(f"per-host rate must be a positive number of requests/s, not {rate_per_s}")
    if rate_per_s >= 1:
        return int(rate_per_s), 1.0
    return 1, 1.0 / rate_per_s


class HostThrottle:
    """`await throttle.wait(host)` before each request to `host`."""

    def __init__(self, rate_per_s: float) -> None:
        self._rate_limit, self._period = window_for_rate(rate_per_s)
        # host -> (its window, monotonic time of its last granted request)
        self._windows: dict[str, tuple[_Window, float]] = {}

    def __len__(self) -> int:
        """The number of hosts whose window is currently kept."""
        return len(self._windows)

    @property
    def rate_limit(self) -> int:
        return self._rate_limit

    @property
    def period(self) -> float:
        return self._period

    async def wait(self, host: str) -> None:
        """Return when one more request to `host` fits in its window (immediately if it fits)."""
        key = _key(host)
        entry = self._windows.get(key)
        if entry is None:
            now = time.monotonic()
            self._prune(now)
            window = cast(_Window, Throttler(rate_limit=self._rate_limit, period=self._period))
            # Registered before awaiting, so concurrent first requests to a host share one window.
            self._windows[key] = (window, now)
        else:
            window = entry[0]
        await window.acquire()
        self._windows[key] = (window, time.monotonic())

    def _prune(self, now: float) -> None:
        # A window whose last grant is older than one period is empty, so dropping it changes
        # nothing: a fresh one behaves identically. A window someone is waiting on is full, so its
        # last grant is recent and it is kept.
        if len(self._windows) <= _PRUNE_ABOVE:
            return
        stale = [k for k, (_, last) in self._windows.items() if now - last > self._period]
        for key in stale:
            del self._windows[key]


Reserve = Callable[[str, float], Awaitable[float]]


class ClusterThrottle:
    """`await throttle.wait(host)` before each request to `host`, for all workers together:
    requests to one host are spaced `1 / rate_per_s` apart across the cluster (evenly, where
    HostThrottle allows a burst of `rate` within a second). If the store cannot reserve, this
    process falls back to pacing itself alone, and says so."""

    def __init__(self, rate_per_s: float, reserve: Reserve) -> None:
        window_for_rate(rate_per_s)  # the same check of the rate
        self.gap_s = 1.0 / rate_per_s
        self._reserve = reserve
        self._local = HostThrottle(rate_per_s)

    async def wait(self, host: str) -> None:
        key = _key(host)
        try:
            delay = await self._reserve(key, self.gap_s)
        except SyncdError as e:
            log.warning("host slot not reserved; pacing this worker alone", host=key, error=str(e))
            await self._local.wait(key)
            return
        if delay > 0:
            await asyncio.sleep(delay)
