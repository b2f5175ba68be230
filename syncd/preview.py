"""`syncd preview URL`: fetch and parse a feed the way a sync would, store nothing, and say what
syncd would make of it (pages, parse path, validators, hub, changes query, cadence).

It runs the real fetcher (address guard, body cap, redirects, User-Agent) and the real parse
paths, handed in by the composition root, and the same pure judgements the syncer makes
(`changes.detect_base`, `websub.discover`, `schedule.cache_lifetime`/`publisher_cadence`).
It never touches the store: nothing here knows one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.changes import OVERLAP, ChangesSetting, detect_base, query_url
from syncd.config import FeedConfig
from syncd.errors import FetchError, ParseError
from syncd.model import FetchResult, ParsedPage
from syncd.netguard import host_of
from syncd.parse import Declined, parse_page_fast
from syncd.schedule import cache_lifetime, publisher_cadence
from syncd.sync import PageFetcher, PageParser
from syncd.timestamps import to_text
from syncd.websub import advertised

__all__ = ["PageView", "Preview", "preview_feed"]

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class PageView:
    """One fetched page as a preview shows it."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    bytes: int
    elapsed_ms: float
    etag: str | None
    last_modified: str | None
    parse_path: str  # "fast (lxml)" or "feedparser"
    declined: str | None  # why the fast path left it to feedparser
    page: ParsedPage

    def as_dict(self) -> dict[str, Any]:
        p = self.page
        return {
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "content_type": self.content_type,
            "bytes": self.bytes,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "etag": self.etag,
            "last_modified": self.last_modified,
            "parse_path": self.parse_path,
            "declined": self.declined,
            "title": p.feed_title,
            "next": p.next_url,
            "prev_archive": p.prev_archive_url,
            "total_results": p.total_results,
            "items_per_page": p.items_per_page,
            "complete": p.complete,
            "archive": p.archive,
            "malformed": p.malformed,
            "warnings": list(p.warnings),
            "tombstones": [t.ref for t in p.tombstones],
            "entries": [
                {
                    "id": e.entry_id,
                    "id_source": e.id_source,
                    "updated": to_text(e.updated),
                    "published": to_text(e.published),
                    "title": e.title,
                    "link": e.link,
                }
                for e in p.entries
            ],
        }


@dataclass
class Preview:
    url: str
    pages: list[PageView] = field(default_factory=list)
    hub: str | None = None
    self_url: str | None = None
    error: str | None = None  # the page that failed, and why
    plan: list[str] = field(default_factory=list)  # what a sync would do, in sentences

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "pages": [p.as_dict() for p in self.pages],
            "hub": self.hub,
            "self": self.self_url,
            "error": self.error,
            "syncd_would": self.plan,
        }


async def preview_feed(
    url: str,
    *,
    fetcher: PageFetcher,
    parser: PageParser,
    feed: FeedConfig,
    clock: Clock,
    pages: int = 1,
) -> Preview:
    """Fetch up to `pages` pages of the feed at `url` (following its next links), parse them,
    and judge them as a sync of `feed` (its options) would. A failure ends the walk and is
    reported in `error`, never raised."""
    preview = Preview(url)
    # Trust is the configured feed's (DESIGN §7): its own host may be private, others may not.
    trusted = host_of(url)
    next_url: str | None = url
    seen: set[str] = set()
    first: FetchResult | None = None
    while next_url is not None and len(preview.pages) < pages and next_url not in seen:
        seen.add(next_url)
        try:
            result = await fetcher.fetch(next_url, trusted_host=trusted)
            view = await _parse(result, parser, feed)
        except (FetchError, ParseError) as e:
            preview.error = f"{getattr(e, 'url', next_url)}: {e}"
            break
        first = first or result
        preview.pages.append(view)
        next_url = view.page.next_url or view.page.prev_archive_url
    if first is not None and preview.pages:
        preview.hub, preview.self_url = advertised(first.headers, first.body, first.final_url)
        preview.plan = _plan(preview, first, feed, clock())
    return preview


async def _parse(result: FetchResult, parser: PageParser, feed: FeedConfig) -> PageView:
    """The page through the parser syncd uses; which path read it is asked of the fast path
    first (pure, the same call the parser makes), so the answer cannot differ from a sync's."""
    fast = await asyncio.to_thread(
        functools.partial(
            parse_page_fast,
            result.body,
            url=result.final_url,
            headers=result.headers,
            ignore_fields=feed.ignore_fields,
        )
    )
    page = await parser.parse(
        result.body, url=result.final_url, headers=result.headers, ignore_fields=feed.ignore_fields
    )
    return PageView(
        url=result.url,
        final_url=result.final_url,
        status=result.status,
        content_type=result.headers.get("content-type"),
        bytes=len(result.body),
        elapsed_ms=result.elapsed_ms,
        etag=result.etag,
        last_modified=result.last_modified,
        parse_path="feedparser" if isinstance(fast, Declined) else "fast (lxml)",
        declined=fast.reason if isinstance(fast, Declined) else None,
        page=page,
    )


def _plan(preview: Preview, first: FetchResult, feed: FeedConfig, now: datetime) -> list[str]:
    """What a sync of this feed would do, from what its pages say about themselves."""
    page1 = preview.pages[0].page
    walked = preview.pages[-1].page
    plan: list[str] = []
    more = walked.next_url or walked.prev_archive_url
    if page1.complete:
        plan.append(
            "read one complete document (RFC 5005 fh:complete): an entry it stops listing"
            " is deleted at once"
        )
    elif more is None:
        plan.append(f"read {len(preview.pages)} page(s): the chain ends there")
    else:
        pages = f"at most {feed.max_pages} pages"
        if page1.total_results and page1.entries:
            per_page = page1.items_per_page or len(page1.entries)
            needed = -(-page1.total_results // per_page)
            pages = f"about {min(needed, feed.max_pages)} pages ({page1.total_results} entries)"
        plan.append(f"first sync: walk the next links, {pages}; later polls stop at page 1")
    if page1.archive:
        plan.append("an RFC 5005 archive page: fetched once, never again")
    entries = sum(len(p.page.entries) for p in preview.pages)
    plan.append(
        f"store the {entries} entries read here (and those of the pages after them), one"
        " entry.created event each, marked initial"
    )
    if any(p.page.tombstones for p in preview.pages):
        plan.append("delete the entries its at:deleted-entry tombstones name, if it has them")
    if any(p.page.malformed for p in preview.pages):
        plan.append("read a malformed page leniently: no absence counts while it stays so")
    if first.etag or first.last_modified:
        sent = " and ".join(
            h
            for h, v in (("If-None-Match", first.etag), ("If-Modified-Since", first.last_modified))
            if v
        )
        plan.append(f"poll with {sent}: an unchanged page costs a 304")
    else:
        plan.append("poll without validators (none sent): an unchanged page is compared by hash")
    base = detect_base(page1, first.final_url)
    setting = ChangesSetting(feed.changes, feed.changes_url)
    example = query_url(setting, base, now - OVERLAP)
    if example is not None:
        plan.append(f"find edits on deep pages with the changes query, e.g. {example}")
    elif feed.changes == "off":
        plan.append("no changes query (changes = off): deep edits wait for the full crawl")
    else:
        plan.append(
            "no changes query offered: edits on deep pages are found by the full crawl"
            f" every {feed.full_sync_every_s:g}s"
        )
    if preview.hub is not None:
        plan.append(
            f"subscribe to WebSub hub {preview.hub} for {preview.self_url or first.final_url}"
            " (with [websub] public_url set)"
        )
    floors = [
        f.why
        for f in (
            cache_lifetime(first.headers, now),
            publisher_cadence(page1.ttl_minutes, page1.update_period, page1.update_frequency),
        )
        if f is not None
    ]
    interval = "auto" if feed.interval_auto else f"{feed.interval_s:g}s"
    said = f", no sooner than the publisher asks ({'; '.join(floors)})" if floors else ""
    plan.append(f"poll every {interval}{said}")
    return plan
