"""Workers and per-host request slots (`workers`, `host_slots`): the only writer of both. A
worker's row says it is alive until `expires_at`; its heartbeat also renews its feed leases
(through syncd.storage.sqlite.feeds, their owner). The heartbeat runs in a worker thread on a
connection of its own (`SqliteStore.heartbeat`), so an idle daemon never stalls its event loop
on a database another process keeps locked. Decides nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from syncd.storage.rows import ms
from syncd.storage.sqlite import feeds
from syncd.storage.sqlite.db import Db
from syncd.timestamps import to_text


def heartbeat(db: Db, worker: str, now: datetime, until: datetime) -> None:
    """On `db`'s connection: call from the thread that opened it."""
    with db.write() as conn:
        conn.execute(
            "INSERT INTO workers (id, started_at, seen_at, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET seen_at = excluded.seen_at,"
            " expires_at = excluded.expires_at",
            (worker, to_text(now), to_text(now), ms(until)),
        )
        feeds.renew(conn, worker, until)


def ids(db: Db, alive_at: datetime | None) -> list[str]:
    sql = "SELECT id FROM workers WHERE ? IS NULL OR expires_at > ? ORDER BY id"
    return [r["id"] for r in db.rows(sql, (ms(alive_at),) * 2)]


# Instants compared as the writers store them: feed leases and worker expiry at a fixed
# millisecond precision (rows.ms), delivery leases as to_text (syncd.storage.sqlite.outbox).
_SUMMARIES = """SELECT w.id, w.started_at, w.seen_at, w.expires_at, w.expires_at > :ms AS alive,
      (SELECT COUNT(*) FROM feeds f WHERE f.lease_owner = w.id AND f.lease_until > :ms)
        AS feeds_leased,
      (SELECT COUNT(*) FROM deliveries d WHERE d.leased_by = w.id AND d.leased_until > :text)
        AS deliveries_leased
    FROM workers w ORDER BY w.id"""


def summaries(db: Db, now: datetime) -> list[dict[str, Any]]:
    """Each worker with its liveness and what it holds at `now` (Store.worker_summaries)."""
    rows = db.rows(_SUMMARIES, {"ms": ms(now), "text": to_text(now)})
    return [{**r, "alive": bool(r["alive"])} for r in rows]


def retire(db: Db, worker: str) -> None:
    with db.write() as conn:
        conn.execute("DELETE FROM workers WHERE id = ?", (worker,))
        feeds.drop_leases(conn, worker)


def reserve_host_slot(db: Db, host: str, gap_s: float) -> float:
    """The next slot for `host`, `gap_s` after the last one reserved (or now); the wait until it.
    The store's clock is this machine's: the file is local."""
    now = time.time()
    with db.write() as conn:
        (next_at,) = conn.execute(
            "INSERT INTO host_slots (host, next_at) VALUES (?, ?) ON CONFLICT(host) DO UPDATE"
            " SET next_at = MAX(host_slots.next_at, ?) + ? RETURNING next_at",
            (host, now + gap_s, now, gap_s),
        ).fetchone()
    return max(0.0, float(next_at) - gap_s - now)
