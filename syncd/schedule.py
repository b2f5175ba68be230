"""Pure polling policy: when a feed is next due, and whether a crawl must walk the whole chain.

Takes `now` and a random source as arguments and imports no I/O library (DESIGN §4.2, §4.10).
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

MAX_BACKOFF_S = 24 * 3600.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def parse_max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    m = _MAX_AGE.search(cache_control)
    return float(m.group(1)) if m else None


def next_due(
    *,
    now: datetime,
    interval_s: float,
    failed: bool,
    consecutive_errors: int,
    retry_after_s: float | None,
    max_age_s: float | None,
    rng: random.Random,
) -> datetime:
    """After a success: the interval, but never sooner than Cache-Control max-age allows.
    After a failure: exponential backoff from the interval with ±10% jitter (so feeds on one
    failing host spread out), capped at a day, never sooner than the publisher's Retry-After."""
    if not failed:
        return now + timedelta(seconds=max(interval_s, max_age_s or 0.0))
    steps = max(consecutive_errors - 1, 0)
    backoff = min(interval_s * (2.0 ** min(steps, 32)), MAX_BACKOFF_S)
    backoff *= 1.0 + rng.uniform(-0.1, 0.1)
    return now + timedelta(seconds=max(backoff, retry_after_s or 0.0))


def needs_full_crawl(
    *,
    first_synced_at: datetime | None,
    last_full_sync_at: datetime | None,
    full_sync_every_s: float,
    now: datetime,
) -> bool:
    """The first sync and every `full_sync_every` walk the whole chain (edits to deep pages)."""
    if first_synced_at is None or last_full_sync_at is None:
        return True
    return now - last_full_sync_at >= timedelta(seconds=full_sync_every_s)


def count_says_crawl(
    *,
    total: int | None,
    per_page: int | None,
    listed: int,
    known_total: int | None,
    known_shortfall: int | None,
) -> str | None:
    """Whether page 1's own count says an entry went away, so a full crawl should run now: the
    stated `openSearch:totalResults` dropped, or page 1 lists fewer entries than its stated page
    size requires, by more than it did before (a feed that is always short would otherwise be
    crawled at every poll). None: no sign, or no earlier count to compare with."""
    if total is None:
        return None
    if known_total is not None and total < known_total:
        return f"totalResults dropped from {known_total} to {total}"
    shortfall = page_shortfall(total, per_page, listed)
    if known_total is not None and shortfall > (known_shortfall or 0):
        return f"page 1 lists {listed} entries where its page size requires {listed + shortfall}"
    return None


def page_shortfall(total: int | None, per_page: int | None, listed: int) -> int:
    """Entries page 1 lacks for the page size and total it states (0 when it states neither)."""
    if total is None or per_page is None:
        return 0
    return max(0, min(per_page, total) - listed)
