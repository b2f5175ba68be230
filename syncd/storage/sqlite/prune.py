"""Retention on SQLite: what `[store] keep_versions`, `keep_events` and `keep_deliveries` let go,
counted (`dry_run`) or deleted, in one transaction. Owns `prune_state`; each other table is
pruned by its owner module.

Events go only as a prefix of the seq order, and only when every sink is done with them
(delivered or dead): the newest pruned seq is recorded (`prune_state.events_pruned_through`), so
the pull API can tell a reader whose cursor fell behind it "gone, restart from N" instead of
silently skipping. This module decides nothing about when to prune; its callers do.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from syncd.storage.sqlite import entries, events, outbox
from syncd.storage.sqlite.db import Db
from syncd.storage.values import Policy, PruneReport


def pruned_through(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT events_pruned_through FROM prune_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def prune(db: Db, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
    with db.write() as conn:
        through = pruned_through(conn)
        upto = through
        if policy.keep_events_s is not None:
            cutoff = now - timedelta(seconds=policy.keep_events_s)
            upto = max(through, events.done_prefix(conn, cutoff))
        delivered_before = (
            now - timedelta(seconds=policy.keep_deliveries_s)
            if policy.keep_deliveries_s is not None
            else None
        )
        # Deliveries first: they reference the events.
        deliveries, attempts = outbox.prune(conn, upto, delivered_before, dry_run=dry_run)
        gone = events.prune_through(conn, upto, dry_run=dry_run)
        versions = entries.prune_versions(conn, policy.keep_versions, upto, dry_run=dry_run)
        if not dry_run:
            conn.execute(
                "INSERT INTO prune_state (id, events_pruned_through) VALUES (1, ?) ON CONFLICT(id)"
                " DO UPDATE SET events_pruned_through = excluded.events_pruned_through",
                (upto,),
            )
    return PruneReport(versions, gone, deliveries, attempts, upto)
