"""Retention on PostgreSQL: the same rules as syncd.storage.sqlite.prune, in one transaction.
Owns `prune_state`; each other table is pruned by its owner module."""

from __future__ import annotations

from datetime import datetime, timedelta

from syncd.storage.postgres import entries, events, outbox
from syncd.storage.postgres.db import Conn, Pg
from syncd.storage.values import Policy, PruneReport


async def pruned_through(conn: Conn) -> int:
    cur = await conn.execute("SELECT events_pruned_through AS t FROM prune_state WHERE id = 1")
    row = await cur.fetchone()
    return int(row["t"]) if row else 0


async def prune(pg: Pg, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
    async with pg.write() as conn:
        # No event commits while the prefix is chosen and cut: a seq about to become visible
        # below it would be deleted unseen by cursor readers.
        await events.lock(conn)
        through = await pruned_through(conn)
        upto = through
        if policy.keep_events_s is not None:
            cutoff = now - timedelta(seconds=policy.keep_events_s)
            upto = max(through, await events.done_prefix(conn, cutoff))
        delivered_before = (
            now - timedelta(seconds=policy.keep_deliveries_s)
            if policy.keep_deliveries_s is not None
            else None
        )
        deliveries, attempts = await outbox.prune(conn, upto, delivered_before, dry_run=dry_run)
        gone = await events.prune_through(conn, upto, dry_run=dry_run)
        versions = await entries.prune_versions(conn, policy.keep_versions, upto, dry_run=dry_run)
        if not dry_run:
            await conn.execute(
                "INSERT INTO prune_state (id, events_pruned_through) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET"
                " events_pruned_through = excluded.events_pruned_through",
                (upto,),
            )
    return PruneReport(versions, gone, deliveries, attempts, upto)
