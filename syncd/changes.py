"""The changes query (issue 9): which feeds answer GData's `orderby=updated&updated-min=…`, the
URL to ask, and whether an answer is usable.

Blogger lists a feed by *published*, so an edit to an old post only shows on a deep page. Asked
with `orderby=updated&updated-min=<instant>`, it lists the entries updated since that instant,
newest first and paged like the feed: one short page (or a 304) per poll finds every deep edit.

Pure decisions: no I/O, no clock (`now` is an argument). A changes page is a partial view; what
it may prove (never an absence, never a complete crawl) is the syncer's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from yarl import URL

from syncd.model import ParsedPage

# Re-ask a little before the newest instant seen: publishers' clocks and replication lag.
OVERLAP = timedelta(minutes=5)
# A malformed or refused changes query is not asked again for this long.
OFF_FOR = timedelta(hours=24)
# An entry stamped further in the future than this is a wrong clock, not a watermark to trust.
FUTURE_SLACK = timedelta(days=1)
_TOLERANCE = timedelta(seconds=1)  # the query's instant is sent to the millisecond
# Requests one incremental poll may make, the feed's own pages and the changes query together.
POLL_REQUESTS = 3

GDATA_NAMESPACES = frozenset(
    {
        "http://schemas.google.com/blogger/2008",
        "http://schemas.google.com/g/2005",
    }
)
# Blogger's feed URLs: /feeds/posts/default and /feeds/<blogID>/posts/default (+ /summary, …).
_BLOGGER_PATH = re.compile(r"^/feeds/(?:\d+/)?posts/(?:default|summary|full)$")
_PLACEHOLDER = "{updated_min}"
# Parameters that belong to one page of the plain listing, not to the changes query.
_PAGING = ("start-index", "max-results", "orderby", "updated-min", "updated-max", "redirect")


@dataclass(frozen=True, slots=True)
class ChangesSetting:
    """A feed's configuration for the changes query."""

    mode: str = "auto"  # "auto" | "off"
    template: str | None = None  # `changes_url`, with {updated_min}


def detect_base(page: ParsedPage, final_url: str) -> str | None:
    """Where this feed answers a changes query, judged from what its first page says about
    itself, or None. FeedBurner fronts Blogger feeds under its own path and ignores the query,
    so its page's next link (to www.blogger.com/feeds/<blogID>/posts/default) is asked instead."""
    for candidate in (final_url, page.next_url):
        if candidate and _blogger_shape(candidate):
            return _strip_paging(candidate)
    says_blogger = (page.generator or "").lower().find("blogger") >= 0
    if says_blogger or GDATA_NAMESPACES & set(page.namespaces):
        return _strip_paging(final_url)
    return None


def _blogger_shape(url: str) -> bool:
    try:
        return bool(_BLOGGER_PATH.match(URL(url).path))
    except ValueError:
        return False


def _strip_paging(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_query({k: v for k, v in parsed.query.items() if k not in _PAGING}))


def query_url(setting: ChangesSetting, base: str | None, since: datetime) -> str | None:
    """The first changes-query URL from `since`, or None when the feed has none."""
    if setting.mode == "off":
        return None
    utc = since.astimezone(UTC)
    stamp = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
    if setting.template:
        return setting.template.replace(_PLACEHOLDER, quote(stamp, safe=""))
    if base is None:
        return None
    parsed = URL(base)
    return str(parsed.update_query({"orderby": "updated", "updated-min": stamp}))


def since_instant(
    newest_updated: datetime | None, pinned: datetime | None, now: datetime
) -> datetime:
    """Where the changes query starts: a pinned instant (an earlier query did not finish) or the
    newest `updated` the store had when the poll began, less the overlap. A stamp from the
    future (a wrong clock) is not trusted to hide everything before it."""
    if pinned is not None:
        return pinned
    if newest_updated is None or newest_updated > now + FUTURE_SLACK:
        newest_updated = now
    return newest_updated - OVERLAP


def check_page(page: ParsedPage, since: datetime) -> str | None:
    """Why a changes page cannot be what was asked for (None: usable). A server that ignored the
    parameters serves its plain listing: entries older than `since`, or not newest-updated first.
    """
    previous: datetime | None = None
    for entry in page.entries:
        if entry.updated is None:
            return f"entry {entry.entry_id} has no <updated>"
        if entry.updated < since - _TOLERANCE:
            return (
                f"entry {entry.entry_id} was updated {entry.updated.isoformat()}, before "
                f"updated-min {since.isoformat()}: the server ignored the query"
            )
        if previous is not None and entry.updated > previous:
            return "entries are not ordered by <updated>: the server ignored orderby=updated"
        previous = entry.updated
    return None


def is_off(off_until: datetime | None, now: datetime) -> bool:
    return off_until is not None and now < off_until


def budget(walk_requests: int) -> int:
    """Changes-query requests left for this poll: never fewer than one, so a busy first page
    cannot starve deep edits."""
    return max(1, POLL_REQUESTS - walk_requests)
