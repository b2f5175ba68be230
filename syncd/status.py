"""What `syncd status` and `syncd feeds list` report, as plain data: per configured feed its
last crawl (and how it is configured), per sink its delivery counts and state. The CLI prints
it (or its JSON); other views can serve the same data.

Reads the store only; it never writes, and it needs no secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncd.config import Config, FeedConfig
from syncd.schedule import is_stale
from syncd.storage import Store
from syncd.timestamps import from_text

__all__ = ["DELIVERY_STATES", "feed_list", "feed_outcome", "sink_status", "status_report"]

DELIVERY_STATES = ("pending", "failed", "dead", "delivered")


def feed_outcome(summary: dict[str, Any]) -> str:
    """A feed's last outcome in words. A crawl that committed pages and never finished (Ctrl-C,
    a crash) reads as interrupted, not as a missing outcome."""
    outcome = summary.get("last_outcome")
    if summary.get("crawl_incomplete"):
        return f"{outcome}, then interrupted" if outcome else "interrupted"
    return str(outcome) if outcome else "never synced"


async def status_report(
    config: Config, store: Store, now: datetime, feeds: Sequence[FeedConfig] | None = None
) -> dict[str, Any]:
    """Every configured feed (a feed never synced too; only `feeds` when given) and every sink,
    as `status --json`."""
    known = {f["name"]: f for f in await store.feed_summaries()}
    out = []
    for f in config.feeds if feeds is None else feeds:
        row = dict(known.get(f.name) or {"name": f.name, "url": f.url})
        row["last_outcome"] = feed_outcome(row)
        row["crawl_incomplete"] = bool(row.get("crawl_incomplete"))
        row["tags"] = list(f.tags)
        if f.name in known:
            newest = from_text(row.get("newest_updated"))
            row["stale"] = is_stale(newest, f.expect_update_within_s, now)
        out.append(row)
    return {"feeds": out, "sinks": await sink_status(config, store, now)}


async def feed_list(feeds: Sequence[FeedConfig], store: Store | None) -> list[dict[str, Any]]:
    """`syncd feeds list`: each feed as configured (URL, tags, interval, where it is configured)
    with its last sync as the store knows it (`store` None: no database yet)."""
    known = {f["name"]: f for f in await store.feed_summaries()} if store is not None else {}
    out = []
    for f in feeds:
        state = known.get(f.name, {})
        out.append(
            {
                "name": f.name,
                "url": f.url,
                "title": state.get("title") or f.opml_title,
                "tags": list(f.tags),
                "interval": "auto" if f.interval_auto else f.interval_s,
                "source": f.source,
                "opml": str(f.opml) if f.opml is not None else None,
                "last_outcome": feed_outcome(state),
                "last_fetch_at": state.get("last_fetch_at"),
                "last_error": state.get("last_error"),
                "next_due_at": state.get("next_due_at"),
                "entries": state.get("entries", 0),
            }
        )
    return out


async def sink_status(config: Config, store: Store, now: datetime) -> list[dict[str, Any]]:
    """Per configured sink: its delivery counts and whether it is enabled, paused or disabled;
    then any sink no longer configured that still has deliveries waiting."""
    counts = await store.outbox.sink_summaries()
    out = []
    for s in config.sinks:
        row = await store.outbox.sink_row(s.name)
        paused = row.paused_until is not None and row.paused_until > now
        out.append(
            {
                "name": s.name,
                "type": s.type,
                "disabled": row.disabled_at is not None,
                "disabled_at": _iso(row.disabled_at),
                "disabled_reason": row.disabled_reason,
                "paused_until": _iso(row.paused_until) if paused else None,
                "pause_reason": row.pause_reason if paused else None,
                **{k: counts.get(s.name, {}).get(k, 0) for k in DELIVERY_STATES},
            }
        )
    # A sink removed from the config keeps its queue in the store: show it, so that nothing
    # waits unseen (add it back to deliver, or it stays as history).
    configured = {s.name for s in config.sinks}
    for name in sorted(set(counts) - configured):
        waiting = {k: counts[name].get(k, 0) for k in DELIVERY_STATES}
        if waiting["pending"] or waiting["failed"]:
            out.append(
                {
                    "name": name,
                    "type": "not configured",
                    "disabled": False,
                    "disabled_at": None,
                    "disabled_reason": None,
                    "paused_until": None,
                    "pause_reason": None,
                    "unconfigured": True,
                    **waiting,
                }
            )
    return out


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None
