"""A realistic, controllable Blogger-style paged Atom feed served over HTTP, for end-to-end tests.

The model, :class:`BloggerFeed`, is built from the seed page (page 1 of the Google Research Blog,
25 of 515 entries).  Each seed entry becomes a *template*: its full XML is kept byte for byte
(content, categories, links, ``thr:total``, ``feedburner:origLink``, ``media:thumbnail``, ...) and
only the fields that differ from post to post are substituted when an entry is rendered.
``BloggerFeed(515)`` reproduces the seed's 25 entries verbatim as the newest ones and synthesises
the rest by cycling the templates, each copy with a unique post id, unique links (slug
``<seed-slug>-<cycle>``), a *published* time 105 days earlier per cycle (the list stays strictly
ordered newest first, as Blogger orders by published) and an ``<updated>`` carrying milliseconds
in a ``-07:00`` offset.  Generation is deterministic: two feeds built with the same arguments serve
identical bytes.

The HTTP side (:func:`make_feed_app`, :func:`serve_feed`) answers like Blogger:

* ``GET /feeds/posts/default`` (the feed URL) and ``GET /feeds/21224994/posts/default`` (the form
  next links use) with ``start-index`` (1-based) and ``max-results`` (default 25, capped at 500);
  ``redirect`` and other parameters are ignored.
* The feed header is the seed's, with ``openSearch:totalResults`` = the current entry count,
  ``openSearch:startIndex``, ``openSearch:itemsPerPage``, a ``rel="self"`` link equal to the URL
  requested, a ``rel="previous"`` link after page 1 and a ``rel="next"`` link while entries follow.
  The feed-level ``<updated>`` starts at the seed's and moves forward when an entry's ``<updated>``
  passes it (Blogger does this; pass ``track_feed_updated=False`` to freeze it).
* **Host switch.**  The server knows two base URLs for the same socket: ``base``
  (``http://127.0.0.1:PORT``) and ``alt_base`` (``http://localhost:PORT``).  With the default
  ``next_host="other"`` every next/previous link names the host the request did *not* use, so a walk
  that starts at ``base`` alternates 127.0.0.1 → localhost → 127.0.0.1 → ... and every hop crosses
  hosts.  With ``next_host="alternate"`` links always name ``alt_base`` (Blogger's own pattern:
  page 1 at feedburner, every later page at www.blogger.com).
* Strong ``ETag`` (a SHA-256 of the exact identity body bytes) and ``Last-Modified`` on each 200;
  ``304`` for a matching ``If-None-Match`` (or, when no ``If-None-Match`` is sent, an
  ``If-Modified-Since`` not older than the page's Last-Modified).  Last-Modified is a *logical*
  clock: ``2017-07-21T19:45:12Z`` plus one second per model change, assigned when a URL's bytes
  change, so it grows strictly whenever a page changes and tests stay deterministic.  gzip is
  used when the client accepts it (``Content-Encoding: gzip``, ETag ``"<hash>-gz"``); either
  ETag matches.
* **Changes query** (GData): ``orderby=updated`` lists the entries by ``<updated>``, newest first,
  and only then honours ``updated-min`` (entries updated at or after that instant); the paging,
  ``totalResults`` and next links follow that listing and keep both parameters.
  :meth:`BloggerFeed.set_changes` makes the server ignore the parameters (FeedBurner serves the
  plain feed) or refuse them (400).  :meth:`BloggerFeed.set_total_results` misstates
  ``openSearch:totalResults``.
* **Bot shield**: :meth:`BloggerFeed.set_shield` answers an HTML challenge page with 403 or 503
  (``Server: cloudflare``, ``cf-mitigated: challenge``), as a bot-protection proxy does.
* Faults, set through the controls: a truncated/empty/broken body, an HTML error page with 200, any
  status with headers (e.g. 503 + Retry-After), a delay before answering, a body trickled a few
  bytes at a time, and extra response headers (e.g. Cache-Control).

Controls are plain methods of :class:`BloggerFeed`; the same operations are exposed as
``POST /_control/{op}`` with a JSON object of keyword arguments (answer ``{"result": ...}``), which
:class:`RemoteFeed` wraps for a server running as a subprocess (see :func:`spawn_feed_server` and
``python -m tests.support.feedserver --port P --entries N --delay S``, which prints the port on
stdout and exits 0 on SIGTERM).  Every non-control request is logged as a :class:`RequestRecord`.

Listening: 127.0.0.1 only.  ``localhost`` resolves to 127.0.0.1 on this machine (``/etc/hosts``);
should it also resolve to ``::1``, the server additionally listens on ``[::1]`` at the same port
(best effort: clients fall back to 127.0.0.1 anyway).  All offsets are a fixed ``-07:00`` (the
seed's); real Blogger switches to ``-08:00`` in winter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import email.utils
import gzip
import hashlib
import html
import json
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast, get_args

import aiohttp
from aiohttp import web

__all__ = [
    "BLOGGER_FEED_PATH",
    "CONTROL_PREFIX",
    "DEFAULT_ENTRIES",
    "FEED_PATH",
    "ID_PREFIX",
    "PAGE_SIZE",
    "SEED_PATH",
    "BloggerFeed",
    "ChangesMode",
    "EntryInfo",
    "FeedServer",
    "MalformedKind",
    "NextHost",
    "RemoteFeed",
    "RequestRecord",
    "SpawnedFeedServer",
    "format_time",
    "make_feed_app",
    "parse_time",
    "serve_feed",
    "spawn_feed_server",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_PATH = REPO_ROOT / "tests" / "data" / "google-research-blog-page1.atom.xml"
BLOG_ID = "21224994"
ID_PREFIX = f"tag:blogger.com,1999:blog-{BLOG_ID}.post-"
FEED_PATH = "/feeds/posts/default"
BLOGGER_FEED_PATH = f"/feeds/{BLOG_ID}/posts/default"
CONTROL_PREFIX = "/_control"
DEFAULT_ENTRIES = 515
PAGE_SIZE = 25
MAX_RESULTS_CAP = 500
# synthetic cycles step back by more than the seed's span (101 days), so order stays strict
CYCLE_MS = 105 * 24 * 3600 * 1000
LM_BASE = 1_500_666_312  # 2017-07-21T19:45:12Z, the seed feed's <updated>: origin of Last-Modified

NextHost = Literal["other", "alternate"]
ChangesMode = Literal["serve", "ignore", "refuse", "unavailable"]
MalformedKind = Literal["truncated", "empty", "broken"]

_T = TypeVar("_T")
_OFFSET = timezone(timedelta(hours=-7))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MARK = "\x00"  # never occurs in XML text: separates literal template parts from field names

_ENTRY_RE = re.compile(r"<entry>.*?</entry>", re.S)
_ENTRY_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("id", re.compile(r"<id>(tag:blogger\.com,1999:blog-\d+\.post-\d+)</id>")),
    ("published", re.compile(r"<published>([^<]*)</published>")),
    ("updated", re.compile(r"<updated>([^<]*)</updated>")),
    ("title", re.compile(r"<title[^>]*>([^<]*)</title>")),
    ("content", re.compile(r"<content[^>]*>(.*?)</content>", re.S)),
    ("thr", re.compile(r"<thr:total>(\d+)</thr:total>")),
    (
        "comments_title",
        re.compile(r'<link rel="replies" type="text/html" [^>]*title="(\d+) Comments"'),
    ),
    ("alt_title", re.compile(r'<link rel="alternate" type="text/html" [^>]*title="([^"]*)"')),
)
_ORIGLINK_RE = re.compile(r"<feedburner:origLink>[^<]*?/((\d{4})/(\d{2})/([^/<]+)\.html)<")
_ALT_HREF_RE = re.compile(r'<link rel="alternate" type="text/html" href="([^"]*)"')
_HEADER_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("feed_updated", re.compile(r"<updated>([^<]*)</updated>")),
    ("nav", re.compile(r'(<link rel="next" [^>]*/>)')),
    ("total", re.compile(r"<openSearch:totalResults>(\d+)</openSearch:totalResults>")),
    ("start", re.compile(r"<openSearch:startIndex>(\d+)</openSearch:startIndex>")),
    ("per_page", re.compile(r"<openSearch:itemsPerPage>(\d+)</openSearch:itemsPerPage>")),
    ("self", re.compile(r'<(?:atom10:)?link [^>]*rel="self" [^>]*href="([^"]*)"')),
)

_CHALLENGE_PAGE = (
    "<!DOCTYPE html><html lang=en><head><title>Just a moment...</title></head><body>"
    '<div id="challenge-body-text">Checking if the site connection is secure</div>'
    '<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1"></script>'
    "</body></html>\n"
)

_HTML_ERROR_PAGE = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
    "  <title>Error 502 (Server Error)!!1</title>\n"
    "  <p><b>502.</b> <ins>That\u2019s an error.</ins>\n"
    "  <p>The server encountered a temporary error and could not complete your request."
    "<p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>\n"
).encode()


# --------------------------------------------------------------------------------------------
# time helpers


def format_time(ms: int) -> str:
    """Format epoch milliseconds the way Blogger does: ``2017-07-21T12:45:12.144-07:00``."""
    dt = datetime.fromtimestamp(ms // 1000, tz=_OFFSET)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}-07:00"


def parse_time(text: str) -> int:
    """Parse an RFC 3339 timestamp (any offset, any fraction) into exact epoch milliseconds."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _text(text: str) -> str:
    return html.escape(text, quote=False)


def _slugify(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)[:40].strip("-") or "post"


def _post_number(seed: str, taken: set[str]) -> str:
    """A deterministic 19-digit Blogger-like post number, unique within ``taken``."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"syncd-feedserver/{seed}/{salt}".encode()).digest()
        num = str(10**18 + int.from_bytes(digest[:8], "big") % (9 * 10**18))
        if num not in taken:
            taken.add(num)
            return num
        salt += 1


def _compile(
    raw: str, patterns: Sequence[tuple[str, re.Pattern[str]]]
) -> tuple[str, dict[str, str]]:
    """Replace each pattern's first group with a field marker; return marked text and the values."""
    spans: list[tuple[int, int, str]] = []
    values: dict[str, str] = {}
    for name, pattern in patterns:
        match = pattern.search(raw)
        if match is None:
            continue
        spans.append((match.start(1), match.end(1), name))
        values[name] = match.group(1)
    spans.sort()
    out: list[str] = []
    pos = 0
    for start, end, name in spans:
        if start < pos:
            raise ValueError(f"overlapping template fields near {name!r}")
        out.append(raw[pos:start])
        out.append(f"{_MARK}{name}{_MARK}")
        pos = end
    out.append(raw[pos:])
    return "".join(out), values


def _render(parts: Sequence[str], values: Mapping[str, str]) -> str:
    return "".join(values[p] if i % 2 else p for i, p in enumerate(parts))


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class _Template:
    """One seed entry with its varying fields carved out (odd ``parts`` are field names)."""

    parts: tuple[str, ...]
    num: str
    published_ms: int
    updated_ms: int
    title_xml: str
    alt_title_xml: str
    content_xml: str
    permapath: str
    slug: str
    comments: int


@dataclass(eq=False)
class _Entry:
    template: _Template
    num: str
    published_ms: int
    updated_ms: int
    title_xml: str
    alt_title_xml: str
    content_xml: str
    permapath: str
    slug: str
    comments: int = 0
    rendered: str | None = None

    @property
    def id(self) -> str:
        return ID_PREFIX + self.num

    def render(self) -> str:
        if self.rendered is None:
            values = {
                "id": self.id,
                "num": self.num,
                "published": format_time(self.published_ms),
                "updated": format_time(self.updated_ms),
                "title": self.title_xml,
                "alt_title": self.alt_title_xml,
                "content": self.content_xml,
                "thr": str(self.comments),
                "comments_title": str(self.comments),
                "permapath": self.permapath,
                "slug": self.slug,
            }
            self.rendered = _render(self.template.parts, values)
        return self.rendered


@dataclass(frozen=True)
class EntryInfo:
    """A read-only snapshot of one entry as the feed currently serves it."""

    id: str
    title: str  # unescaped text
    link: str  # the rel="alternate" href
    published: str  # exactly as served, e.g. 2017-07-21T12:00:00.000-07:00
    updated: str
    updated_ms: int  # epoch milliseconds of `updated`
    comments: int
    position: int  # 0-based index in the feed (newest first)
    xml: str  # the whole <entry> element as served


@dataclass(frozen=True)
class RequestRecord:
    """One request the feed server answered (control requests are not logged)."""

    method: str
    path: str  # path and query, exactly as requested
    host: str  # the Host header
    page: int | None  # 1-based page index for feed paths, else None
    start_index: int | None
    max_results: int | None
    if_none_match: str | None
    if_modified_since: str | None
    accept_encoding: str | None
    status: int | None  # None when the client went away before the answer was complete
    fault: str | None  # "status", "shield", "truncated", "empty", "broken", "html_error", "trickle"
    started: float  # time.monotonic() at arrival
    finished: float  # time.monotonic() when answered (or abandoned)
    user_agent: str | None = None

    @classmethod
    def of(
        cls,
        request: web.Request,
        *,
        page: int | None,
        start_index: int | None,
        max_results: int | None,
        status: int | None,
        fault: str | None,
        started: float,
    ) -> RequestRecord:
        """The record of `request`, finished now."""
        return cls(
            method=request.method,
            path=request.path_qs,
            host=request.host,
            page=page,
            start_index=start_index,
            max_results=max_results,
            if_none_match=request.headers.get("If-None-Match"),
            if_modified_since=request.headers.get("If-Modified-Since"),
            accept_encoding=request.headers.get("Accept-Encoding"),
            status=status,
            fault=fault,
            started=started,
            finished=time.monotonic(),
            user_agent=request.headers.get("User-Agent"),
        )

    @property
    def changes(self) -> bool:
        """Whether this was a changes query (``orderby=updated``)."""
        return "orderby=updated" in self.path

    @property
    def conditional(self) -> bool:
        """Whether the client sent If-None-Match or If-Modified-Since."""
        return self.if_none_match is not None or self.if_modified_since is not None


@dataclass
class _StatusRule:
    status: int
    headers: dict[str, str]
    body: str
    remaining: int | None  # None = until cleared


@dataclass(frozen=True)
class _Trickle:
    interval: float
    chunk: int


@dataclass(frozen=True)
class _Seed:
    header: tuple[str, ...]  # the feed header up to the first <entry>, fields carved out
    trailer: str  # everything after the last </entry>
    feed_updated_ms: int
    templates: tuple[_Template, ...]


def _load_seed(path: Path) -> _Seed:
    raw = path.read_text(encoding="utf-8")
    matches = list(_ENTRY_RE.finditer(raw))
    if not matches:
        raise ValueError(f"{path}: no <entry> elements")
    header, values = _compile(raw[: matches[0].start()], _HEADER_FIELDS)
    for required in ("feed_updated", "nav", "total", "start", "per_page", "self"):
        if required not in values:
            raise ValueError(f"{path}: feed header lacks {required!r}")
    return _Seed(
        header=tuple(header.split(_MARK)),
        trailer=raw[matches[-1].end() :],
        feed_updated_ms=parse_time(values["feed_updated"]),
        templates=tuple(_compile_entry(m.group(0)) for m in matches),
    )


def _compile_entry(raw: str) -> _Template:
    marked, values = _compile(raw, _ENTRY_FIELDS)
    for required in ("id", "published", "updated"):
        if required not in values:
            raise ValueError(f"template entry lacks <{required}>: {raw[:120]!r}")
    origin = _ORIGLINK_RE.search(raw)
    if origin is None:
        raise ValueError(f"template entry lacks feedburner:origLink: {values['id']}")
    permapath, slug = origin.group(1), origin.group(4)
    num = values["id"].rsplit("-", 1)[1]
    marked = marked.replace(permapath, f"{_MARK}permapath{_MARK}")
    marked = marked.replace(f"/{slug}.html", f"/{_MARK}slug{_MARK}.html")
    marked = marked.replace(num, f"{_MARK}num{_MARK}")
    return _Template(
        parts=tuple(marked.split(_MARK)),
        num=num,
        published_ms=parse_time(values["published"]),
        updated_ms=parse_time(values["updated"]),
        title_xml=values.get("title", ""),
        alt_title_xml=values.get("alt_title", ""),
        content_xml=values.get("content", ""),
        permapath=permapath,
        slug=slug,
        comments=int(values.get("thr", "0")),
    )


class BloggerFeed:
    """The feed's state: entries newest-first by published, faults, and the request log.

    Every control mutates in place and is immediately visible to the next request.  Entry ids are
    the full Atom ids (``tag:blogger.com,1999:blog-21224994.post-<number>``); an unknown id raises
    ``KeyError``.
    """

    def __init__(
        self,
        entries: int = DEFAULT_ENTRIES,
        *,
        page_size: int = PAGE_SIZE,
        seed_path: Path = SEED_PATH,
        track_feed_updated: bool = True,
    ) -> None:
        if entries < 0 or page_size < 1:
            raise ValueError("entries must be >= 0 and page_size >= 1")
        seed = _load_seed(seed_path)
        self.page_size = page_size
        self.track_feed_updated = track_feed_updated
        self._header = seed.header
        self._trailer = seed.trailer
        self._templates = seed.templates
        self._feed_updated_ms = seed.feed_updated_ms
        self._taken: set[str] = {t.num for t in seed.templates}
        self._entries: list[_Entry] = [self._synthesise(i) for i in range(entries)]
        self._by_id: dict[str, _Entry] = {e.id: e for e in self._entries}
        self._removed: dict[str, _Entry] = {}  # deleted entries, for restore_entry
        self._added = 0
        self._edits = 0
        self._generation = 0
        self._page_cache: dict[tuple[str, str | None, int, int, int | None], bytes] = {}
        self._validators: dict[tuple[str, str | None, int, int, str], tuple[str, int]] = {}
        self._gzip_cache: dict[str, bytes] = {}
        # faults
        self._malformed: tuple[int, MalformedKind] | None = None
        self._html_error: int | None = None
        self._status_rules: dict[int | None, _StatusRule] = {}
        self._delays: dict[int | None, float] = {}
        self._trickles: dict[int | None, _Trickle] = {}
        self._extra_headers: dict[int | None, dict[str, str]] = {}
        self._log: list[RequestRecord] = []
        self._changes: ChangesMode = "serve"
        self._total_results: dict[int | None, int] = {}  # misstated totals, by page
        self._shields: dict[int | None, int] = {}  # challenge status, by page

    # ----- construction -----

    def _synthesise(self, index: int) -> _Entry:
        template = self._templates[index % len(self._templates)]
        cycle = index // len(self._templates)
        if cycle == 0:
            return _Entry(
                template=template,
                num=template.num,
                published_ms=template.published_ms,
                updated_ms=template.updated_ms,
                title_xml=template.title_xml,
                alt_title_xml=template.alt_title_xml,
                content_xml=template.content_xml,
                permapath=template.permapath,
                slug=template.slug,
                comments=template.comments,
            )
        published = template.published_ms - cycle * CYCLE_MS
        jitter = (index * 7919) % 1000
        updated = published + (template.updated_ms - template.published_ms) + jitter
        slug = f"{template.slug}-{cycle}"
        return _Entry(
            template=template,
            num=_post_number(f"synth/{index}", self._taken),
            published_ms=published,
            updated_ms=updated,
            title_xml=template.title_xml,
            alt_title_xml=template.alt_title_xml,
            content_xml=template.content_xml,
            permapath=self._permapath(published, slug),
            slug=slug,
            comments=0,
        )

    @staticmethod
    def _permapath(published_ms: int, slug: str) -> str:
        dt = datetime.fromtimestamp(published_ms // 1000, tz=_OFFSET)
        return f"{dt:%Y/%m}/{slug}.html"

    # ----- reading -----

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int:
        """Bumped by every change to what the feed serves."""
        return self._generation

    def ids(self) -> list[str]:
        """All entry ids, in feed order (newest published first)."""
        return [e.id for e in self._entries]

    def entry(self, entry_id: str) -> EntryInfo:
        """A snapshot of one entry."""
        e = self._get(entry_id)
        return self._info(e, self._entries.index(e))

    def entries(self) -> list[EntryInfo]:
        """Snapshots of every entry, in feed order."""
        return [self._info(e, i) for i, e in enumerate(self._entries)]

    def page_of(self, entry_id: str, per_page: int | None = None) -> int:
        """The 1-based page on which the entry currently sits."""
        e = self._get(entry_id)
        return self._entries.index(e) // (per_page or self.page_size) + 1

    def page_count(self, per_page: int | None = None) -> int:
        """How many pages a full walk visits (at least 1: an empty feed still has page 1)."""
        size = per_page or self.page_size
        return max(1, -(-len(self._entries) // size))

    def _get(self, entry_id: str) -> _Entry:
        try:
            return self._by_id[entry_id]
        except KeyError:
            raise KeyError(f"no entry {entry_id!r}") from None

    def _info(self, e: _Entry, position: int) -> EntryInfo:
        xml = e.render()
        link = _ALT_HREF_RE.search(xml)
        return EntryInfo(
            id=e.id,
            title=html.unescape(e.title_xml),
            link=link.group(1) if link else "",
            published=format_time(e.published_ms),
            updated=format_time(e.updated_ms),
            updated_ms=e.updated_ms,
            comments=e.comments,
            position=position,
            xml=xml,
        )

    # ----- controls: content -----

    def _changed(self, e: _Entry | None = None) -> None:
        if e is not None:
            e.rendered = None
            if self.track_feed_updated and e.updated_ms > self._feed_updated_ms:
                self._feed_updated_ms = e.updated_ms
        self._generation += 1
        self._page_cache.clear()

    def add_entry(
        self,
        title: str = "A new post",
        *,
        content: str | None = None,
        published_ms: int | None = None,
    ) -> str:
        """Publish a post; by default it is the newest (1 h after the newest), so it lands on top.

        ``content`` is HTML (escaped into the XML as Blogger does).  Returns the new entry's id.
        An explicit ``published_ms`` places it by published time among the others.
        """
        self._added += 1
        n = self._added
        template = self._templates[(n - 1) % len(self._templates)]
        if published_ms is None:
            newest = max((e.published_ms for e in self._entries), default=template.published_ms)
            published_ms = newest + 3_600_000
        slug = f"{_slugify(title)}-a{n}"
        html_content = content if content is not None else f"<p>{_text(title)}</p>"
        e = _Entry(
            template=template,
            num=_post_number(f"added/{n}", self._taken),
            published_ms=published_ms,
            updated_ms=published_ms + 1000 + (n * 7919) % 1000,
            title_xml=_text(title),
            alt_title_xml=_attr(title),
            content_xml=_text(html_content),
            permapath=self._permapath(published_ms, slug),
            slug=slug,
        )
        position = 0
        while position < len(self._entries) and self._entries[position].published_ms > published_ms:
            position += 1
        self._entries.insert(position, e)
        self._by_id[e.id] = e
        self._changed(e)
        return e.id

    def edit_entry(
        self,
        entry_id: str,
        *,
        title: str | None = None,
        content: str | None = None,
        bump_updated_ms: int = 1000,
        updated_ms: int | None = None,
    ) -> str:
        """Edit a post: new title and/or content (HTML); ``<updated>`` moves by ``bump_updated_ms``,
        or to ``updated_ms`` when given (Blogger sets it to the time of the edit).

        Without title and content, a deterministic paragraph is appended to the content.  Use
        ``bump_updated_ms=0`` for a silent edit (content changes, ``<updated>`` does not).
        Returns the new ``<updated>`` string.
        """
        e = self._get(entry_id)
        if title is not None:
            e.title_xml = _text(title)
            e.alt_title_xml = _attr(title)
        if content is not None:
            e.content_xml = _text(content)
        if title is None and content is None:
            self._edits += 1
            e.content_xml += _text(f"<p>Edit {self._edits}.</p>")
        e.updated_ms = updated_ms if updated_ms is not None else e.updated_ms + bump_updated_ms
        self._changed(e)
        return format_time(e.updated_ms)

    @property
    def newest_updated_ms(self) -> int:
        """The newest ``<updated>`` of any entry: "now" in the feed's world, for realistic edits."""
        return max((e.updated_ms for e in self._entries), default=self._feed_updated_ms)

    def touch(self, entry_id: str, delta_ms: int) -> str:
        """Move ``<updated>`` by ``delta_ms`` (may be negative); nothing else changes."""
        e = self._get(entry_id)
        e.updated_ms += delta_ms
        self._changed(e)
        return format_time(e.updated_ms)

    def set_comment_count(self, entry_id: str, n: int) -> None:
        """Change only ``thr:total`` and the replies link title (``"n Comments"``)."""
        if n < 0:
            raise ValueError("comment count must be >= 0")
        e = self._get(entry_id)
        e.comments = n
        self._changed(e)

    def delete_entry(self, entry_id: str) -> None:
        """Remove a post; every later entry moves up one position."""
        e = self._get(entry_id)
        self._entries.remove(e)
        del self._by_id[entry_id]
        self._removed[entry_id] = e
        self._changed()

    def restore_entry(self, entry_id: str) -> None:
        """Publish a deleted post again, as it was, at its place by published time."""
        e = self._removed.pop(entry_id)
        position = 0
        while (
            position < len(self._entries) and self._entries[position].published_ms > e.published_ms
        ):
            position += 1
        self._entries.insert(position, e)
        self._by_id[entry_id] = e
        self._changed(e)

    # ----- controls: faults -----

    def set_malformed(self, page: int | None, kind: MalformedKind = "truncated") -> None:
        """Serve a broken body (200) for that page; ``None`` turns it off.

        ``truncated`` cuts the body in the middle of the page's last entry (a half-filled entry),
        ``empty`` serves zero bytes, ``broken`` serves the full length with one mismatched end tag.
        """
        if kind not in get_args(MalformedKind):
            raise ValueError(f"unknown malformed kind {kind!r}")
        self._malformed = None if page is None else (page, kind)

    def set_html_error(self, page: int | None) -> None:
        """Serve an HTML error page with status 200 for that page; ``None`` turns it off."""
        self._html_error = page

    def set_status(
        self,
        page: int | None,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        *,
        times: int | None = None,
        body: str = "",
    ) -> None:
        """Answer ``status`` (with ``headers`` and ``body``) for that page (``None``: every page).

        ``times`` limits how many requests get it (default: until cleared).  ``status=None``
        clears the rule for ``page`` (and ``page=None`` with ``status=None`` clears all rules).
        A page-specific rule wins over the every-page rule.
        """
        if status is None:
            if page is None:
                self._status_rules.clear()
            else:
                self._status_rules.pop(page, None)
            return
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        self._status_rules[page] = _StatusRule(status, dict(headers or {}), body, times)

    def set_delay(self, seconds: float, page: int | None = None) -> None:
        """Sleep ``seconds`` before answering each request for ``page`` (``None``: every page)."""
        if seconds <= 0:
            self._delays.pop(page, None)
        else:
            self._delays[page] = seconds

    def set_trickle(self, interval: float, chunk: int = 1, page: int | None = None) -> None:
        """Send 200 bodies ``chunk`` bytes per ``interval`` seconds (uncompressed); 0 turns off."""
        if interval <= 0:
            self._trickles.pop(page, None)
        else:
            self._trickles[page] = _Trickle(interval, max(1, chunk))

    def set_headers(self, headers: Mapping[str, str] | None, page: int | None = None) -> None:
        """Extra headers on 200/304 page answers (e.g. ``Cache-Control``); ``None`` removes them."""
        if headers is None:
            self._extra_headers.pop(page, None)
        else:
            self._extra_headers[page] = dict(headers)

    def set_changes(self, mode: ChangesMode) -> None:
        """How changes queries (``orderby=updated``) are answered: ``serve`` them (Blogger),
        ``ignore`` the parameters and serve the plain feed (FeedBurner), ``refuse`` them (400),
        or fail them for now (``unavailable``: 503)."""
        if mode not in get_args(ChangesMode):
            raise ValueError(f"unknown changes mode {mode!r}")
        self._changes = mode

    def set_total_results(self, value: int | None, page: int | None = None) -> None:
        """State ``value`` as ``openSearch:totalResults`` on that page (``None``: every page)
        instead of the true count; ``value=None`` states the truth again."""
        if value is None:
            self._total_results.pop(page, None)
        else:
            self._total_results[page] = value
        self._page_cache.clear()

    def set_shield(self, status: int | None, page: int | None = None) -> None:
        """Answer a bot shield's HTML challenge page with ``status`` (403 or 503) for that page
        (``None``: every page); ``status=None`` removes it."""
        if status is None:
            self._shields.pop(page, None)
        else:
            self._shields[page] = status

    def clear_faults(self) -> None:
        """Undo every fault, delay, trickle, extra header, shield and changes-query mode."""
        self._malformed = None
        self._html_error = None
        self._status_rules.clear()
        self._delays.clear()
        self._trickles.clear()
        self._extra_headers.clear()
        self._changes = "serve"
        self._total_results.clear()
        self._shields.clear()
        self._page_cache.clear()

    # ----- request log -----

    @property
    def log(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        return list(self._log)

    def reset_log(self) -> None:
        self._log.clear()

    def count(
        self,
        status: int | None = None,
        *,
        page: int | None = None,
        host: str | None = None,
        conditional: bool | None = None,
    ) -> int:
        """How many logged requests match every given criterion (``host`` matches the hostname)."""
        return sum(
            1
            for r in self._log
            if (status is None or r.status == status)
            and (page is None or r.page == page)
            and (host is None or r.host.rsplit(":", 1)[0] == host or r.host == host)
            and (conditional is None or r.conditional == conditional)
        )

    # ----- rendering -----

    def render_page(
        self,
        start_index: int = 1,
        max_results: int | None = None,
        *,
        self_url: str = "",
        nav_base: str | None = None,
        updated_min_ms: int | None = None,
    ) -> bytes:
        """The Atom bytes of one page.

        ``self_url`` is the rel="self" href; ``nav_base`` (``http://host:port``) prefixes the
        next/previous links.  ``updated_min_ms`` given: a page of the changes query (entries
        updated at or after it, newest ``<updated>`` first).
        """
        per_page = max_results or self.page_size
        key = (self_url, nav_base, start_index, per_page, updated_min_ms)
        cached = self._page_cache.get(key)
        if cached is not None:
            return cached
        listing = self._entries
        extra = ""
        if updated_min_ms is not None:
            listing = sorted(
                (e for e in self._entries if e.updated_ms >= updated_min_ms),
                key=lambda e: -e.updated_ms,
            )
            extra = f"&amp;orderby=updated&amp;updated-min={_query_time(updated_min_ms)}"
        total = len(listing)
        chosen = listing[start_index - 1 : start_index - 1 + per_page]
        nav: list[str] = []
        base = nav_base or ""
        if start_index > 1:
            previous = max(1, start_index - per_page)
            nav.append(self._nav_link("previous", base, previous, per_page, extra))
        if start_index - 1 + per_page < total:
            nav.append(self._nav_link("next", base, start_index + per_page, per_page, extra))
        page = (start_index - 1) // per_page + 1
        stated = _for_page(self._total_results, page)
        values = {
            "feed_updated": format_time(self._feed_updated_ms),
            "nav": "".join(nav),
            "total": str(total if stated is None else stated),
            "start": str(start_index),
            "per_page": str(per_page),
            "self": _attr(self_url),
        }
        parts = [_render(self._header, values)]
        parts.extend(e.render() for e in chosen)
        parts.append(self._trailer)
        body = "".join(parts).encode("utf-8")
        if len(self._page_cache) > 512:
            self._page_cache.clear()
        self._page_cache[key] = body
        return body

    @staticmethod
    def _nav_link(rel: str, base: str, start: int, per_page: int, extra: str = "") -> str:
        query = f"start-index={start}&amp;max-results={per_page}&amp;redirect=false{extra}"
        href = f"{base}{BLOGGER_FEED_PATH}?{query}"
        return f'<link rel="{rel}" type="application/atom+xml" href="{href}" />'

    def _validators_for(self, key: tuple[str, str | None, int, int, str], etag: str) -> int:
        """Last-Modified (epoch seconds) for ``key``; moves to the logical now when bytes change."""
        known = self._validators.get(key)
        if known is not None and known[0] == etag:
            return known[1]
        modified = LM_BASE + self._generation
        if known is not None and modified <= known[1]:
            modified = known[1] + 1
        self._validators[key] = (etag, modified)
        return modified

    def _gzip(self, etag: str, body: bytes) -> bytes:
        packed = self._gzip_cache.get(etag)
        if packed is None:
            if len(self._gzip_cache) > 256:
                self._gzip_cache.clear()
            packed = gzip.compress(body, compresslevel=5, mtime=0)
            self._gzip_cache[etag] = packed
        return packed

    def _take_status(self, page: int) -> _StatusRule | None:
        key: int | None = page if page in self._status_rules else None
        rule = self._status_rules.get(key)
        if rule is None:
            return None
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                del self._status_rules[key]
        return rule


def _for_page(table: Mapping[int | None, _T], page: int) -> _T | None:
    """The page's own setting, else the every-page (``None``) one."""
    return table[page] if page in table else table.get(None)


def _query_time(ms: int) -> str:
    """An instant as a query parameter value: RFC 3339 in UTC, milliseconds, ``+`` not needed."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _malform(body: bytes, kind: MalformedKind) -> bytes:
    if kind == "empty":
        return b""
    last_start = body.rfind(b"<entry>")
    last_end = body.rfind(b"</entry>")
    if kind == "truncated":
        if last_start < 0:
            return body[: len(body) // 2]
        return body[: last_start + (last_end - last_start) // 2]
    # broken: same length, one end tag that does not match
    if last_end < 0:
        return body.replace(b"</feed>", b"</fead>")
    return body[:last_end] + b"</entri>" + body[last_end + len(b"</entry>") :]


# --------------------------------------------------------------------------------------------
# the HTTP application


def _etag_matches(header: str, etags: Sequence[str]) -> bool:
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/")
        if tag in etags:
            return True
    return False


def _not_modified_since(header: str, modified: int) -> bool:
    try:
        since = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return modified <= since.timestamp()


class _FeedHandlers:
    """Request handlers bound to one feed and the server's two base URLs."""

    def __init__(
        self, feed: BloggerFeed, base: str, alt_base: str, next_host: NextHost, use_gzip: bool
    ) -> None:
        if next_host not in get_args(NextHost):
            raise ValueError(f"next_host must be one of {get_args(NextHost)}")
        self.feed = feed
        self.base = base
        self.alt_base = alt_base
        self.next_host = next_host
        self.use_gzip = use_gzip
        self._alt_netloc = alt_base.split("://", 1)[1]

    def nav_base(self, request_host: str) -> str:
        if self.next_host == "alternate":
            return self.alt_base
        return self.base if request_host == self._alt_netloc else self.alt_base

    async def page(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        status: int | None = None
        fault: str | None = None
        start: int | None = None
        per_page: int | None = None
        page: int | None = None
        try:
            try:
                start = int(request.query.get("start-index", "1"))
                per_page = min(
                    int(request.query.get("max-results", str(self.feed.page_size))), MAX_RESULTS_CAP
                )
            except ValueError:
                status = 400
                return web.Response(status=400, text="Invalid start-index or max-results\n")
            if start < 1 or per_page < 1:
                status = 400
                return web.Response(
                    status=400, text="start-index and max-results must be positive\n"
                )
            page = (start - 1) // per_page + 1
            updated_min: int | None = None
            if request.query.get("orderby") == "updated" and self.feed._changes != "ignore":
                if self.feed._changes == "refuse":
                    status = 400
                    return web.Response(status=400, text="Unsupported parameter: orderby\n")
                if self.feed._changes == "unavailable":
                    status = 503
                    return web.Response(status=503, text="Backend unavailable\n")
                try:
                    updated_min = parse_time(request.query.get("updated-min", "1970-01-01T00:00Z"))
                except ValueError:
                    status = 400
                    return web.Response(status=400, text="Invalid updated-min\n")
            response, status, fault = await self._answer(
                request, start, per_page, page, updated_min
            )
            return response
        finally:
            self.feed._log.append(
                RequestRecord.of(
                    request,
                    page=page,
                    start_index=start,
                    max_results=per_page,
                    status=status,
                    fault=fault,
                    started=started,
                )
            )

    async def _answer(
        self,
        request: web.Request,
        start: int,
        per_page: int,
        page: int,
        updated_min: int | None = None,
    ) -> tuple[web.StreamResponse, int, str | None]:
        feed = self.feed
        delay = _for_page(feed._delays, page)
        if delay:
            await asyncio.sleep(delay)
        shield = _for_page(feed._shields, page)
        if shield is not None:
            headers = {"Server": "cloudflare", "cf-mitigated": "challenge"}
            challenge = web.Response(
                status=shield, text=_CHALLENGE_PAGE, content_type="text/html", headers=headers
            )
            return challenge, shield, "shield"
        rule = feed._take_status(page)
        if rule is not None:
            return (
                web.Response(status=rule.status, headers=rule.headers, text=rule.body),
                rule.status,
                "status",
            )

        self_url = f"http://{request.host}{request.path_qs}"
        nav_base = self.nav_base(request.host)
        body = feed.render_page(
            start, per_page, self_url=self_url, nav_base=nav_base, updated_min_ms=updated_min
        )
        variant = "ok"
        content_type = "application/atom+xml; charset=UTF-8"
        if feed._html_error == page:
            body, variant, content_type = _HTML_ERROR_PAGE, "html_error", "text/html; charset=UTF-8"
        elif feed._malformed is not None and feed._malformed[0] == page:
            variant = feed._malformed[1]
            body = _malform(body, feed._malformed[1])
        fault = None if variant == "ok" else variant

        digest = hashlib.sha256(body).hexdigest()[:32]
        etag, gz_etag = f'"{digest}"', f'"{digest}-gz"'
        modified = feed._validators_for((self_url, nav_base, start, per_page, variant), etag)
        headers = {
            "Last-Modified": email.utils.formatdate(modified, usegmt=True),
            "Vary": "Accept-Encoding",
        }
        headers.update(_for_page(feed._extra_headers, page) or {})
        trickle = _for_page(feed._trickles, page)
        accepts_gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        use_gzip = self.use_gzip and accepts_gzip and trickle is None and bool(body)
        headers["ETag"] = gz_etag if use_gzip else etag

        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if (inm is not None and _etag_matches(inm, (etag, gz_etag))) or (
            inm is None and ims is not None and _not_modified_since(ims, modified)
        ):
            return web.Response(status=304, headers=headers), 304, fault

        headers["Content-Type"] = content_type
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=feed._gzip(etag, body), headers=headers), 200, fault
        if trickle is None:
            return web.Response(body=body, headers=headers), 200, fault
        response = web.StreamResponse(headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        for offset in range(0, len(body), trickle.chunk):
            await response.write(body[offset : offset + trickle.chunk])
            await asyncio.sleep(trickle.interval)
        await response.write_eof()
        return response, 200, fault or "trickle"

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        self.feed._log.append(
            RequestRecord.of(
                request,
                page=None,
                start_index=None,
                max_results=None,
                status=404,
                fault=None,
                started=time.monotonic(),
            )
        )
        return web.Response(status=404, text="Not found\n")

    async def control(self, request: web.Request) -> web.StreamResponse:
        op = request.match_info["op"]
        action = _CONTROL_OPS.get(op)
        if action is None:
            return web.json_response({"error": f"unknown control {op!r}"}, status=404)
        try:
            raw = await request.read()
            args = json.loads(raw) if raw.strip() else {}
            if not isinstance(args, dict):
                raise TypeError("control arguments must be a JSON object")
            result = action(self.feed, args)
        except KeyError as exc:
            return web.json_response({"error": str(exc.args[0] if exc.args else exc)}, status=404)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"result": result})


def _record_dict(record: RequestRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["conditional"] = record.conditional
    return data


_CONTROL_OPS: Mapping[str, Callable[[BloggerFeed, dict[str, Any]], Any]] = MappingProxyType(
    {
        "add_entry": lambda f, a: f.add_entry(**a),
        "edit_entry": lambda f, a: f.edit_entry(**a),
        "touch": lambda f, a: f.touch(**a),
        "set_comment_count": lambda f, a: f.set_comment_count(**a),
        "delete_entry": lambda f, a: f.delete_entry(**a),
        "restore_entry": lambda f, a: f.restore_entry(**a),
        "set_malformed": lambda f, a: f.set_malformed(**a),
        "set_html_error": lambda f, a: f.set_html_error(**a),
        "set_status": lambda f, a: f.set_status(**a),
        "set_delay": lambda f, a: f.set_delay(**a),
        "set_trickle": lambda f, a: f.set_trickle(**a),
        "set_headers": lambda f, a: f.set_headers(**a),
        "set_changes": lambda f, a: f.set_changes(**a),
        "set_total_results": lambda f, a: f.set_total_results(**a),
        "set_shield": lambda f, a: f.set_shield(**a),
        "clear_faults": lambda f, a: f.clear_faults(**a),
        "page_of": lambda f, a: f.page_of(**a),
        "ids": lambda f, a: f.ids(**a),
        "entry": lambda f, a: dataclasses.asdict(f.entry(**a)),
        "count": lambda f, a: f.count(**a),
        "log": lambda f, a: [_record_dict(r) for r in f.log],
        "reset_log": lambda f, a: f.reset_log(**a),
        "state": lambda f, a: {
            "entries": len(f),
            "generation": f.generation,
            "page_size": f.page_size,
        },
    }
)


def make_feed_app(
    feed: BloggerFeed,
    base: str,
    alt_base: str,
    *,
    next_host: NextHost = "other",
    use_gzip: bool = True,
) -> web.Application:
    """The aiohttp application serving ``feed``; ``base``/``alt_base`` are the two host URLs."""
    handlers = _FeedHandlers(feed, base, alt_base, next_host, use_gzip)
    app = web.Application()
    app.router.add_get(FEED_PATH, handlers.page)
    app.router.add_get(BLOGGER_FEED_PATH, handlers.page)
    app.router.add_post(CONTROL_PREFIX + "/{op}", handlers.control)
    app.router.add_route("*", "/{tail:.*}", handlers.not_found)
    return app


# --------------------------------------------------------------------------------------------
# running it


@dataclass(frozen=True)
class FeedServer:
    """Where a running feed server listens.  ``feed`` is None for a subprocess server."""

    port: int
    feed: BloggerFeed | None = field(default=None, compare=False)

    @property
    def model(self) -> BloggerFeed:
        """The in-process feed model (its controls); an error for a subprocess server."""
        if self.feed is None:
            raise RuntimeError("a subprocess feed server is driven through RemoteFeed")
        return self.feed

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alt_base(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def url(self) -> str:
        """The feed URL (page 1) on the primary host."""
        return self.base + FEED_PATH

    @property
    def alt_url(self) -> str:
        return self.alt_base + FEED_PATH

    @property
    def control_url(self) -> str:
        return self.base + CONTROL_PREFIX

    def page_url(self, page: int, per_page: int = PAGE_SIZE, *, alternate: bool = False) -> str:
        """The Blogger-style URL of a page, as next links spell it (``&`` unescaped)."""
        base = self.alt_base if alternate else self.base
        start = (page - 1) * per_page + 1
        return (
            f"{base}{BLOGGER_FEED_PATH}?start-index={start}&max-results={per_page}&redirect=false"
        )


def _localhost_has_ipv6() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(info[0] == socket.AF_INET6 for info in infos)


def bind_loopback(port: int = 0) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 (and on [::1] at the same port when localhost maps there)."""
    sock4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock4.bind(("127.0.0.1", port))
    except OSError:
        sock4.close()
        raise
    sockets = [sock4]
    if _localhost_has_ipv6():
        sock6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock6.bind(("::1", sock4.getsockname()[1]))
            sockets.append(sock6)
        except OSError:  # no IPv6 loopback, or the port is taken there: 127.0.0.1 still serves
            sock6.close()
    return sockets


@contextlib.asynccontextmanager
async def run_on_loopback(
    make_app: Callable[[int], web.Application], port: int = 0, *, shutdown_timeout: float = 0.5
) -> AsyncIterator[int]:
    """Bind loopback at ``port`` (0: a free one), serve ``make_app(chosen_port)``, yield the port.

    Handlers of clients that disconnect are cancelled; on exit in-flight handlers get
    ``shutdown_timeout`` seconds before they are cancelled too, and every socket is closed.
    """
    sockets = bind_loopback(port)
    chosen = sockets[0].getsockname()[1]
    runner = web.AppRunner(
        make_app(chosen),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
    )
    try:
        await runner.setup()
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        yield chosen
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()


@contextlib.asynccontextmanager
async def serve_feed(
    feed: BloggerFeed | None = None,
    *,
    port: int = 0,
    next_host: NextHost = "other",
    use_gzip: bool = True,
) -> AsyncIterator[FeedServer]:
    """Serve ``feed`` (default: a fresh 515-entry feed) in this event loop.

    ``async with serve_feed(feed) as server:`` then fetch ``server.url``; controls act on ``feed``
    (also ``server.feed``).
    """
    model = feed if feed is not None else BloggerFeed()

    def make_app(chosen: int) -> web.Application:
        info = FeedServer(port=chosen)
        return make_feed_app(
            model, info.base, info.alt_base, next_host=next_host, use_gzip=use_gzip
        )

    async with run_on_loopback(make_app, port) as chosen:
        yield FeedServer(port=chosen, feed=model)


# --------------------------------------------------------------------------------------------
# a feed server in another process


class RemoteFeed:
    """The controls of a feed server reached over HTTP (``POST /_control/{op}``).

    Methods mirror :class:`BloggerFeed`'s.  Use ``async with RemoteFeed(server.control_url) as f``.
    """

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RemoteFeed:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, op: str, **args: Any) -> Any:
        """Run one control; raises ``KeyError`` (404), ``ValueError`` (400) or ``RuntimeError``."""
        if self._session is None:
            raise RuntimeError("RemoteFeed used outside 'async with'")
        async with self._session.post(f"{self.control_url}/{op}", json=args) as response:
            data = await response.json()
        if response.status == 404:
            raise KeyError(data.get("error"))
        if response.status == 400:
            raise ValueError(data.get("error"))
        if response.status != 200:
            raise RuntimeError(f"control {op}: HTTP {response.status}: {data}")
        return data["result"]

    async def add_entry(self, title: str = "A new post", **kw: Any) -> str:
        return cast(str, await self.call("add_entry", title=title, **kw))

    async def edit_entry(self, entry_id: str, **kw: Any) -> str:
        return cast(str, await self.call("edit_entry", entry_id=entry_id, **kw))

    async def touch(self, entry_id: str, delta_ms: int) -> str:
        return cast(str, await self.call("touch", entry_id=entry_id, delta_ms=delta_ms))

    async def set_comment_count(self, entry_id: str, n: int) -> None:
        await self.call("set_comment_count", entry_id=entry_id, n=n)

    async def delete_entry(self, entry_id: str) -> None:
        await self.call("delete_entry", entry_id=entry_id)

    async def restore_entry(self, entry_id: str) -> None:
        await self.call("restore_entry", entry_id=entry_id)

    async def set_malformed(self, page: int | None, kind: MalformedKind = "truncated") -> None:
        await self.call("set_malformed", page=page, kind=kind)

    async def set_html_error(self, page: int | None) -> None:
        await self.call("set_html_error", page=page)

    async def set_status(
        self,
        page: int | None,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> None:
        await self.call("set_status", page=page, status=status, headers=dict(headers or {}), **kw)

    async def set_delay(self, seconds: float, page: int | None = None) -> None:
        await self.call("set_delay", seconds=seconds, page=page)

    async def clear_faults(self) -> None:
        await self.call("clear_faults")

    async def page_of(self, entry_id: str, per_page: int | None = None) -> int:
        return cast(int, await self.call("page_of", entry_id=entry_id, per_page=per_page))

    async def ids(self) -> list[str]:
        return cast(list[str], await self.call("ids"))

    async def log(self) -> list[RequestRecord]:
        rows = cast(list[dict[str, Any]], await self.call("log"))
        names = {f.name for f in dataclasses.fields(RequestRecord)}
        return [RequestRecord(**{k: v for k, v in row.items() if k in names}) for row in rows]

    async def count(self, status: int | None = None, **kw: Any) -> int:
        return cast(int, await self.call("count", status=status, **kw))

    async def reset_log(self) -> None:
        await self.call("reset_log")


@dataclass
class SpawnedFeedServer:
    """A feed server running as a subprocess (``process``), with its HTTP controls (``control``)."""

    server: FeedServer
    process: asyncio.subprocess.Process
    control: RemoteFeed

    @property
    def url(self) -> str:
        return self.server.url


async def read_port(process: asyncio.subprocess.Process, within: float = 15.0) -> int:
    """Read the port a ``__main__`` entry prints as its first stdout line.

    The child's stderr is inherited, so pytest shows it with the failing test.
    """
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), within)
    if not line.strip().isdigit():
        raise RuntimeError(f"server did not print its port (got {line!r}); see its stderr")
    return int(line)


async def stop_process(process: asyncio.subprocess.Process, grace: float = 10.0) -> int:
    """SIGTERM the process (SIGKILL after ``grace`` s), drain its pipes, return its exit code."""
    if process.returncode is None:
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            await stream.read()
    return cast(int, process.returncode)


@contextlib.asynccontextmanager
async def spawn_feed_server(
    *,
    entries: int = DEFAULT_ENTRIES,
    delay: float = 0.0,
    port: int = 0,
    page_size: int = PAGE_SIZE,
    next_host: NextHost = "other",
    extra_args: Sequence[str] = (),
) -> AsyncIterator[SpawnedFeedServer]:
    """Run ``python -m tests.support.feedserver`` as a subprocess for the duration of the block."""
    argv = [
        sys.executable,
        "-m",
        "tests.support.feedserver",
        f"--port={port}",
        f"--entries={entries}",
        f"--delay={delay}",
        f"--page-size={page_size}",
        f"--next-host={next_host}",
        *extra_args,
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        info = FeedServer(port=await read_port(process))
        async with RemoteFeed(info.control_url) as control:
            yield SpawnedFeedServer(server=info, process=process, control=control)
    finally:
        await stop_process(process)


async def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.feedserver", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each page")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--next-host", choices=get_args(NextHost), default="other")
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args(argv)
    feed = BloggerFeed(args.entries, page_size=args.page_size)
    feed.set_delay(args.delay)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve_feed(
        feed, port=args.port, next_host=args.next_host, use_gzip=not args.no_gzip
    ) as server:
        print(server.port, flush=True)
        await stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
