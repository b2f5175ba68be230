"""The outbox side of the store: due deliveries, attempts, and sink state.

Events and their delivery rows are *created* by `Store.commit_page`, in the page's transaction;
this module reads them back for the dispatcher and records what each attempt did. It shares the
store's single writer connection and transaction helper, and decides nothing about retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from syncd.model import DeliveryState, OutboundEvent, SendOutcome
from syncd.timestamps import format_timestamp

if TYPE_CHECKING:
    from syncd.store import Store


def _ts(dt: datetime | None) -> str | None:
    return format_timestamp(dt) if dt is not None else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class DueDelivery:
    id: int
    attempts: int
    event: OutboundEvent


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    def due_deliveries(self, sink: str, now: datetime, limit: int) -> list[DueDelivery]:
        rows = self.store.rows(
            """SELECT d.id, d.attempts, e.id AS event_id, e.seq, e.type, e.payload
               FROM deliveries d JOIN events e ON e.seq = d.event_seq
               WHERE d.sink = ? AND d.state IN ('pending', 'failed') AND d.next_attempt_at <= ?
               ORDER BY e.seq LIMIT ?""",
            (sink, _ts(now), limit),
        )
        return [
            DueDelivery(
                r["id"],
                r["attempts"],
                OutboundEvent(r["event_id"], r["seq"], r["type"], r["payload"].encode()),
            )
            for r in rows
        ]

    def next_delivery_due(self, sink: str) -> datetime | None:
        rows = self.store.rows(
            "SELECT MIN(next_attempt_at) AS t FROM deliveries"
            " WHERE sink = ? AND state IN ('pending', 'failed')",
            (sink,),
        )
        return _dt(rows[0]["t"]) if rows else None

    def record_attempt(
        self,
        delivery_id: int,
        outcome: SendOutcome,
        now: datetime,
        next_attempt_at: datetime | None,
    ) -> DeliveryState:
        """Record one attempt. Failed with no next attempt means dead."""
        if outcome.ok:
            state = DeliveryState.DELIVERED
        elif next_attempt_at is None:
            state = DeliveryState.DEAD
        else:
            state = DeliveryState.FAILED
        now_s = _ts(now)
        with self.store.write() as conn:
            conn.execute(
                """UPDATE deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?,
                   last_status = ?, last_error = ?, next_attempt_at = ?,
                   delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END WHERE id = ?""",
                (
                    str(state),
                    now_s,
                    outcome.status,
                    outcome.error,
                    _ts(next_attempt_at),
                    outcome.ok,
                    now_s,
                    delivery_id,
                ),
            )
            conn.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempted_at, status, latency_ms,"
                " error) VALUES (?, ?, ?, ?, ?)",
                (delivery_id, now_s, outcome.status, round(outcome.latency_ms, 3), outcome.error),
            )
        return state

    def disable_sink(self, sink: str, reason: str, now: datetime) -> None:
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO sinks (name, disabled_at, disabled_reason) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET disabled_at = excluded.disabled_at,"
                " disabled_reason = excluded.disabled_reason",
                (sink, _ts(now), reason),
            )

    def disabled_sinks(self) -> dict[str, str]:
        return {
            r["name"]: r["disabled_reason"] or ""
            for r in self.store.rows(
                "SELECT name, disabled_reason FROM sinks WHERE disabled_at IS NOT NULL"
            )
        }

    def sink_summaries(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.store.rows(
            "SELECT sink, state, COUNT(*) AS n FROM deliveries GROUP BY sink, state"
        ):
            out.setdefault(r["sink"], {})[r["state"]] = r["n"]
        return out
