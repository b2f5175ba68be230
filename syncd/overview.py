"""A read-only snapshot of the store for the operator's surfaces: the gauges of /metrics, the
health check and the status page read the same figures from here.

The store's queries are aggregates over indexes (the delivery queue, the feeds table), so a
snapshot costs a few milliseconds even with a long delivery history. This module only reads: it
holds no SQL, never writes, and decides nothing (thresholds and presentation are its callers').
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from syncd.storage import Store
from syncd.timestamps import from_text

SUCCESS_OUTCOMES = ("ok", "not_modified")


@dataclass(frozen=True)
class SinkFigures:
    name: str
    pending: int = 0  # waiting: never tried, or failed and scheduled again
    dead: int = 0
    oldest_pending_at: datetime | None = None
    paused_until: datetime | None = None
    disabled: bool = False

    def lag_s(self, now: datetime) -> float:
        """How long the oldest waiting delivery has waited (0 when nothing waits)."""
        if self.oldest_pending_at is None:
            return 0.0
        return max((now - self.oldest_pending_at).total_seconds(), 0.0)

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now


@dataclass(frozen=True)
class FeedFigures:
    name: str
    last_success_at: datetime | None  # the last crawl, if it succeeded
    consecutive_errors: int
    next_due_at: datetime | None
    gone: bool


@dataclass(frozen=True)
class Overview:
    taken_at: datetime
    feeds: list[FeedFigures] = field(default_factory=list)
    sinks: dict[str, SinkFigures] = field(default_factory=dict)
    search_pending: int = 0  # entries the search index has yet to catch up with

    @property
    def backing_off(self) -> int:
        return sum(1 for f in self.feeds if f.consecutive_errors > 0 and not f.gone)

    @property
    def due(self) -> int:
        now = self.taken_at
        return sum(1 for f in self.feeds if _is_due(f, now))

    @property
    def schedule_lag_s(self) -> float:
        """How late the most overdue feed is: 0 when every feed is polled on time."""
        overdue = [
            (self.taken_at - f.next_due_at).total_seconds()
            for f in self.feeds
            if not f.gone and f.next_due_at is not None
        ]
        return max([0.0, *overdue])

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.sinks.values())


def _is_due(f: FeedFigures, now: datetime) -> bool:
    return not f.gone and (f.next_due_at is None or f.next_due_at <= now)


async def take(store: Store, now: datetime, sink_names: list[str]) -> Overview:
    """The figures for `now`. `sink_names` are the configured sinks: each gets figures even
    with an empty queue; a removed sink whose deliveries still wait is included too."""
    feeds = [
        FeedFigures(
            name=r["name"],
            last_success_at=(
                from_text(r["last_fetch_at"]) if r["last_outcome"] in SUCCESS_OUTCOMES else None
            ),
            consecutive_errors=r["consecutive_errors"] or 0,
            next_due_at=from_text(r["next_due_at"]),
            gone=r["gone_at"] is not None,
        )
        for r in await store.schedule_rows()
    ]
    rows = {r["name"]: r for r in await store.queue_figures(sink_names)}
    waiting = sorted(n for n, r in rows.items() if r["pending"] and n not in sink_names)
    sinks: dict[str, SinkFigures] = {}
    for name in [*sink_names, *waiting]:
        r = rows.get(name, {})
        sinks[name] = SinkFigures(
            name=name,
            pending=r.get("pending", 0),
            dead=r.get("dead", 0),
            oldest_pending_at=from_text(r.get("oldest")),
            paused_until=from_text(r.get("paused_until")),
            disabled=r.get("disabled_at") is not None,
        )
    return Overview(
        taken_at=now, feeds=feeds, sinks=sinks, search_pending=await store.search_pending()
    )
