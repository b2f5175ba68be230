"""The pure retry policy: schedule progression, jitter bounds, Retry-After floor, death."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from syncd.retry import DEFAULT_SCHEDULE_S, MAX_RETRY_AFTER_S, next_attempt_at, parse_retry_after

NOW = datetime(2026, 11, 28, 7, 0, 0, tzinfo=UTC)


def wait_s(when: datetime | None) -> float:
    assert when is not None
    return (when - NOW).total_seconds()


def test_default_schedule_is_the_standard_webhooks_one() -> None:
    assert DEFAULT_SCHEDULE_S == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


def test_without_jitter_each_failure_waits_the_next_step() -> None:
    rng = random.Random(1)
    waits = [
        wait_s(next_attempt_at(n, DEFAULT_SCHEDULE_S, NOW, jitter=0.0, rng=rng))
        for n in range(1, len(DEFAULT_SCHEDULE_S) + 1)
    ]
    assert waits == [float(s) for s in DEFAULT_SCHEDULE_S]


def test_dead_after_the_last_step() -> None:
    rng = random.Random(1)
    last = len(DEFAULT_SCHEDULE_S)
    assert next_attempt_at(last, DEFAULT_SCHEDULE_S, NOW, rng=rng) is not None
    assert next_attempt_at(last + 1, DEFAULT_SCHEDULE_S, NOW, rng=rng) is None
    # A Retry-After cannot revive a dead delivery.
    assert next_attempt_at(last + 1, DEFAULT_SCHEDULE_S, NOW, retry_after_s=5, rng=rng) is None
    assert next_attempt_at(1, (), NOW, rng=rng) is None


@pytest.mark.parametrize("seed", range(20))
def test_jitter_stays_within_bounds_and_actually_varies(seed: int) -> None:
    rng = random.Random(seed)
    waits = [wait_s(next_attempt_at(2, (5, 300), NOW, jitter=0.1, rng=rng)) for _ in range(200)]
    assert all(270.0 <= w <= 330.0 for w in waits)
    assert len(set(waits)) > 100  # spread out, not a constant


def test_jitter_is_reproducible_with_a_seeded_random() -> None:
    first = [next_attempt_at(3, DEFAULT_SCHEDULE_S, NOW, rng=random.Random(42)) for _ in range(3)]
    assert len(set(first)) == 1


def test_large_jitter_never_goes_negative() -> None:
    rng = random.Random(7)
    waits = [wait_s(next_attempt_at(1, (10,), NOW, jitter=5.0, rng=rng)) for _ in range(500)]
    assert min(waits) == 0.0  # clamped, and a jitter of 500 % does reach the clamp
    assert max(waits) <= 60.0


def test_retry_after_is_a_floor_not_a_replacement() -> None:
    rng = random.Random(3)
    longer = next_attempt_at(1, DEFAULT_SCHEDULE_S, NOW, retry_after_s=120, jitter=0.1, rng=rng)
    assert wait_s(longer) == 120.0
    # Shorter than the schedule's step: the step wins.
    shorter = next_attempt_at(4, DEFAULT_SCHEDULE_S, NOW, retry_after_s=1, jitter=0.0, rng=rng)
    assert wait_s(shorter) == 7200.0


def test_rejects_nonsense_inputs() -> None:
    rng = random.Random(0)
    with pytest.raises(ValueError):
        next_attempt_at(0, DEFAULT_SCHEDULE_S, NOW, rng=rng)
    with pytest.raises(ValueError):
        next_attempt_at(1, DEFAULT_SCHEDULE_S, NOW, jitter=-0.1, rng=rng)
    with pytest.raises(ValueError):
        next_attempt_at(1, DEFAULT_SCHEDULE_S, NOW, retry_after_s=float("inf"), rng=rng)
    with pytest.raises(ValueError):
        next_attempt_at(1, DEFAULT_SCHEDULE_S, NOW.replace(tzinfo=None), rng=rng)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1.0),
        ("  120 ", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("2.5", 2.5),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("99999999", MAX_RETRY_AFTER_S),
    ],
)
def test_parse_retry_after_delta_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date() -> None:
    future = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert future.endswith("GMT")
    assert parse_retry_after(future, NOW) == 90.0
    past = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, NOW) == 0.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == MAX_RETRY_AFTER_S
    # "-0000" parses to a naive datetime: it is read as GMT, like every HTTP-date.
    assert parse_retry_after("Sat, 28 Nov 2026 07:00:30 -0000", NOW) == 30.0
