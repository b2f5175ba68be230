"""Is the daemon healthy, is it ready: the checks behind /healthz and /readyz.

Healthy means the event loop keeps its beat (a monitor task measures how late it wakes) and the
store answers a write transaction. The store probe (`Store.probe`) uses its own short-lived
connection in a thread, so a locked or unwritable database makes the answer "unhealthy" within a
second instead of stalling the event loop for the store's busy timeout. Ready means the store is
open and the scheduler has looked at the due feeds once. This module judges; it serves nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

LOOP_BEAT_S = 0.25  # how often the monitor wakes
LOOP_LAG_LIMIT_S = 5.0  # a loop this late (blocked, starved) is not healthy
STORE_PROBE_TIMEOUT_S = 1.0  # a store that cannot start a write within this is not healthy


class LoopMonitor:
    """Measures how late the event loop runs a task that asked to wake every LOOP_BEAT_S."""

    def __init__(self) -> None:
        self.lag_s = 0.0
        self.last_beat = time.monotonic()

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LOOP_BEAT_S)
            self.last_beat = time.monotonic()
            self.lag_s = max(self.last_beat - started - LOOP_BEAT_S, 0.0)

    def problem(self) -> str | None:
        silent = time.monotonic() - self.last_beat
        worst = max(self.lag_s, silent - LOOP_BEAT_S)
        if worst > LOOP_LAG_LIMIT_S:
            return f"event loop {worst:.1f}s late (limit {LOOP_LAG_LIMIT_S:g}s)"
        return None


@dataclass
class HealthReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    loop_lag_s: float = 0.0


StoreProbe = Callable[[float], Awaitable[str | None]]  # Store.probe: why it is unusable, or None


@dataclass
class Health:
    probe: StoreProbe
    monitor: LoopMonitor
    store_open: bool = False
    scheduled: asyncio.Event = field(default_factory=asyncio.Event)

    async def check(self) -> HealthReport:
        reasons = [r for r in (self.monitor.problem(),) if r]
        problem = await self.probe(STORE_PROBE_TIMEOUT_S)
        if problem:
            reasons.append(problem)
        return HealthReport(ok=not reasons, reasons=reasons, loop_lag_s=self.monitor.lag_s)

    def readiness(self) -> list[str]:
        """Why the daemon is not ready yet (empty: ready)."""
        waiting = []
        if not self.store_open:
            waiting.append("store not open")
        if not self.scheduled.is_set():
            waiting.append("first scheduling pass not done")
        return waiting
