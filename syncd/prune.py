"""Retention: what `[store] keep_versions`, `keep_events` and `keep_deliveries` let go, counted
(`--dry-run`) or deleted in one transaction.

Events go only as a prefix of the seq order, and only when every sink is done with them
(delivered or dead): the newest pruned seq is recorded (`prune_state.events_pruned_through`), so
the pull API can tell a reader whose cursor fell behind it "gone, restart from N" instead of
silently skipping. This module decides nothing about when to prune; its callers do.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from syncd.store import Store
from syncd.timestamps import to_text

__all__ = ["Policy", "PruneReport", "prune", "pruned_through"]


@dataclass(frozen=True, slots=True)
class Policy:
    keep_versions: int | None = None  # newest versions kept per entry; None: all
    keep_events_s: float | None = None  # events older than this may go; None: all kept
    keep_deliveries_s: float | None = None  # delivered deliveries older than this may go


@dataclass(frozen=True, slots=True)
class PruneReport:
    versions: int
    events: int
    deliveries: int
    attempts: int
    events_through: int  # events up to this seq are gone (0: none ever were)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_OLD_VERSIONS = """SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY feed_id, entry_id
                   ORDER BY id DESC) AS newer FROM entry_versions) WHERE newer > :keep"""
# The longest prefix of events that are old enough and that no sink still waits for.
_EVENT_PREFIX = """SELECT COALESCE(MIN(seq) - 1, (SELECT MAX(seq) FROM events)) FROM events e
    WHERE e.created_at >= :cutoff OR EXISTS (SELECT 1 FROM deliveries d
      WHERE d.event_seq = e.seq AND d.state IN ('pending', 'failed'))"""


def pruned_through(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT events_pruned_through FROM prune_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def prune(store: Store, policy: Policy, now: datetime, *, dry_run: bool) -> PruneReport:
    with store.write() as conn:
        versions = _versions(conn, policy)
        through = pruned_through(conn)
        events_upto = through
        if policy.keep_events_s is not None:
            cutoff = to_text(now - timedelta(seconds=policy.keep_events_s))
            prefix = conn.execute(_EVENT_PREFIX, {"cutoff": cutoff}).fetchone()[0]
            events_upto = max(through, prefix or 0)
        delivered_cutoff = (
            to_text(now - timedelta(seconds=policy.keep_deliveries_s))
            if policy.keep_deliveries_s is not None
            else None
        )
        doomed = """SELECT id FROM deliveries WHERE event_seq <= :upto
                    OR (:cutoff IS NOT NULL AND state = 'delivered' AND delivered_at < :cutoff)"""
        params = {"upto": events_upto, "cutoff": delivered_cutoff}
        deliveries = conn.execute(f"SELECT COUNT(*) FROM ({doomed})", params).fetchone()[0]
        attempts = conn.execute(
            f"SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id IN ({doomed})", params
        ).fetchone()[0]
        events = conn.execute(
            "SELECT COUNT(*) FROM events WHERE seq <= ?", (events_upto,)
        ).fetchone()[0]
        if not dry_run:
            conn.execute(f"DELETE FROM delivery_attempts WHERE delivery_id IN ({doomed})", params)
            conn.execute(f"DELETE FROM deliveries WHERE id IN ({doomed})", params)
            conn.execute("DELETE FROM events WHERE seq <= ?", (events_upto,))
            if policy.keep_versions is not None:
                conn.execute(
                    f"DELETE FROM entry_versions WHERE id IN ({_OLD_VERSIONS})",
                    {"keep": policy.keep_versions},
                )
            conn.execute(
                "INSERT INTO prune_state (id, events_pruned_through) VALUES (1, ?) ON CONFLICT(id)"
                " DO UPDATE SET events_pruned_through = excluded.events_pruned_through",
                (events_upto,),
            )
    return PruneReport(versions, events, deliveries, attempts, events_upto)


def _versions(conn: sqlite3.Connection, policy: Policy) -> int:
    if policy.keep_versions is None:
        return 0
    return int(
        conn.execute(
            f"SELECT COUNT(*) FROM ({_OLD_VERSIONS})", {"keep": policy.keep_versions}
        ).fetchone()[0]
    )
