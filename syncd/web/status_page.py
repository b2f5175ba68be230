"""The status page: GET / (feeds, sinks, latest events), GET /feeds/{name} (one feed and its
events) and GET /status.json (the same data as `syncd status --json`).

Server-rendered HTML with inline CSS and no script: readable on a phone (tables scroll inside
their own box, the page never scrolls sideways) and in any browser. Every value is escaped.
This module only renders what the daemon's services give it; it reads no store itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from aiohttp import web

from syncd import __version__
from syncd.overview import Overview
from syncd.status import describe_websub
from syncd.web.services import SERVICES, Services

routes = web.RouteTableDef()

EVENTS_ON_INDEX = 20
EVENTS_ON_FEED = 50

_CSS = """
:root { color-scheme: light dark; --muted: #777; --bad: #c0392b; --warn: #b9770e; --ok: #1e8449; }
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 0.75rem; max-width: 70rem; }
h1 { font-size: 1.3rem; margin: 0.2rem 0; } h2 { font-size: 1.1rem; margin: 1.2rem 0 0.4rem; }
p.summary { margin: 0.2rem 0 0.8rem; color: var(--muted); }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid #8884;
         vertical-align: top; }
/* one line per cell, the table scrolls in its box; only the last column wraps */
th, td { white-space: nowrap; } td:last-child { white-space: normal; min-width: 12rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: var(--bad); } .warn { color: var(--warn); } .ok { color: var(--ok); }
.small { font-size: 0.85rem; color: var(--muted); } a { color: inherit; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 0.8rem; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
"""


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    s = request.app[SERVICES]
    report, overview = await s.status(), await s.overview()
    events = await s.events(None, EVENTS_ON_INDEX)
    return _html(render_index(report, overview, events, await s.summary()))


@routes.get("/feeds/{name}")
async def feed_page(request: web.Request) -> web.Response:
    s = request.app[SERVICES]
    name = request.match_info["name"]
    feed = next((f for f in (await s.status())["feeds"] if f["name"] == name), None)
    if feed is None:
        raise web.HTTPNotFound(text=f"no feed named {name!r}")
    return _html(render_feed(feed, await s.overview(), await s.events(name, EVENTS_ON_FEED)))


@routes.get("/status.json")
async def status_json(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SERVICES].status(), dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2)


def _html(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html", charset="utf-8")


# ---------------------------------------------------------------------- rendering (pure)


def render_index(
    report: Mapping[str, Any],
    overview: Overview,
    events: Sequence[Mapping[str, Any]],
    summary: str,
) -> str:
    feeds = [
        [
            f'<a href="/feeds/{quote(f["name"], safe="")}">{escape(f["name"])}</a>',
            _outcome(f),
            _when(_last_success(f, overview), overview.taken_at),
            _next_poll(f, overview.taken_at),
            _num(f.get("entries", 0)),
            escape(_short(f.get("last_error"), 120)),
        ]
        for f in report["feeds"]
    ]
    sinks = [
        [
            escape(s["name"]),
            escape(s["type"]),
            _num(s["pending"] + s["failed"]),
            _num(s["dead"], bad=True),
            _num(s["delivered"]),
            _lag(overview, s["name"]),
            _sink_state(s),
        ]
        for s in report["sinks"]
    ]
    return _page(
        "syncd status",
        f"<h1>syncd</h1><p class=summary id=summary>{escape(summary)}</p>"
        + "<h2>Feeds</h2>"
        + _table(
            ["Feed", "Last poll", "Last success", "Next poll", "Entries", "Error"],
            feeds,
            "feeds",
            numeric={4},
        )
        + "<h2>Sinks</h2>"
        + _table(
            ["Sink", "Type", "Waiting", "Dead", "Delivered", "Delivery lag", "State"],
            sinks,
            "sinks",
            numeric={2, 3, 4, 5},
        )
        + "<h2>Latest events</h2>"
        + _events_table(events, with_feed=True),
        overview.taken_at,
    )


def render_feed(
    feed: Mapping[str, Any], overview: Overview, events: Sequence[Mapping[str, Any]]
) -> str:
    now = overview.taken_at
    facts = [
        ("URL", escape(feed.get("url") or "")),
        ("Title", escape(feed.get("title") or "-")),
        ("Last poll", f"{_outcome(feed)} {_when(feed.get('last_fetch_at'), now)}"),
        ("Last success", _when(_last_success(feed, overview), now)),
        ("Next poll", _next_poll(feed, now)),
        ("Entries", _num(feed.get("entries", 0))),
        ("Consecutive errors", _num(feed.get("consecutive_errors") or 0, bad=True)),
        ("Last error", escape(feed.get("last_error") or "-")),
        ("Last full crawl", _when(feed.get("last_full_sync_at"), now)),
        ("WebSub", escape(describe_websub(feed.get("websub")))),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return _page(
        f"syncd: {feed['name']}",
        f'<p><a href="/" id=back>&larr; All feeds and sinks</a></p>'
        f"<h1 id=feed-name>{escape(feed['name'])}</h1><dl id=facts>{dl}</dl>"
        "<h2>Latest events</h2>" + _events_table(events, with_feed=False),
        now,
    )


def _page(title: str, body: str, now: datetime) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}"
        f"<p class=small>syncd {escape(__version__)} &middot; {_iso(now)}"
        ' &middot; <a href="/metrics">metrics</a> &middot; <a href="/status.json">JSON</a></p>'
        "</body></html>"
    )


def _table(
    heads: Sequence[str], rows: Iterable[Sequence[str]], ident: str, numeric: set[int]
) -> str:
    def cls(i: int) -> str:
        return " class=num" if i in numeric else ""

    head = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(heads))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    if not body:
        body = f"<tr><td colspan={len(heads)} class=small>none</td></tr>"
    table = f"<table id={ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class=scroll>{table}</div>"


def _events_table(events: Sequence[Mapping[str, Any]], *, with_feed: bool) -> str:
    rows = []
    for e in events:
        title = escape(e.get("title") or e["entry_id"])
        link = e.get("link")
        cell = f'<a href="{escape(link)}" rel=noreferrer>{title}</a>' if link else title
        row = [_num(e["seq"]), _iso_text(e["created_at"]), escape(e["type"])]
        if with_feed:
            row.append(f'<a href="/feeds/{quote(e["feed"], safe="")}">{escape(e["feed"])}</a>')
        rows.append([*row, cell])
    heads = ["Seq", "At", "Type", *(["Feed"] if with_feed else []), "Entry"]
    return _table(heads, rows, "events", numeric={0})


def _outcome(f: Mapping[str, Any]) -> str:
    outcome = f.get("last_outcome") or "never synced"
    css = (
        "ok"
        if outcome in ("ok", "not_modified")
        else "bad"
        if outcome in ("error", "gone")
        else "warn"
    )
    errors = f.get("consecutive_errors") or 0
    extra = f" &times;{errors}" if errors > 1 else ""
    return f"<span class={css}>{escape(str(outcome))}</span>{extra}"


def _last_success(f: Mapping[str, Any], overview: Overview) -> datetime | None:
    figures = next((x for x in overview.feeds if x.name == f["name"]), None)
    return figures.last_success_at if figures is not None else None


def _next_poll(f: Mapping[str, Any], now: datetime) -> str:
    outcome = f.get("last_outcome") or ""
    due = f.get("next_due_at")
    if outcome.startswith("gone"):
        return "<span class=bad>never: the feed is gone (410)</span>"
    when = _when(due, now, future=True) if due else "now"
    if outcome.startswith("throttled"):
        why = "the publisher asked to wait"
    elif f.get("consecutive_errors"):
        why = f"back-off after {f['consecutive_errors']} failed polls"
    elif f.get("full_crawl_reason"):
        why = f"full crawl: {_short(f['full_crawl_reason'], 80)}"
    elif not f.get("last_fetch_at"):
        why = "first sync"
    else:
        why = "on schedule"
    return f"{when} <span class=small>({escape(why)})</span>"


def _sink_state(s: Mapping[str, Any]) -> str:
    if s.get("unconfigured"):
        return "<span class=warn>removed from the config; its queue waits</span>"
    if s["disabled"]:
        reason = escape(_short(s.get("disabled_reason") or "by operator", 100))
        return f"<span class=bad>disabled</span> <span class=small>{reason}</span>"
    if s.get("paused_until"):
        reason = escape(_short(s.get("pause_reason"), 100))
        return (
            f"<span class=warn>paused until {_iso_text(s['paused_until'])}</span>"
            f" <span class=small>{reason}</span>"
        )
    return "<span class=ok>enabled</span>"


def _lag(overview: Overview, sink: str) -> str:
    figures = overview.sinks.get(sink)
    lag = figures.lag_s(overview.taken_at) if figures is not None else 0.0
    return _duration(lag) if lag else "-"


def _num(n: int, *, bad: bool = False) -> str:
    return f"<span class=bad>{n}</span>" if bad and n else str(n)


def _when(value: datetime | str | None, now: datetime, *, future: bool = False) -> str:
    if value is None:
        return "-"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    seconds = (at - now).total_seconds() if future else (now - at).total_seconds()
    if seconds <= 0:
        return f'<time datetime="{_iso(at)}">now</time>'
    words = f"in {_duration(seconds)}" if future else f"{_duration(seconds)} ago"
    return f'<time datetime="{_iso(at)}" title="{_iso(at)}">{words}</time>'


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso_text(text: str) -> str:
    return _iso(datetime.fromisoformat(text))


def _short(text: str | None, width: int) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


__all__ = ["Services", "render_feed", "render_index", "routes"]
