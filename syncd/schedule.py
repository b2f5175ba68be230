"""Pure polling policy: when a feed is next due and why, and whether a crawl must walk the whole
chain.

Every rule takes `now` (and a random source where it jitters) as arguments and imports no I/O
library (DESIGN §4.2, §4.10, issue 9), so each is tested with an injected clock:
- success: the interval, or with `interval = "auto"` 7 days / the entries of the last 7 days,
  clamped to [min_interval, max_interval] with ±10 % jitter;
- a publisher's stated cadence (RSS `<ttl>`, `sy:updatePeriod`/`sy:updateFrequency`) and its
  cache lifetime (`Cache-Control: max-age`, `Expires`) are floors, capped by max_interval;
- failure: exponential back-off from the interval with ±10 % jitter, capped at max_backoff (the
  feed is still probed at the cap, never given up), never sooner than `Retry-After` (which the
  fetcher caps at 7 days);
- first polls after a start are spread over the interval; a feed silent for longer than
  `expect_update_within` is stale.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

JITTER = 0.1
AUTO_WINDOW = timedelta(days=7)
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\b", re.IGNORECASE)
_PERIOD_S = {
    "hourly": 3600.0,
    "daily": 86400.0,
    "weekly": 7 * 86400.0,
    "monthly": 30 * 86400.0,
    "yearly": 365 * 86400.0,
}


@dataclass(frozen=True, slots=True)
class Cadence:
    """A feed's polling settings, from its configuration."""

    interval_s: float
    auto: bool = False
    min_interval_s: float = 300.0
    max_interval_s: float = 86400.0
    max_backoff_s: float = 86400.0


@dataclass(frozen=True, slots=True)
class Floor:
    """A lower bound on the next poll that a publisher stated, and where it stated it."""

    seconds: float
    why: str


@dataclass(frozen=True, slots=True)
class Due:
    """When a feed is next polled, and why then."""

    at: datetime
    reason: str  # for `syncd status`: why the next poll is when it is


def parse_max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    m = _MAX_AGE.search(cache_control)
    return float(m.group(1)) if m else None


def cache_lifetime(headers: dict[str, str], now: datetime) -> Floor | None:
    """How long the response says it stays fresh: `max-age` wins over `Expires` (RFC 9111);
    `no-cache`/`no-store` say nothing about when to come back. Expires is taken relative to the
    response's own Date when it has one, so a server clock that is off does not matter."""
    control = headers.get("cache-control")
    max_age = parse_max_age(control)
    if max_age is not None:
        return Floor(max_age, f"Cache-Control max-age {_human(max_age)}")
    if control and _NO_CACHE.search(control):
        return None
    expires = _http_date(headers.get("expires"))
    if expires is None:
        return None
    origin = _http_date(headers.get("date")) or now
    seconds = (expires - origin).total_seconds()
    return Floor(seconds, f"Expires in {_human(seconds)}") if seconds > 0 else None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else None


def publisher_cadence(
    ttl_minutes: int | None, update_period: str | None, update_frequency: int | None
) -> Floor | None:
    """What the feed says of its own cadence: RSS `<ttl>` (minutes it may be cached), and
    `sy:updatePeriod` / `sy:updateFrequency` (updates per period). The longer one wins."""
    floors: list[Floor] = []
    if ttl_minutes:
        floors.append(Floor(ttl_minutes * 60.0, f"RSS ttl {_human(ttl_minutes * 60.0)}"))
    period = _PERIOD_S.get((update_period or "").strip().lower())
    if period is not None:
        times = update_frequency if update_frequency and update_frequency > 0 else 1
        floors.append(Floor(period / times, f"sy:updatePeriod {update_period} / {times}"))
    return max(floors, key=lambda f: f.seconds, default=None)


def auto_interval(recent_entries: int, cadence: Cadence) -> Floor:
    """`interval = "auto"`: 7 days / the entries published in the last 7 days, clamped."""
    if recent_entries <= 0:
        return Floor(cadence.max_interval_s, "auto interval: no entries in 7 days")
    seconds = AUTO_WINDOW.total_seconds() / recent_entries
    seconds = min(max(seconds, cadence.min_interval_s), cadence.max_interval_s)
    return Floor(seconds, f"auto interval: {recent_entries} entries in 7 days")


def next_poll(
    *,
    now: datetime,
    cadence: Cadence,
    rng: random.Random,
    failed: bool,
    consecutive_errors: int = 0,
    error_kind: str | None = None,
    retry_after_s: float | None = None,
    cache: Floor | None = None,
    publisher: Floor | None = None,
    recent_entries: int = 0,
) -> Due:
    """When to poll next, and why (see the module docstring for the rules)."""
    if failed:
        steps = max(consecutive_errors - 1, 0)
        backoff = min(cadence.interval_s * (2.0 ** min(steps, 32)), cadence.max_backoff_s)
        at_cap = backoff >= cadence.max_backoff_s
        # Jitter spreads feeds on one failing host; capped after it, so the cap is a cap.
        backoff = min(backoff * _jitter(rng), cadence.max_backoff_s)
        what = f"{error_kind or 'error'}, {consecutive_errors} in a row"
        if retry_after_s is not None and retry_after_s > backoff:
            return Due(
                now + timedelta(seconds=retry_after_s),
                f"Retry-After {_human(retry_after_s)} ({what})",
            )
        capped = " (at max_backoff: probing)" if at_cap else ""
        return Due(now + timedelta(seconds=backoff), f"back-off {_human(backoff)}{capped} ({what})")
    if cadence.auto:
        chosen = auto_interval(recent_entries, cadence)
        seconds = min(
            max(chosen.seconds * _jitter(rng), cadence.min_interval_s), cadence.max_interval_s
        )
        chosen = Floor(seconds, f"{chosen.why} ({_human(seconds)})")
    else:
        chosen = Floor(cadence.interval_s, f"interval {_human(cadence.interval_s)}")
    # What the publisher asks for is a floor, but never beyond max_interval (a year-long
    # max-age must not silence a feed), nor below an interval the operator set longer still.
    ceiling = max(cadence.max_interval_s, chosen.seconds)
    for floor in (publisher, cache):
        if floor is not None and floor.seconds > chosen.seconds:
            chosen = Floor(min(floor.seconds, ceiling), floor.why)
    return Due(now + timedelta(seconds=chosen.seconds), chosen.why)


def spread_first_poll(now: datetime, interval_s: float, rng: random.Random) -> Due:
    """A feed overdue when the daemon starts is polled at a random point within its interval,
    so a restart after downtime does not poll every feed in the same second."""
    seconds = rng.uniform(0.0, interval_s)
    return Due(now + timedelta(seconds=seconds), "first poll after start, spread over the interval")


def is_stale(newest: datetime | None, expect_within_s: float | None, now: datetime) -> bool:
    """A feed whose newest entry is older than `expect_update_within` has gone silent."""
    if expect_within_s is None or newest is None:
        return False
    return now - newest > timedelta(seconds=expect_within_s)


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


def _jitter(rng: random.Random) -> float:
    return 1.0 + rng.uniform(-JITTER, JITTER)


def _human(seconds: float) -> str:
    """12s, 15m, 2h, 1.5d: short enough for a status line."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"
