"""The outbox dispatcher: moves due deliveries from the store to their sinks, at least once.

Each sink drains its own queue in `seq` order in its own task, so a slow or failing receiver never
delays another sink. A failed attempt is rescheduled by the pure retry policy and pauses that sink
until its next attempt is due (a receiver that is down is not hammered with the whole backlog).
The dispatcher decides nothing about content; it never drops an event: dead deliveries stay in the
store, visible and replayable.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from syncd.config import SinkConfig
from syncd.model import DeliveryState
from syncd.retry import next_attempt_at
from syncd.sinks.base import Sink
from syncd.store import Store

log = structlog.get_logger("syncd.delivery")

Clock = Callable[[], datetime]
BATCH = 100
IDLE_POLL_S = 1.0


@dataclass
class SinkReport:
    sink: str
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    paused_until: datetime | None = None


@dataclass
class BoundSink:
    """A sink with its configuration and the dispatcher's in-memory view of its health."""

    sink: Sink
    config: SinkConfig
    paused_until: datetime | None = None
    disabled: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        sinks: Sequence[BoundSink],
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.outbox = store.outbox
        self.sinks = list(sinks)
        self.clock = clock
        self.rng = rng
        disabled = self.outbox.disabled_sinks()
        for b in self.sinks:
            b.disabled = b.config.name in disabled

    async def deliver_due(self) -> list[SinkReport]:
        """One pass: every sink concurrently sends what is due now, then returns."""
        return list(await asyncio.gather(*(self._drain(b) for b in self.sinks)))

    def notify(self) -> None:
        """New events were committed: wake the sink loops."""
        for b in self.sinks:
            b.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver continuously until `stop` is set. An in-flight attempt is let finish."""
        await asyncio.gather(*(self._loop(b, stop) for b in self.sinks))

    async def _loop(self, bound: BoundSink, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._drain(bound, stop)
            delay = self._idle_delay(bound)
            bound.wake.clear()
            stop_wait = asyncio.ensure_future(stop.wait())
            wake_wait = asyncio.ensure_future(bound.wake.wait())
            try:
                await asyncio.wait(
                    {stop_wait, wake_wait}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop_wait.cancel()
                wake_wait.cancel()

    def _idle_delay(self, bound: BoundSink) -> float:
        now = self.clock()
        targets = [
            t for t in (bound.paused_until, self.outbox.next_delivery_due(bound.config.name)) if t
        ]
        if not targets:
            return IDLE_POLL_S * 5
        wait = (max(targets) if bound.paused_until else min(targets)) - now
        return min(max(wait.total_seconds(), 0.05), IDLE_POLL_S * 5)

    async def _drain(self, bound: BoundSink, stop: asyncio.Event | None = None) -> SinkReport:
        name = bound.config.name
        report = SinkReport(name)
        if bound.disabled:
            return report
        while True:
            now = self.clock()
            if bound.paused_until and now < bound.paused_until:
                report.paused_until = bound.paused_until
                return report
            due = self.outbox.due_deliveries(name, now, BATCH)
            if not due:
                return report
            for d in due:
                if stop is not None and stop.is_set():
                    return report  # shutting down: the rest stays pending, nothing is lost
                outcome = await bound.sink.send(d.event)
                now = self.clock()
                if outcome.ok:
                    self.outbox.record_attempt(d.id, outcome, now, None)
                    report.delivered += 1
                    bound.paused_until = None
                    continue
                attempts = d.attempts + 1
                retry_at = (
                    next_attempt_at(
                        attempts,
                        bound.config.retry_schedule_s,
                        now,
                        retry_after_s=outcome.retry_after_s,
                        rng=self.rng,
                    )
                    if outcome.retryable
                    else None
                )
                if outcome.disable_sink:
                    # 410 Gone: keep this delivery retryable so nothing is lost on re-enable.
                    retry_at = now
                state = self.outbox.record_attempt(d.id, outcome, now, retry_at)
                log.warning(
                    "delivery failed",
                    sink=name,
                    event_id=d.event.id,
                    seq=d.event.seq,
                    attempt=attempts,
                    status=outcome.status,
                    error=outcome.error,
                    state=str(state),
                    next_attempt=retry_at.isoformat() if retry_at else None,
                )
                if outcome.disable_sink:
                    reason = f"receiver answered {outcome.status}: {outcome.error}"
                    self.outbox.disable_sink(name, reason, now)
                    bound.disabled = True
                    log.error("sink disabled", sink=name, reason=reason)
                    return report
                if state is DeliveryState.DEAD:
                    report.dead += 1
                    continue
                report.failed += 1
                bound.paused_until = retry_at or now + timedelta(seconds=1)
                report.paused_until = bound.paused_until
                return report
