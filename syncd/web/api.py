"""The pull API under /api: events after a cursor (plain, long-poll, Server-Sent Events), entries
and one entry with its versions, and the OpenAPI document describing them.

Handlers validate parameters, read through the store's `Reads` and answer
JSON; every error is `{"error": <one line>, "code": <stable word>}`. Access control is the
server's (syncd.web.server); this module reads nothing but the store, and writes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

from aiohttp import web

from syncd.config import parse_duration
from syncd.errors import CursorGone, SearchQueryError, StoreError
from syncd.pull import EVENT_TYPES, Bell
from syncd.since import parse_since
from syncd.storage import Reads
from syncd.storage.reports import EntryKey, EntryQuery, EventPage
from syncd.web.openapi import DOCUMENT
from syncd.web.services import SERVICES

routes = web.RouteTableDef()

MAX_LIMIT = 1000
MAX_WAIT_S = 120.0
# A writer in another process (`syncd sync` beside the daemon) rings no bell here; a waiting
# request looks at the store this often anyway. The daemon's own commits wake it at once.
RECHECK_S = 5.0
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from closing an idle stream

T = TypeVar("T")
_INTEGER = re.compile(r"-?[0-9]+")
WAIT_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?")  # the OpenAPI document's, too


class ApiError(web.HTTPException):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: object,
    ) -> None:
        self.status_code = status
        body = {"error": message, "code": code, **extra}
        super().__init__(text=json.dumps(body), content_type="application/json", headers=headers)


# aiohttp's own refusals under /api/ (no such path, wrong method, body too large) in the API's
# error shape, so a client parses every error the same way.
_ROUTER_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turns the router's plain-text errors under /api/ into `{"error", "code"}` JSON."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        code = _ROUTER_CODES.get(exc.status, "http_error")
        message = f"{request.method} {request.path}: {exc.reason.lower()}"
        headers = {k: v for k, v in exc.headers.items() if k == "Allow"}
        raise ApiError(exc.status, code, message, headers=headers) from None


def bad(name: str, message: str) -> NoReturn:
    raise ApiError(400, "bad_parameter", f"{name}: {message}")


def _int(q: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):  # int() would take " 5", "+5", "1_0" and other digits
        bad(name, f"{raw!r} is not an integer")
    value = int(raw)
    if not low <= value <= high:
        bad(name, f"{value} is not between {low} and {high}")
    return value


def _bool(q: Mapping[str, str], name: str) -> bool:
    raw = q.get(name, "false")
    if raw not in ("true", "false"):
        bad(name, f"{raw!r} is not true or false")
    return raw == "true"


def _wait(q: Mapping[str, str]) -> float:
    """Seconds to hold a request; longer than MAX_WAIT_S is cut to it, as long-polls do."""
    raw = q.get("wait")
    if raw is None:
        return 0.0
    if not WAIT_PATTERN.fullmatch(raw):
        bad("wait", f"{raw!r} is not a duration (use e.g. 30s, 500ms, 2m)")
    return min(parse_duration(raw), MAX_WAIT_S)


async def _read(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    try:
        return await fn(*args)
    except SearchQueryError as e:
        raise ApiError(400, "bad_query", str(e)) from None
    except CursorGone as e:
        raise ApiError(410, "cursor_gone", str(e), restart_from=e.restart_from) from None
    except StoreError as e:
        raise ApiError(503, "store_unavailable", str(e)) from None


def _reader(request: web.Request) -> tuple[Reads, Bell]:
    services = request.app[SERVICES]
    if services.reader is None or services.bell is None:
        raise ApiError(503, "not_available", "this server has no store to read")
    return services.reader, services.bell


async def _filters(request: web.Request, reader: Reads) -> tuple[str | None, str | None]:
    q = request.query
    feed = q.get("feed") or None
    kind = q.get("type")
    if kind is not None and kind not in EVENT_TYPES:
        bad("type", f"{kind!r} is not one of {', '.join(EVENT_TYPES)}")
    if feed is not None and not await _read(reader.feed_exists, feed):
        raise ApiError(404, "unknown_feed", f"feed: no feed named {feed!r}")
    return feed, kind


async def _ring_or_timeout(ticket: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ticket.wait(), seconds)


@routes.get("/api/events")
async def events(request: web.Request) -> web.Response:
    reader, bell = _reader(request)
    q = request.query
    after = _int(q, "after", 0, 0, 2**63 - 1)
    limit = _int(q, "limit", 100, 1, MAX_LIMIT)
    wait_s = _wait(q)
    feed, kind = await _filters(request, reader)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        ticket = bell.ticket()  # before reading: a commit in between still wakes us
        page: EventPage = await _read(reader.events, after, limit, feed, kind)
        remaining = deadline - loop.time()
        if page.events or remaining <= 0:
            return web.json_response({"events": page.events, "next": page.next})
        after = page.next  # non-matching events need not be read again
        await _ring_or_timeout(ticket, min(remaining, RECHECK_S))


@routes.get("/api/events/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    reader, bell = _reader(request)
    resume = request.headers.get("Last-Event-ID")
    if resume is not None:
        try:
            after = int(resume)
        except ValueError:
            bad("Last-Event-ID", f"{resume!r} is not an event seq")
    else:
        after = _int(request.query, "after", 0, 0, 2**63 - 1)
    feed, kind = await _filters(request, reader)
    await _read(reader.events, after, 1, feed, kind)  # a pruned cursor: 410 before streaming
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    while True:
        ticket = bell.ticket()
        page = await _read(reader.events, after, MAX_LIMIT, feed, kind)
        for envelope in page.events:
            data = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
            frame = f"id: {envelope['data']['seq']}\nevent: {envelope['type']}\ndata: {data}\n\n"
            try:
                await response.write(frame.encode())
            except ConnectionResetError:  # the client went away
                return response
        after = page.next
        if not page.events:
            waited = asyncio.get_running_loop().time()
            await _ring_or_timeout(ticket, RECHECK_S)
            if asyncio.get_running_loop().time() - waited >= RECHECK_S:
                try:
                    await response.write(b": keepalive\n\n")
                except ConnectionResetError:
                    return response


@routes.get("/api/entries")
async def entries(request: web.Request) -> web.Response:
    reader, _ = _reader(request)
    q = request.query
    since = None
    if q.get("since"):
        try:
            since = parse_since(q["since"], datetime.now(UTC))
        except ValueError as e:
            bad("since", str(e))
    query = EntryQuery(
        feed=q.get("feed") or None,
        q=q.get("q") or None,
        since=since,
        include_deleted=_bool(q, "include_deleted"),
        limit=_int(q, "limit", 50, 1, MAX_LIMIT),
        after=_entry_cursor(q),
    )
    if query.feed is not None and not await _read(reader.feed_exists, query.feed):
        raise ApiError(404, "unknown_feed", f"feed: no feed named {query.feed!r}")
    index = request.app[SERVICES].index
    if query.q is not None and index is not None:
        # What the daemon committed but has not indexed yet is found too: the background
        # indexer is at most a batch or a second behind, so this is short.
        await _read(index)
    page = await _read(reader.entries, query)
    nxt = None if page.next is None else encode_entry_cursor(page.next)
    return web.json_response({"entries": page.entries, "next": nxt})


def encode_entry_cursor(key: EntryKey) -> str:
    """The opaque `next` of /api/entries: the last entry's sort key, base64url JSON."""
    raw = json.dumps([key.sort_at, key.feed_id, key.entry_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _entry_cursor(q: Mapping[str, str]) -> EntryKey | None:
    raw = q.get("after")
    if raw is None:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        sort_at, feed_id, entry_id = decoded
        if not (isinstance(sort_at, str) and isinstance(entry_id, str) and type(feed_id) is int):
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        bad("after", "not a cursor from this API's `next` (pass it back unchanged)")
    return EntryKey(sort_at, feed_id, entry_id)


@routes.get(r"/api/entries/{id:[\s\S]+}")  # any id, newlines included
async def entry(request: web.Request) -> web.Response:
    reader, _ = _reader(request)
    entry_id = request.match_info["id"]
    feed = request.query.get("feed") or None
    found = await _read(reader.entry, entry_id, feed)
    if not found:
        raise ApiError(404, "unknown_entry", f"no entry {entry_id!r}")
    if len(found) > 1:
        feeds = ", ".join(e["feed"] for e in found)
        raise ApiError(
            409, "ambiguous_entry", f"{entry_id!r} is in several feeds ({feeds}): pass feed="
        )
    return web.json_response(found[0])


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
