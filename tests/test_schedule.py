"""Pure polling policy, each rule with an injected clock: intervals, auto intervals, publisher
cadence, cache lifetimes, Retry-After, back-off, start spreading, staleness, full crawls."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from syncd.fetch import FEED_RETRY_AFTER_CAP_S
from syncd.retry import parse_retry_after
from syncd.schedule import (
    Cadence,
    Floor,
    auto_interval,
    cache_lifetime,
    is_stale,
    needs_full_crawl,
    next_poll,
    parse_max_age,
    publisher_cadence,
    spread_first_poll,
)

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
CADENCE = Cadence(interval_s=900.0, min_interval_s=300.0, max_interval_s=86400.0)


def after(**kw: object) -> tuple[float, str]:
    args: dict[str, object] = dict(now=NOW, cadence=CADENCE, rng=random.Random(1), failed=False)
    args.update(kw)
    due = next_poll(**args)  # type: ignore[arg-type]
    return (due.at - NOW).total_seconds(), due.reason


def test_success_waits_the_interval() -> None:
    assert after() == (900, "interval 15m")


def test_cache_control_max_age_is_a_floor_capped_by_max_interval() -> None:
    hour = cache_lifetime({"cache-control": "public, max-age=3600"}, NOW)
    assert hour == Floor(3600, "Cache-Control max-age 1h")
    assert after(cache=hour) == (3600, "Cache-Control max-age 1h")
    assert after(cache=Floor(60, "Cache-Control max-age 1m"))[0] == 900  # shorter: no effect
    year = cache_lifetime({"cache-control": "max-age=31536000"}, NOW)
    assert after(cache=year)[0] == 86400  # capped by max_interval
    assert parse_max_age("no-cache") is None and parse_max_age(None) is None


def test_expires_counts_from_the_response_date_and_no_cache_ignores_it() -> None:
    server_clock = NOW - timedelta(hours=5)  # a server whose clock is five hours behind
    headers = {
        "date": format_datetime(server_clock, usegmt=True),
        "expires": format_datetime(server_clock + timedelta(hours=2), usegmt=True),
    }
    expires = cache_lifetime(headers, NOW)
    assert expires is not None and expires.seconds == 7200
    assert after(cache=expires) == (7200, "Expires in 2h")
    assert cache_lifetime({**headers, "cache-control": "no-cache"}, NOW) is None
    past = {"expires": format_datetime(NOW - timedelta(hours=1), usegmt=True)}
    assert cache_lifetime(past, NOW) is None
    assert cache_lifetime({"expires": "0"}, NOW) is None


def test_rss_ttl_and_sy_update_period_are_floors() -> None:
    ttl = publisher_cadence(60, None, None)
    assert ttl == Floor(3600, "RSS ttl 1h")
    assert after(publisher=ttl) == (3600, "RSS ttl 1h")
    sy = publisher_cadence(None, "daily", 4)
    assert sy is not None and sy.seconds == 21600 and "sy:updatePeriod daily / 4" in sy.why
    both = publisher_cadence(60, "daily", 4)
    assert both == sy  # the longer one wins
    assert publisher_cadence(None, "fortnightly", 1) is None
    assert after(publisher=publisher_cadence(None, "yearly", 1))[0] == 86400  # capped


def test_failures_back_off_exponentially_with_jitter_to_the_cap_and_are_probed_there() -> None:
    first, second, third = (
        after(failed=True, consecutive_errors=n, error_kind="timeout")[0] for n in (1, 2, 3)
    )
    assert 810 <= first <= 990
    assert 1620 <= second <= 1980
    assert 3240 <= third <= 3960
    capped = Cadence(interval_s=900.0, max_backoff_s=6 * 3600.0)
    seconds, reason = after(cadence=capped, failed=True, consecutive_errors=40, error_kind="dns")
    assert 0.9 * 6 * 3600 <= seconds <= 6 * 3600
    assert "at max_backoff" in reason and "dns, 40 in a row" in reason
    # Still probed at the cap, for ever: the wait never grows past it.
    waits = [
        after(cadence=capped, rng=random.Random(i), failed=True, consecutive_errors=400)[0]
        for i in range(20)
    ]
    assert all(0.9 * 6 * 3600 <= w <= 6 * 3600 for w in waits)


def test_retry_after_is_a_floor_and_capped_at_a_week() -> None:
    seconds, reason = after(failed=True, consecutive_errors=1, retry_after_s=7200)
    assert seconds == 7200 and reason.startswith("Retry-After 2h")
    assert parse_retry_after("1209600", NOW, cap_s=FEED_RETRY_AFTER_CAP_S) == 7 * 86400
    later = format_datetime(NOW + timedelta(days=3), usegmt=True)
    assert parse_retry_after(later, NOW, cap_s=FEED_RETRY_AFTER_CAP_S) == 3 * 86400
    week = after(failed=True, consecutive_errors=1, retry_after_s=FEED_RETRY_AFTER_CAP_S)
    assert week[0] == 7 * 86400  # beyond max_backoff: the publisher's word wins


def test_auto_interval_from_observed_frequency_clamped_with_jitter() -> None:
    auto = Cadence(interval_s=300.0, auto=True, min_interval_s=600.0, max_interval_s=43200.0)
    assert auto_interval(14, auto).seconds == 43200  # twice a day
    assert auto_interval(0, auto) == Floor(43200, "auto interval: no entries in 7 days")
    assert auto_interval(10_000, auto).seconds == 600  # clamped to min_interval
    waits = {after(cadence=auto, rng=random.Random(i), recent_entries=28)[0] for i in range(20)}
    assert len(waits) > 1 and all(19440 <= w <= 23760 for w in waits)  # 6h ± 10 %
    assert all(
        after(cadence=auto, rng=random.Random(i), recent_entries=5000)[0] >= 600 for i in range(20)
    )
    assert "auto interval: 28 entries in 7 days" in after(cadence=auto, recent_entries=28)[1]


def test_first_polls_after_a_start_are_spread_over_the_interval() -> None:
    rng = random.Random(3)
    dues = [spread_first_poll(NOW, 900.0, rng).at for _ in range(50)]
    assert all(NOW <= d <= NOW + timedelta(seconds=900) for d in dues)
    assert len(set(dues)) == 50
    assert max(dues) - min(dues) > timedelta(seconds=600)  # spread, not bunched


def test_a_feed_silent_longer_than_expected_is_stale() -> None:
    week = 7 * 86400.0
    assert is_stale(NOW - timedelta(days=8), week, NOW)
    assert not is_stale(NOW - timedelta(days=6), week, NOW)
    assert not is_stale(NOW - timedelta(days=80), None, NOW)  # not asked for
    assert not is_stale(None, week, NOW)


def test_full_crawl_cadence() -> None:
    day = 86400.0
    assert needs_full_crawl(
        first_synced_at=None, last_full_sync_at=None, full_sync_every_s=day, now=NOW
    )
    recent = NOW - timedelta(hours=1)
    assert not needs_full_crawl(
        first_synced_at=recent, last_full_sync_at=recent, full_sync_every_s=day, now=NOW
    )
    old = NOW - timedelta(days=2)
    assert needs_full_crawl(
        first_synced_at=old, last_full_sync_at=old, full_sync_every_s=day, now=NOW
    )


def test_a_dropped_total_asks_for_a_full_crawl() -> None:
    from syncd.schedule import count_says_crawl

    def says(**kw: object) -> str | None:
        args: dict[str, object] = dict(
            total=514, per_page=25, listed=25, known_total=515, known_shortfall=0
        )
        args.update(kw)
        return count_says_crawl(**args)  # type: ignore[arg-type]

    assert "dropped from 515 to 514" in (says() or "")
    assert says(total=516) is None  # a new post
    assert says(known_total=None) is None  # nothing to compare with yet
    assert says(total=None) is None  # the feed does not count itself


def test_a_short_first_page_asks_for_a_full_crawl_once() -> None:
    from syncd.schedule import count_says_crawl, page_shortfall

    assert page_shortfall(515, 25, 24) == 1
    assert page_shortfall(10, 25, 10) == 0  # a small feed fits on one page
    assert page_shortfall(515, None, 3) == 0

    def short(known_shortfall: int) -> str | None:
        return count_says_crawl(
            total=515, per_page=25, listed=24, known_total=515, known_shortfall=known_shortfall
        )

    assert "lists 24 entries where its page size requires 25" in (short(0) or "")
    # Already that short at the last look: a feed that is always short is not crawled each poll.
    assert short(1) is None
