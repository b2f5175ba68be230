"""The daemon's periodic prune: every `[store] prune_interval`, the first time shortly after the
start, let go of what the `[store] keep_*` settings allow (`Store.prune`).

It logs and reports (to an observer: the metrics) what each run removed. It decides nothing
about *what* may go; that is the store's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from syncd.config import StoreConfig
from syncd.errors import SyncdError
from syncd.storage import Store

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import Policy, PruneReport

log = structlog.get_logger("syncd.housekeeping")

# The first prune waits this long after the start (or one interval, if shorter): a restart is
# busy with overdue polls and a crashed run's deliveries, and nothing is urgent about retention.
FIRST_PRUNE_AFTER_S = 60.0


def retention_policy(store: StoreConfig) -> Policy:
    """What the `[store] keep_*` settings let go."""
    from syncd.storage.reports import Policy

    return Policy(store.keep_versions, store.keep_events_s, store.keep_deliveries_s)


class PruneObserver(Protocol):
    def pruned(self, report: PruneReport, seconds: float) -> None: ...


@dataclass
class Housekeeping:
    """The daemon's periodic prune of old versions, events and deliveries (the store's
    retention policy)."""

    store: Store
    policy: Callable[[], Policy]  # read at each run: a reload's new keep_* apply from then on
    interval_s: float
    clock: Callable[[], datetime]
    observer: PruneObserver | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Prune every `interval_s` until `stop` is set; never, if the interval is 0."""
        if self.interval_s <= 0:
            return
        wait = min(FIRST_PRUNE_AFTER_S, self.interval_s)
        while not await stopped_within(stop, wait):
            await self.prune_once()
            wait = self.interval_s

    async def prune_once(self) -> PruneReport | None:
        """One run; None if the policy keeps everything. A store error is a log line; the next
        run tries again."""
        from syncd.storage.reports import Policy, PruneReport

        policy = self.policy()
        if policy == Policy():  # keeps everything
            return None
        started = time.perf_counter()
        total = PruneReport(0, 0, 0, 0, 0)
        try:
            total = await self.store.prune(policy, self.clock(), dry_run=False)
        except SyncdError as e:
            log.error("prune failed; the next run tries again", error=str(e))
        except Exception:  # a bug must not end the daemon's pruning silently
            log.exception("prune crashed; the next run tries again")
        seconds = time.perf_counter() - started
        if total.versions or total.events or total.deliveries or total.attempts:
            log.info("pruned", **total.as_dict(), ms=round(seconds * 1000))
        if self.observer is not None:
            self.observer.pruned(total, seconds)
        return total


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stop`; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
