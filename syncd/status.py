"""What `syncd status` and `syncd feeds list` report, as plain data: per configured feed its
last crawl (and how it is configured), per sink its delivery counts and state. The CLI prints
it (or its JSON); other views can serve the same data.

Reads the store only; it never writes, and it needs no secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from syncd.config import Config, FeedConfig
from syncd.schedule import is_stale
from syncd.storage import Store
from syncd.storage.values import Subscription
from syncd.timestamps import from_text
from syncd.websub import is_live

__all__ = [
    "DELIVERY_STATES",
    "describe_websub",
    "feed_list",
    "feed_outcome",
    "sink_status",
    "status_report",
]

DELIVERY_STATES = ("pending", "failed", "dead", "delivered")


def feed_outcome(summary: dict[str, Any]) -> str:
    """A feed's last outcome in words. A crawl that committed pages and never finished (Ctrl-C,
    a crash) reads as interrupted, not as a missing outcome."""
    outcome = summary.get("last_outcome")
    if summary.get("crawl_incomplete"):
        return f"{outcome}, then interrupted" if outcome else "interrupted"
    return str(outcome) if outcome else "never synced"


def describe_websub(w: dict[str, Any] | None) -> str:
    """One line for a feed's WebSub subscription (its `status` row's `websub`): hub, state,
    lease, pushes, and whether its pushes are trusted."""
    if not w:
        return "no hub subscribed"
    text = (
        f"{w['state']} at {w['hub']}"
        + (f", lease until {_second(w['lease_expires_at'])}" if w["lease_expires_at"] else "")
        + f", {w['pushes']} pushes, {w['rejected']} rejected"
        + (f", last push {_second(w['last_push_at'])}" if w["last_push_at"] else "")
        + (f" ({w['reason']})" if w["reason"] else "")
    )
    if w["unreliable_at"]:
        text += (
            f"; UNRELIABLE since {_second(w['unreliable_at'])}: {w['unreliable_reason']}"
            " (polled at its own interval)"
        )
    return text


async def websub_summaries(store: Store, now: datetime) -> dict[str, dict[str, Any]]:
    """Per feed name, its current subscription: the live one, else the newest request (a denied
    or pending one says why nothing is pushed)."""
    current: dict[str, Subscription] = {}
    for s in await store.websub.all_subscriptions():
        held = current.get(s.feed_name)
        if held is None or not _live(held, now) or _live(s, now):
            current[s.feed_name] = s
    return {
        name: {
            "hub": s.hub,
            "topic": s.topic,
            "state": s.state,
            "reason": s.reason,
            "lease_expires_at": _iso(s.expires_at),
            "renew_at": _iso(s.renew_at),
            "last_push_at": _iso(s.last_push_at),
            "pushes": s.pushes,
            "rejected": s.rejected,
            "unreliable_at": _iso(s.unreliable_at),
            "unreliable_reason": s.unreliable_reason,
        }
        for name, s in current.items()
    }


def _live(s: Subscription, now: datetime) -> bool:
    return is_live(s.state, s.expires_at, now)


def _second(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def status_report(
    config: Config, store: Store, now: datetime, feeds: Sequence[FeedConfig] | None = None
) -> dict[str, Any]:
    """Every configured feed (a feed never synced too; only `feeds` when given) and every sink,
    as `status --json`."""
    known = {f["name"]: f for f in await store.feed_summaries()}
    websub = await websub_summaries(store, now)
    out = []
    for f in config.feeds if feeds is None else feeds:
        row = dict(known.get(f.name) or {"name": f.name, "url": f.url})
        row["last_outcome"] = feed_outcome(row)
        row["crawl_incomplete"] = bool(row.get("crawl_incomplete"))
        row["tags"] = list(f.tags)
        if f.name in known:
            newest = from_text(row.get("newest_updated"))
            row["stale"] = is_stale(newest, f.expect_update_within_s, now)
        row["websub"] = websub.get(f.name)  # None: no hub subscribed (or none advertised)
        out.append(row)
    return {
        "feeds": out,
        "sinks": await sink_status(config, store, now),
        "workers": await store.worker_summaries(now),
        # Entries whose index row is stale: the daemon's indexer (or `syncd index`) catches up.
        "search": {"pending": await store.search_pending()},
    }


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
