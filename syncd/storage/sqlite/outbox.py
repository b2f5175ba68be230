"""The outbox (`deliveries`, `delivery_attempts`, `sinks`): the only module that writes those
tables. Deliveries are created here (`enqueue`, called inside the page commit's transaction, and
`replay`), claimed, recorded, requeued by operators, and pruned (`prune`).

It decides nothing: when to retry, when to pause and what an outcome means are the dispatcher's
and `syncd.retry`'s; every method here is one short transaction (`exchange` bundles a sink's
records, released leases and next claim into one), so a crash between any two leaves a
consistent outbox.

A claimed delivery is *leased* (`leased_until`) rather than marked: another dispatcher (a second
process, later a second worker on a shared database) skips it while the lease runs, and if this
process dies mid-send the lease expires and the delivery is due again; a dispatcher that knows it
is alone reclaims such leases at once (`reclaim_leases`). Nothing is lost and nothing waits long
on a process that is gone.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd.model import DeliveryState, OutboundEvent
from syncd.storage.claims import VERSION_COLUMNS, claimed, named_versions
from syncd.storage.envelopes import VERSION_FIELDS, VERSION_JOIN, spliced_body
from syncd.storage.rows import (
    DELIVERY_COLUMNS,
    SUMMARY_SQL,
    as_sink_row,
    reclaim_query,
    resume_values,
    summaries,
)
from syncd.storage.sqlite.db import Db, marks
from syncd.storage.values import AttemptRecord, Claim, DueDelivery, SinkRow
from syncd.timestamps import from_text, to_text

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import AttemptInfo, DeliveryInfo, ReplayCounts

__all__ = [
    "SqliteOutbox",
    "count_prunable",
    "enqueue",
    "prunable",
    "prune_attempts",
    "prune_deliveries",
    "queue_figures",
]

_QUEUED = "('pending', 'failed')"  # written identically everywhere: the partial index matches it
# A sink's queued rows, read along the queue's partial index: a sink's rows are also indexed by
# name alone (`idx_deliveries_sink`), which the planner would otherwise pick and walk the whole
# delivered history with.
_BY_QUEUE = "deliveries INDEXED BY idx_deliveries_queue"
_OF_SINK_QUEUED = f"sink = ? AND state IN {_QUEUED}"

# No earlier event of the same entry still queued for this sink (d, e: the candidate delivery and
# its event). CROSS JOIN keeps SQLite on the entry's few events instead of walking the sink's
# whole queue for every candidate (measured: 0.6 µs instead of 240 µs per candidate at 2,000).
_NO_EARLIER_OF_ENTRY = f"""NOT EXISTS (
    SELECT 1 FROM events p CROSS JOIN deliveries q
    WHERE p.feed_id = e.feed_id AND p.entry_id = e.entry_id AND p.seq < e.seq
      AND q.event_seq = p.seq AND q.sink = d.sink AND q.state IN {_QUEUED})"""


# ENVELOPE_COLUMNS with the stored text as bytes: an event stored whole (no version named) is
# sent as it is stored, with no decode and re-encode per delivery.
_OUTBOUND_COLUMNS = "CAST(e.payload AS BLOB) AS payload, e.version_id, " + ", ".join(
    f"v.{c} AS v_{c}" for c in VERSION_FIELDS
)


# What a claim reads per row (syncd.storage.claims, which makes the deliveries).
_CLAIM_COLUMNS = (
    "d.id, d.attempts, e.id AS event_id, e.seq, e.type, CAST(e.payload AS BLOB) AS payload,"
    " e.version_id"
)
_VERSIONS = (
    f"SELECT {VERSION_COLUMNS} FROM entry_versions v WHERE v.id IN (SELECT value FROM json_each(?))"
)


def _event(r: Mapping[str, Any]) -> OutboundEvent:
    """The event as sinks receive it, from a row with _OUTBOUND_COLUMNS."""
    return OutboundEvent(r["event_id"], r["seq"], r["type"], spliced_body(r["payload"], r))


def _claim_query(claim: Claim, *, untried: bool = False) -> tuple[str, tuple[Any, ...]]:
    """The candidates of a claim in the order they are taken, each with `free`: claimable now.
    `untried`: only those never attempted, in seq order (see `_candidates`)."""
    now_s = to_text(claim.now)
    if claim.strict:
        # The head of the queue, due or not: the claimable part is its due, unleased prefix.
        sql = f"""SELECT {_CLAIM_COLUMNS},
                    d.next_attempt_at <= ? AND (d.leased_until IS NULL OR d.leased_until <= ?)
                    AS free
                  FROM deliveries d JOIN events e ON e.seq = d.event_seq
                  WHERE d.sink = ? AND d.state IN {_QUEUED}
                  ORDER BY d.event_seq LIMIT ?"""
        return sql, (now_s, now_s, claim.sink, claim.limit)
    order = "d.attempts, d.event_seq" if claim.probe and not untried else "d.event_seq"
    untried_only = "AND d.attempts = 0" if untried else ""
    sql = f"""SELECT {_CLAIM_COLUMNS}, 1 AS free
              FROM deliveries d JOIN events e ON e.seq = d.event_seq
              WHERE d.sink = ? AND d.state IN {_QUEUED} AND d.next_attempt_at <= ?
                AND (d.leased_until IS NULL OR d.leased_until <= ?) {untried_only}
                AND {_NO_EARLIER_OF_ENTRY}
              ORDER BY {order} LIMIT ?"""
    return sql, (claim.sink, now_s, now_s, claim.limit)


def _candidates(conn: sqlite3.Connection, claim: Claim) -> list[tuple[Any, ...]]:
    """The claim's candidate rows, as plain tuples (a claim takes hundreds; a name lookup in a
    sqlite3.Row walks the column names). A probe takes the least-tried first: when enough were
    never tried, those are its first ones in seq order, read along the queue index; only
    otherwise is the whole queue sorted by attempts (every pass starts with a probe, and that
    sort walked the whole backlog, twice with the peek)."""
    if claim.probe and not claim.strict:
        rows = conn.execute(*_claim_query(claim, untried=True)).fetchall()
        if len(rows) >= claim.limit:
            return rows
    return conn.execute(*_claim_query(claim)).fetchall()


def _versions(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> dict[int, Any]:
    """The version columns of the versions a claim's rows name, by id, in one statement."""
    named = named_versions(rows)
    if not named:
        return {}
    cur = conn.execute(_VERSIONS, (json.dumps(named),))
    columns = [c[0] for c in cur.description]
    return {v[0]: dict(zip(columns, v, strict=True)) for v in cur.fetchall()}


def _run_of(ids: list[int]) -> tuple[int, int] | None:
    """The first and last of `ids` when they are one unbroken run in order (a sink's claims and
    batches are, when every event goes to that sink alone), else None."""
    if ids and ids[-1] - ids[0] == len(ids) - 1 and ids == list(range(ids[0], ids[-1] + 1)):
        return ids[0], ids[-1]
    return None


def _among(ids: list[int]) -> tuple[str, tuple[int, ...] | tuple[str]]:
    """A condition on `id` that holds for exactly `ids`, and its parameters: a range for a run
    (0.13 us less per row than reading the ids out of JSON), else the ids from JSON."""
    run = _run_of(ids)
    if run is not None:
        return "id BETWEEN ? AND ?", run
    return "id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)


def _claim(conn: sqlite3.Connection, claim: Claim) -> list[DueDelivery]:
    rows = _candidates(conn, claim)
    if claim.strict:
        rows = list(itertools.takewhile(lambda r: bool(r[-1]), rows))
    if not rows:
        return []
    where, ids = _among([r[0] for r in rows])
    conn.execute(
        f"UPDATE deliveries SET leased_until = ?, leased_by = ? WHERE {where}",
        (to_text(claim.lease_until), claim.owner, *ids),
    )
    return claimed(rows, _versions(conn, rows), claim.sink, claim.lease_until)


def _release(conn: sqlite3.Connection, deliveries: Sequence[DueDelivery]) -> None:
    """Drop our leases; one that ran out and was taken by another process is left alone."""
    by_lease: dict[str | None, list[int]] = {}
    for d in deliveries:
        by_lease.setdefault(to_text(d.leased_until), []).append(d.id)
    for lease, ids in by_lease.items():
        conn.execute(
            "UPDATE deliveries SET leased_until = NULL WHERE id IN (SELECT value FROM json_each(?))"
            " AND (? IS NULL OR leased_until = ?)",
            (json.dumps(ids), lease, lease),
        )


_RECORD_SET = """UPDATE deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?,
    last_status = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at),
    leased_until = NULL, delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END"""
_LOG_COLUMNS = "delivery_attempts (delivery_id, attempted_at, result, status, latency_ms, error)"


def _record(conn: sqlite3.Connection, records: Sequence[AttemptRecord]) -> None:
    """Write attempts and their log rows: a record covering several deliveries (a batch) with
    one set-based statement pair, the others together with `executemany`."""
    updates: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    for rec in records:
        o, state = rec.outcome, rec.state
        at_s = to_text(rec.attempted_at)
        values = (str(state), at_s, o.status, o.error, to_text(rec.next_attempt_at), o.ok, at_s)
        entry = (at_s, str(state), o.status, round(o.latency_ms, 3), o.error)
        if len(rec.delivery_ids) == 1:
            [delivery_id] = rec.delivery_ids
            updates.append((*values, delivery_id))
            logs.append((delivery_id, *entry))
            continue
        ids = list(rec.delivery_ids)
        where, chosen = _among(ids)
        updated = conn.execute(f"{_RECORD_SET} WHERE {where}", (*values, *chosen)).rowcount
        run = _run_of(ids)
        if run is not None and updated == len(ids):
            # Every id of the run is a row (just updated): their log rows from the range too.
            conn.execute(
                f"INSERT INTO {_LOG_COLUMNS} SELECT id, ?, ?, ?, ?, ? FROM deliveries"
                " WHERE id BETWEEN ? AND ?",
                (*entry, *run),
            )
            continue
        conn.execute(
            f"INSERT INTO {_LOG_COLUMNS} SELECT value, ?, ?, ?, ?, ? FROM json_each(?)",
            (*entry, json.dumps(ids)),
        )
    if updates:
        conn.executemany(f"{_RECORD_SET} WHERE id = ?", updates)
        conn.executemany(f"INSERT INTO {_LOG_COLUMNS} VALUES (?, ?, ?, ?, ?, ?)", logs)


def enqueue(conn: sqlite3.Connection, seq: int, sinks: Sequence[str], now: datetime) -> None:
    """A pending delivery of event `seq` to each of `sinks`, due `now` (in the commit's
    transaction)."""
    now_s = to_text(now)
    conn.executemany(
        "INSERT INTO deliveries (event_seq, sink, state, attempts, created_at, next_attempt_at)"
        " VALUES (?, ?, 'pending', 0, ?, ?)",
        [(seq, sink, now_s, now_s) for sink in sinks],
    )


# Deliveries a prune may let go: of events up to the pruned seq, or delivered before the
# keep_deliveries cutoff; done either way (a replay that queued one again keeps it).
_PRUNABLE = """SELECT id FROM deliveries WHERE state IN ('delivered', 'dead')
    AND (event_seq <= :upto OR (:cutoff IS NOT NULL AND state = 'delivered'
         AND delivered_at < :cutoff))"""


def count_prunable(
    conn: sqlite3.Connection, upto: int, delivered_before: datetime | None
) -> tuple[int, int]:
    """(deliveries, attempts) a prune through `upto` would delete."""
    params = {"upto": upto, "cutoff": to_text(delivered_before)}
    deliveries = conn.execute(f"SELECT COUNT(*) FROM ({_PRUNABLE})", params).fetchone()[0]
    attempts = conn.execute(
        f"SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id IN ({_PRUNABLE})", params
    ).fetchone()[0]
    return int(deliveries), int(attempts)


def prunable(db: Db, upto: int, delivered_before: datetime | None) -> list[int]:
    """The ids of the deliveries a prune through `upto` deletes, read once."""
    params = {"upto": upto, "cutoff": to_text(delivered_before)}
    return [r["id"] for r in db.rows(_PRUNABLE + " ORDER BY id", params)]


def prune_attempts(conn: sqlite3.Connection, delivery_ids: Sequence[int], limit: int) -> int:
    """Delete up to `limit` attempts of those of `delivery_ids` still done; how many."""
    return conn.execute(
        """DELETE FROM delivery_attempts WHERE id IN (SELECT a.id FROM delivery_attempts a
           JOIN deliveries d ON d.id = a.delivery_id WHERE d.id IN (SELECT value FROM json_each(?))
           AND d.state IN ('delivered', 'dead') LIMIT ?)""",
        (json.dumps(list(delivery_ids)), limit),
    ).rowcount


def prune_deliveries(conn: sqlite3.Connection, delivery_ids: Sequence[int]) -> int:
    """Delete those of `delivery_ids` still done and without attempts left; how many."""
    return conn.execute(
        """DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))
           AND state IN ('delivered', 'dead')
           AND NOT EXISTS (SELECT 1 FROM delivery_attempts a
                           WHERE a.delivery_id = deliveries.id)""",
        (json.dumps(list(delivery_ids)),),
    ).rowcount


def queue_figures(db: Db, sinks: Sequence[str]) -> list[dict[str, Any]]:
    """For each of `sinks` and each other sink with deliveries waiting: the waiting ones
    (`pending`), the creation time of the oldest (`oldest`), the dead ones (`dead`), and
    its pause and disabled marks."""
    # Every read is an index search (idx_deliveries_queue's WHERE, and idx_deliveries_dead
    # for the dead): none reads the delivered history, however long it grows.
    return db.rows(
        """WITH q AS (SELECT sink, COUNT(*) AS pending, MIN(created_at) AS oldest
                      FROM deliveries WHERE state IN ('pending', 'failed') GROUP BY sink),
                names(name) AS (SELECT value FROM json_each(?) UNION SELECT sink FROM q)
           SELECT names.name, COALESCE(q.pending, 0) AS pending, q.oldest,
                  (SELECT COUNT(*) FROM deliveries d
                   WHERE d.sink = names.name AND d.state = 'dead') AS dead,
                  s.paused_until, s.disabled_at
           FROM names LEFT JOIN q ON q.sink = names.name
           LEFT JOIN sinks s ON s.name = names.name""",
        (json.dumps(list(sinks)),),
    )


class SqliteOutbox:
    def __init__(self, db: Db) -> None:
        self.db = db

    # ------------------------------------------------------------------ the dispatcher's side

    async def claim_due(
        self,
        sink: str,
        now: datetime,
        limit: int,
        lease_until: datetime,
        *,
        probe: bool = False,
        peek: bool = True,
        strict: bool = False,
        owner: str | None = None,
    ) -> list[DueDelivery]:
        """Lease up to `limit` due, unleased deliveries of `sink` that their order allows, and
        return them in `seq` order.

        Order (docs/design.md, "Order"): a delivery is claimable only while no earlier delivery
        of the same entry to this sink is still queued (pending, failed and waiting for a retry,
        or leased by an attempt in flight); a dead one no longer holds the entry. So one claim
        holds at most one event per entry, and an entry's next event is claimed only after the
        previous one was recorded delivered or dead. `strict` extends that to the whole sink: only
        an unbroken run from the head of its queue is claimable (`max_in_flight = 1`).

        A probe (`probe=True`, not strict) takes the least-tried claimable deliveries first
        instead, so that one event the receiver keeps refusing cannot keep a recovering sink
        paused. `peek` looks without the write lock first (for idle polling, which mostly finds
        nothing). The leases name `owner`, the claiming worker.
        """
        claim = Claim(sink, now, limit, lease_until, probe, strict, owner)
        if limit <= 0:
            return []
        if peek:
            # An idle sink polls every second: look first without taking the write lock, which
            # the syncer's page commits need. Whether there is a first candidate does not depend
            # on the order, so a probe's look reads along the queue index too.
            sql, params = _claim_query(replace(claim, limit=1, probe=False))
            if not any(r["free"] for r in self.db.rows(f"SELECT free FROM ({sql})", params)):
                return []
        return await self.exchange(claim=claim)

    async def exchange(
        self,
        records: Sequence[AttemptRecord] = (),
        *,
        release: Sequence[DueDelivery] = (),
        claim: Claim | None = None,
    ) -> list[DueDelivery]:
        """One transaction for a sink's bookkeeping: record finished attempts, hand back leases
        that were not used, then lease what is claimable now (which the records may just have
        unblocked). Returns what it leased."""
        if not records and not release and (claim is None or claim.limit <= 0):
            return []
        with self.db.write() as conn:
            _record(conn, records)
            _release(conn, release)
            return _claim(conn, claim) if claim is not None and claim.limit > 0 else []

    async def release(self, deliveries: Sequence[DueDelivery]) -> None:
        """Give back leases of deliveries that were not attempted after all (a shutdown)."""
        await self.exchange(release=deliveries)

    async def reclaim_leases(self, now: datetime, *, everyone: bool = False) -> int:
        """Drop the leases of workers that are gone (`everyone`: every lease, for a dispatcher
        that knows no other one is alive)."""
        sql, params = reclaim_query(now, everyone)
        with self.db.write() as conn:
            return conn.execute(sql.replace("%(", ":").replace(")s", ""), params).rowcount

    async def next_due_at(self, sink: str) -> datetime | None:
        """When the earliest queued delivery of `sink` becomes claimable (its lease included)."""
        rows = self.db.rows(
            f"""SELECT MIN(CASE WHEN leased_until > next_attempt_at THEN leased_until
                                ELSE next_attempt_at END) AS t
                FROM {_BY_QUEUE} WHERE {_OF_SINK_QUEUED}""",
            (sink,),
        )
        return from_text(rows[0]["t"]) if rows else None

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> list[DeliveryState]:
        """Record finished attempts in one transaction; return each record's new state.

        A failure without a next attempt is dead. The lease is dropped either way.
        """
        await self.exchange(records)
        return [r.state for r in records]

    # ------------------------------------------------------------------ sink state

    async def sink_row(self, name: str) -> SinkRow:
        found = self.db.rows("SELECT * FROM sinks WHERE name = ?", (name,))
        return as_sink_row(name, found[0] if found else None)

    async def _upsert_sink(
        self, name: str, values: dict[str, Any], *, due_now: datetime | None = None
    ) -> None:
        """Write a sink's row; with `due_now`, also make its waiting deliveries due then."""
        cols = ", ".join(["name", *values])
        places = ", ".join("?" * (len(values) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO sinks ({cols}) VALUES ({places})"
                f" ON CONFLICT(name) DO UPDATE SET {updates}",
                [name, *values.values()],
            )
            if due_now is not None:
                now_s = to_text(due_now)
                conn.execute(
                    f"UPDATE {_BY_QUEUE} SET next_attempt_at = ?"
                    f" WHERE {_OF_SINK_QUEUED} AND next_attempt_at > ?",
                    (now_s, name, now_s),
                )

    async def disable_sink(
        self, sink: str, reason: str, now: datetime, config_hash: str | None = None
    ) -> None:
        """Stop deliveries to `sink`. `config_hash` set: a config change re-enables it."""
        await self._upsert_sink(
            sink,
            {"disabled_at": to_text(now), "disabled_reason": reason, "config_hash": config_hash},
        )

    async def enable_sink(self, sink: str, now: datetime) -> None:
        """Re-enable `sink`, lift any pause and make its waiting deliveries (pending, or failed
        and backing off) due now, so a running daemon sends them at once."""
        await self._upsert_sink(
            sink,
            {
                "disabled_at": None,
                "disabled_reason": None,
                "config_hash": None,
                **resume_values(now),
            },
            due_now=now,
        )

    async def request_resume(self, sink: str, now: datetime) -> None:
        """Lift a pause, make the sink's waiting deliveries due now, and tell a running daemon
        to look at `sink` again at once (an operator acted, or the receiver answered again)."""
        await self._upsert_sink(sink, resume_values(now), due_now=now)

    async def set_pause(
        self, sink: str, until: datetime | None, level: int, reason: str | None
    ) -> None:
        """Persist a sink's back-off (None: not paused), so restarts and `status` see it."""
        await self._upsert_sink(
            sink,
            {"paused_until": to_text(until), "pause_level": level, "pause_reason": reason},
        )

    async def sink_summaries(self) -> dict[str, dict[str, int]]:
        """Per sink, how many deliveries are in each state (states without any left out)."""
        return summaries(self.db.rows(SUMMARY_SQL))

    # ------------------------------------------------------------------ the operator's side

    async def list_deliveries(
        self,
        *,
        sink: str | None = None,
        states: Collection[str] = (),
        event: str | None = None,
        limit: int | None = 100,
    ) -> list[DeliveryInfo]:
        """Deliveries, newest first, filtered by sink, states and event id (prefix)."""
        from syncd.storage.reports import DeliveryInfo

        where: list[str] = []
        params: list[Any] = []
        if sink is not None:
            where.append("d.sink = ?")
            params.append(sink)
        table = "deliveries AS d"
        if states:
            where.append(f"d.state IN ({marks(states)})")
            params.extend(states)
            # Only dead, or only queued: read along the partial index that holds just those
            # rows (its WHERE repeated in the query's, as the planner needs), not along the
            # sink's whole history newest first, which it prefers for the ORDER BY ... LIMIT.
            if set(states) == {"dead"}:
                table += " INDEXED BY idx_deliveries_dead"
                where.append("d.state = 'dead'")
            elif set(states) <= {"pending", "failed"}:
                table += " INDEXED BY idx_deliveries_queue"
                where.append(f"d.state IN {_QUEUED}")
        if event:
            where.append("e.id LIKE ? ESCAPE '\\'")
            escaped = event.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(escaped + "%")
        sql = f"SELECT {DELIVERY_COLUMNS} FROM {table} JOIN events e ON e.seq = d.event_seq"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY d.id DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [DeliveryInfo(**r) for r in self.db.rows(sql, params)]

    async def delivery(self, delivery_id: int) -> DeliveryInfo | None:
        from syncd.storage.reports import DeliveryInfo

        rows = self.db.rows(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"
            " WHERE d.id = ?",
            (delivery_id,),
        )
        return DeliveryInfo(**rows[0]) if rows else None

    async def attempts(self, delivery_id: int) -> list[AttemptInfo]:
        from syncd.storage.reports import AttemptInfo

        return [
            AttemptInfo(**r)
            for r in self.db.rows(
                "SELECT id, delivery_id, attempted_at, result, status, latency_ms, error"
                " FROM delivery_attempts WHERE delivery_id = ? ORDER BY id",
                (delivery_id,),
            )
        ]

    async def load(self, delivery_id: int) -> DueDelivery | None:
        """A delivery and its event in any state, to be sent again on request."""
        rows = self.db.rows(
            f"""SELECT d.id, d.sink, d.attempts, e.id AS event_id, e.seq, e.type,
                {_OUTBOUND_COLUMNS}
                FROM deliveries d JOIN events e ON e.seq = d.event_seq {VERSION_JOIN}
                WHERE d.id = ?""",
            (delivery_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return DueDelivery(r["id"], r["attempts"], _event(r), r["sink"])

    async def recover(self, sink: str, now: datetime, since: datetime | None = None) -> int:
        """Queue every failed or dead delivery of `sink` again, due now, with a fresh schedule.

        `since` limits it to deliveries created (events committed) at or after that instant.
        """
        # The failed ones along the queue's index, the dead ones along theirs (either way, not
        # a walk over the sink's delivered history).
        requeue = """UPDATE {table} SET state = 'pending', attempts = 0, next_attempt_at = ?,
                  leased_until = NULL WHERE {where}"""
        params: list[Any] = [to_text(now), sink]
        since_sql = ""
        if since is not None:
            since_sql = " AND created_at >= ?"
            params.append(to_text(since))
        with self.db.write() as conn:
            count = conn.execute(
                requeue.format(table=_BY_QUEUE, where=f"{_OF_SINK_QUEUED} AND state = 'failed'")
                + since_sql,
                params,
            ).rowcount
            count += conn.execute(
                requeue.format(table="deliveries", where="sink = ? AND state = 'dead'") + since_sql,
                params,
            ).rowcount
        await self.request_resume(sink, now)
        return count

    async def replay(
        self,
        sink: str,
        now: datetime,
        *,
        from_seq: int,
        to_seq: int | None = None,
        types: Collection[str] | None = None,
        feeds: Collection[str] | None = None,
    ) -> ReplayCounts:
        """Queue events `from_seq`..`to_seq` for `sink` again, delivered or not.

        Existing deliveries go back to pending with a fresh schedule; events the sink never had a
        delivery for (skipped as a first sync's backfill, added before the sink was) get one.
        `types` and `feeds` (feed names) restrict which events qualify.
        """
        from syncd.storage.reports import ReplayCounts

        cond = ["e.seq >= ?"]
        params: list[Any] = [from_seq]
        if to_seq is not None:
            cond.append("e.seq <= ?")
            params.append(to_seq)
        if types is not None:
            cond.append(f"e.type IN ({marks(types)})")
            params.extend(sorted(types))
        if feeds is not None:
            cond.append(f"e.feed_id IN (SELECT id FROM feeds WHERE name IN ({marks(feeds)}))")
            params.extend(sorted(feeds))
        events = f"SELECT e.seq FROM events e WHERE {' AND '.join(cond)}"
        now_s = to_text(now)
        with self.db.write() as conn:
            requeued = conn.execute(
                f"""UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,
                    leased_until = NULL WHERE sink = ? AND event_seq IN ({events})""",
                [now_s, sink, *params],
            ).rowcount
            created = conn.execute(
                f"""INSERT OR IGNORE INTO deliveries (event_seq, sink, state, attempts, created_at,
                    next_attempt_at) SELECT seq, ?, 'pending', 0, ?, ? FROM ({events})""",
                [sink, now_s, now_s, *params],
            ).rowcount
        await self.request_resume(sink, now)
        return ReplayCounts(created=created, requeued=requeued)
