"""Pure polling policy: intervals, backoff, Retry-After, max-age, full-crawl cadence."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from syncd.schedule import needs_full_crawl, next_due, parse_max_age

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def due(**kw: object) -> float:
    args: dict[str, object] = dict(
        now=NOW,
        interval_s=900.0,
        failed=False,
        consecutive_errors=0,
        retry_after_s=None,
        max_age_s=None,
        rng=random.Random(1),
    )
    args.update(kw)
    return (next_due(**args) - NOW).total_seconds()  # type: ignore[arg-type]


def test_success_waits_the_interval_or_max_age_if_longer() -> None:
    assert due() == 900
    assert due(max_age_s=3600) == 3600
    assert due(max_age_s=60) == 900


def test_failures_back_off_exponentially_with_jitter_and_cap() -> None:
    first, second, third = (due(failed=True, consecutive_errors=n) for n in (1, 2, 3))
    assert 810 <= first <= 990
    assert 1620 <= second <= 1980
    assert 3240 <= third <= 3960
    assert due(failed=True, consecutive_errors=40) <= 86400 * 1.1


def test_retry_after_is_a_floor() -> None:
    assert due(failed=True, consecutive_errors=1, retry_after_s=7200) == 7200


def test_parse_max_age() -> None:
    assert parse_max_age("public, max-age=600") == 600
    assert parse_max_age("no-cache") is None
    assert parse_max_age(None) is None


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
