"""Retention on SQLite: what `[store] keep_versions`, `keep_events` and `keep_deliveries` let go,
counted (`dry_run`) or deleted in small transactions. Owns `prune_state`; each other table is
pruned by its owner module.

Events go only as a prefix of the seq order, and only when every sink is done with them
(delivered or dead): the newest pruned seq is recorded (`prune_state.events_pruned_through`)
*before* anything is deleted, in the transaction that chooses it, so the pull API tells a
reader whose cursor is behind it "gone, restart from N" instead of silently skipping. The
deleting is then done `Policy.batch` rows (500) per transaction, each table by its owner:
attempts, deliveries, events, versions (each before what it references), so the daemon's
writers never wait long behind a prune of a large backlog; a delivery a replay queued again
meanwhile keeps its row, its attempts and its event. This module decides nothing about when
to prune; its callers do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from syncd.storage.sqlite import entries, events, outbox
from syncd.storage.sqlite.db import Db

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import Policy, PruneReport


def pruned_through(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT events_pruned_through FROM prune_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def prune(db: Db, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
    from syncd.storage.reports import PruneReport

    delivered_before = (
        now - timedelta(seconds=policy.keep_deliveries_s)
        if policy.keep_deliveries_s is not None
        else None
    )
    with db.write() as conn:
        through = pruned_through(conn)
        upto = through
        if policy.keep_events_s is not None:
            cutoff = now - timedelta(seconds=policy.keep_events_s)
            upto = max(through, events.done_prefix(conn, cutoff))
        if dry_run:
            deliveries, attempts = outbox.count_prunable(conn, upto, delivered_before)
            versions = entries.count_old_versions(conn, policy.keep_versions, upto)
            return PruneReport(
                versions, events.count_through(conn, upto), deliveries, attempts, upto
            )
        conn.execute(
            "INSERT INTO prune_state (id, events_pruned_through) VALUES (1, ?) ON CONFLICT(id)"
            " DO UPDATE SET events_pruned_through = excluded.events_pruned_through",
            (upto,),
        )
    batch = policy.batch
    attempts = deliveries = 0
    for chunk in _chunks(outbox.prunable(db, upto, delivered_before), batch):
        step = partial(outbox.prune_attempts, delivery_ids=chunk, limit=batch)
        attempts += _drain(db, step, batch)
        with db.write() as conn:
            deliveries += outbox.prune_deliveries(conn, chunk)
    gone = _drain(db, partial(events.prune_batch, upto=upto, limit=batch), batch)
    versions = 0
    for chunk in _chunks(entries.old_versions(db, policy.keep_versions), batch):
        with db.write() as conn:
            versions += entries.prune_versions(conn, chunk)
    return PruneReport(versions, gone, deliveries, attempts, upto)


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _drain(db: Db, step: Callable[[sqlite3.Connection], int], batch: int) -> int:
    """Run `step` (a delete of at most `batch` rows) in a transaction of its own until it
    deletes fewer: then nothing it may delete is left."""
    total = 0
    while True:
        with db.write() as conn:
            n = step(conn)
        total += n
        if n < batch:
            return total
