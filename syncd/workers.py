"""This process as one worker of the store: its id (`host:pid:random`), its heartbeat and the feed
leases it takes (docs/design.md, "Many workers").

Every process that crawls or delivers is a worker, on either backend, so the syncer and the
dispatcher take one code path. The heartbeat writes the worker's row and renews every feed lease
it holds, a third of the lease period at a time: a worker that stops beating (killed, stalled,
cut off) loses its feeds once the period runs out, and any other worker then takes them over.
A worker that starts also retires the workers of its own host whose process is gone (a crash,
SIGKILL), so a restart on the same machine, or the next `syncd sync` on a SQLite file, takes
their feeds and deliveries at once instead of one lease period later. If that judgement is ever
wrong (two containers sharing a host name, not a pid namespace), fencing still refuses the live
one's stale writes; only work is wasted.

What a lease is worth at commit is the store's business (the fencing token); this module only
takes, renews and drops leases. It decides nothing about feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog

from syncd.errors import SyncdError
from syncd.storage import Store
from syncd.storage.values import FeedLease

__all__ = ["Worker", "new_worker_id"]

log = structlog.get_logger("syncd.workers")

Clock = Callable[[], datetime]
BEATS_PER_LEASE = 3  # a lease survives two missed beats (a slow store, a busy loop)


def new_worker_id() -> str:
    """`host:pid:random`: readable in `workers` and logs, and unique even when a pid is reused
    or two containers share a host name."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_here(worker_ids: list[str], host: str) -> list[str]:
    """The workers of `host` whose process no longer exists."""
    dead = []
    for worker in worker_ids:
        parts = worker.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            dead.append(worker)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class Worker:
    def __init__(self, store: Store, clock: Clock, lease_s: float, worker_id: str) -> None:
        self.store = store
        self.clock = clock
        self.lease_s = lease_s
        self.id = worker_id
        self._beating: asyncio.Task[None] | None = None

    def _until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    async def start(self) -> None:
        """Register (the first beat, which must land), retire this host's dead workers, and
        keep beating in the background."""
        now = self.clock()
        await self.store.heartbeat(self.id, now, self._until(now))
        for worker in dead_here(await self.store.worker_ids(), socket.gethostname()):
            log.info("retiring a worker whose process is gone", worker=worker)
            await self.store.retire_worker(worker)
        self._beating = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / BEATS_PER_LEASE)
            now = self.clock()
            try:
                await self.store.heartbeat(self.id, now, self._until(now))
            except SyncdError as e:
                # The leases may run out: crawls then lose them at commit, writing nothing.
                log.error("worker heartbeat not recorded", worker=self.id, error=str(e))

    async def stop(self) -> None:
        """Stop beating and leave: the row goes, the feed leases are dropped for others now."""
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        try:
            await self.store.retire_worker(self.id)
        except SyncdError as e:  # they run out within one lease period instead
            log.error("worker not retired", worker=self.id, error=str(e))

    async def claim(self, limit: int) -> list[FeedLease]:
        """Lease up to `limit` due feeds no other worker holds."""
        now = self.clock()
        return await self.store.claim_feeds(self.id, now, self._until(now), limit)

    async def lease(self, feed_id: int) -> FeedLease | None:
        """Lease one feed, due or not; None while another worker holds it."""
        now = self.clock()
        return await self.store.lease_feed(self.id, feed_id, now, self._until(now))

    async def lease_many(self, feed_ids: Sequence[int]) -> dict[int, FeedLease]:
        """`lease` for many feeds at once (one transaction): the leases taken, by feed id."""
        now = self.clock()
        return await self.store.lease_feeds(self.id, feed_ids, now, self._until(now))

    async def release(self, lease: FeedLease) -> None:
        try:
            await self.store.release_feed(lease)
        except SyncdError as e:  # it runs out within one lease period instead
            log.error("feed lease not released", feed=lease.name, error=str(e))
