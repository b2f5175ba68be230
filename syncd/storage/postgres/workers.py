"""Workers and per-host request slots on PostgreSQL (`workers`, `host_slots`): the only writer of
both, as syncd.storage.sqlite.workers. A host's slots are kept in the database's clock, so the
workers' clocks need not agree for politeness. Decides nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from syncd.storage.postgres import feeds
from syncd.storage.postgres.db import Pg
from syncd.storage.rows import ms
from syncd.timestamps import to_text


async def heartbeat(pg: Pg, worker: str, now: datetime, until: datetime) -> None:
    async with pg.write() as conn:
        await conn.execute(
            "INSERT INTO workers (id, started_at, seen_at, expires_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at,"
            " expires_at = excluded.expires_at",
            (worker, to_text(now), to_text(now), ms(until)),
        )
        await feeds.renew(conn, worker, until)


async def ids(pg: Pg, alive_at: datetime | None) -> list[str]:
    sql = "SELECT id FROM workers WHERE %(at)s::text IS NULL OR expires_at > %(at)s ORDER BY id"
    return [r["id"] for r in await pg.rows(sql, {"at": ms(alive_at)})]


# As the SQLite twin: each instant compared in the form its writer stores.
_SUMMARIES = """SELECT w.id, w.started_at, w.seen_at, w.expires_at, w.expires_at > %(ms)s AS alive,
      (SELECT COUNT(*) FROM feeds f WHERE f.lease_owner = w.id AND f.lease_until > %(ms)s)
        AS feeds_leased,
      (SELECT COUNT(*) FROM deliveries d WHERE d.leased_by = w.id AND d.leased_until > %(text)s)
        AS deliveries_leased
    FROM workers w ORDER BY w.id"""


async def summaries(pg: Pg, now: datetime) -> list[dict[str, Any]]:
    """Each worker with its liveness and what it holds at `now` (Store.worker_summaries)."""
    return await pg.rows(_SUMMARIES, {"ms": ms(now), "text": to_text(now)})


async def retire(pg: Pg, worker: str) -> None:
    async with pg.write() as conn:
        await conn.execute("DELETE FROM workers WHERE id = %s", (worker,))
        await feeds.drop_leases(conn, worker)


async def reserve_host_slot(pg: Pg, host: str, gap_s: float) -> float:
    """One statement: the next slot for `host`, `gap_s` after the last one any worker reserved
    (or now), and the wait until it. The row lock of the upsert serialises workers per host."""
    rows = await pg.rows(
        """WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
           INSERT INTO host_slots AS h (host, next_at)
           SELECT %(host)s, clock.now + %(gap)s FROM clock
           ON CONFLICT (host) DO UPDATE
             SET next_at = GREATEST(h.next_at + %(gap)s, excluded.next_at)
           RETURNING h.next_at - %(gap)s - (SELECT now FROM clock) AS wait""",
        {"host": host, "gap": gap_s},
    )
    return max(0.0, float(rows[0]["wait"]))
