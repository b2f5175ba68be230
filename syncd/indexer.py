"""The search index's catch-up. A page's write transaction only queues the entries whose index
row it left stale (`search_pending`); this module decides *when* the store brings them into the
index (`Store.index_pending`, a batch per transaction): in the daemon, continuously in the
background; before anything reads the index (`syncd search`, the pull API's `q`, `syncd
datasette`); and on request (`syncd index`). `syncd sync` leaves the queue for them.

It owns no table and writes nothing itself: the storage backends do, each the only writer of its
index. A batch is idempotent and crash-safe there; here, only the pacing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from syncd.errors import SyncdError
from syncd.housekeeping import stopped_within
from syncd.storage import Store

log = structlog.get_logger("syncd.indexer")

# Entries per transaction. On SQLite a batch of 100 holds the write lock ~10-15 ms (the
# tokenising; the markup is stripped before), so a page commit waits no longer than that; 25 or
# 50 cost 15-20 % more CPU per entry, 500 held the lock 80-170 ms (docs/design.md).
BATCH = 100
# How often the daemon looks at an empty queue: new pages queue entries all the time, and
# search results may lag that much behind the daemon's commits.
IDLE_S = 1.0


class IndexObserver(Protocol):
    def indexed(self, entries: int, seconds: float) -> None: ...


async def catch_up(store: Store, batch: int = BATCH) -> int:
    """For a command that is not the daemon: index everything queued now, a batch per
    transaction; how many entries were taken. On PostgreSQL, rows another worker holds are left
    to it (they land when it commits)."""
    return await Indexer(store, batch).catch_up()


@dataclass
class Indexer:
    """The daemon's indexer: one per process; its catch-ups (background and on demand) take
    turns, so two never read the same batch."""

    store: Store
    batch: int = BATCH
    idle_s: float = IDLE_S
    observer: IndexObserver | None = None
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: index a batch at a time while entries wait (yielding to the event
        loop between batches), else look again every `idle_s`. A store error is a log line and
        a retry after `idle_s`, and so is an unexpected exception (logged with its traceback): the
        queue keeps what failed."""
        while not stop.is_set():
            try:
                taken = await self.once()
            except SyncdError as e:
                log.error("search indexing failed; retrying", error=str(e))
                taken = 0
            except Exception:  # a bug must not end indexing silently for the daemon's lifetime
                log.exception("search indexing crashed; retrying")
                taken = 0
            if taken < self.batch and await stopped_within(stop, self.idle_s):
                return
            await asyncio.sleep(0)  # crawls and deliveries get the loop between batches

    async def once(self) -> int:
        """One batch; how many entries it took."""
        async with self._turn:
            started = time.perf_counter()
            taken = await self.store.index_pending(self.batch)
            if taken and self.observer is not None:
                self.observer.indexed(taken, time.perf_counter() - started)
            return taken

    async def catch_up(self) -> int:
        """Everything queued now (a reader of the index is about to ask); how many entries."""
        total = 0
        while (taken := await self.once()) >= self.batch:
            total += taken
        return total + taken
