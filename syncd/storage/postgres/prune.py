"""Retention on PostgreSQL: the same rules as syncd.storage.sqlite.prune (whose docstring says
why the pruned-through seq is recorded first and the deleting done `Policy.batch` rows per
transaction). Owns `prune_state`; each other table is pruned by its owner module.

Every worker of a shared store runs its periodic prune; one at a time does the deleting (a
session advisory lock held across the batches): two prunes deleting the same rows in their own
orders could deadlock each other, and the second finds nothing left to do anyway. The other
waits for the lock, then prunes what remains (usually nothing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from syncd.storage.postgres import entries, events, outbox
from syncd.storage.postgres.db import Conn, Pg

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import Policy, PruneReport


async def pruned_through(conn: Conn) -> int:
    cur = await conn.execute("SELECT events_pruned_through AS t FROM prune_state WHERE id = 1")
    row = await cur.fetchone()
    return int(row["t"]) if row else 0


PRUNE_LOCK = 0x7379E070  # one prune at a time per database


async def prune(pg: Pg, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
    if dry_run:
        return await _prune(pg, policy, now, dry_run=True)
    async with pg.write() as holder:
        # A session lock, outside any transaction of the holder: it spans the batches' own
        # transactions on other connections and ends with this block even on an error.
        await holder.set_autocommit(True)
        try:
            await holder.execute("SELECT pg_advisory_lock(%s)", (PRUNE_LOCK,))
            try:
                return await _prune(pg, policy, now, dry_run=False)
            finally:
                await holder.execute("SELECT pg_advisory_unlock(%s)", (PRUNE_LOCK,))
        finally:
            await holder.set_autocommit(False)


async def _prune(pg: Pg, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
    from syncd.storage.reports import PruneReport

    delivered_before = (
        now - timedelta(seconds=policy.keep_deliveries_s)
        if policy.keep_deliveries_s is not None
        else None
    )
    async with pg.write() as conn:
        # No event commits while the prefix is chosen: a seq about to become visible below it
        # would be deleted unseen by cursor readers. Later events get larger seqs, so once it
        # is chosen (and recorded) the deleting needs the lock no more.
        await events.lock(conn)
        through = await pruned_through(conn)
        upto = through
        if policy.keep_events_s is not None:
            cutoff = now - timedelta(seconds=policy.keep_events_s)
            upto = max(through, await events.done_prefix(conn, cutoff))
        if dry_run:
            deliveries, attempts = await outbox.count_prunable(conn, upto, delivered_before)
            versions = await entries.count_old_versions(conn, policy.keep_versions, upto)
            gone = await events.count_through(conn, upto)
            return PruneReport(versions, gone, deliveries, attempts, upto)
        await conn.execute(
            "INSERT INTO prune_state (id, events_pruned_through) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET"
            " events_pruned_through = excluded.events_pruned_through",
            (upto,),
        )
    batch = policy.batch
    attempts = deliveries = 0
    for chunk in _chunks(await outbox.prunable(pg, upto, delivered_before), batch):
        step = partial(outbox.prune_attempts, delivery_ids=chunk, limit=batch)
        attempts += await _drain(pg, step, batch)
        async with pg.write() as conn:
            deliveries += await outbox.prune_deliveries(conn, chunk)
    gone = await _drain(pg, partial(events.prune_batch, upto=upto, limit=batch), batch)
    versions = 0
    for chunk in _chunks(await entries.old_versions(pg, policy.keep_versions), batch):
        async with pg.write() as conn:
            versions += await entries.prune_versions(conn, chunk)
    return PruneReport(versions, gone, deliveries, attempts, upto)


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


async def _drain(pg: Pg, step: Callable[[Conn], Awaitable[int]], batch: int) -> int:
    """Run `step` (a delete of at most `batch` rows) in a transaction of its own until it
    deletes fewer: then nothing it may delete is left."""
    total = 0
    while True:
        async with pg.write() as conn:
            n = await step(conn)
        total += n
        if n < batch:
            return total
