"""The per-sink circuit breaker (`retry.SinkHealth`): pure transitions, `now` as an argument."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.retry import (
    DEFAULT_SCHEDULE_S,
    REJECTIONS_BEFORE_PAUSE,
    Health,
    SinkHealth,
    receiver_unavailable,
)

NOW = datetime(2026, 11, 28, 7, 0, 0, tzinfo=UTC)


def fail(
    h: SinkHealth,
    *,
    unavailable: bool = True,
    retry_after_s: float | None = None,
    now: datetime = NOW,
    jitter: float = 0.0,
) -> SinkHealth:
    return h.failed(
        unavailable=unavailable,
        retry_after_s=retry_after_s,
        reason="boom",
        now=now,
        schedule=DEFAULT_SCHEDULE_S,
        rng=random.Random(3),
        jitter=jitter,
    )


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (None, None, True),  # refused, timed out, disk error: nothing said about the event
        (503, None, True),
        (502, None, True),
        (504, None, True),
        (429, None, True),
        (408, None, True),
        (500, 3.0, True),  # a Retry-After speaks for the receiver whatever the status
        (500, None, False),  # the receiver crashed on this event, maybe
        (400, None, False),
        (422, None, False),
        (301, None, False),
        (404, None, False),
    ],
)
def test_what_counts_as_the_receiver_being_unavailable(
    status: int | None, retry_after: float | None, expected: bool
) -> None:
    assert receiver_unavailable(status, retry_after) is expected


def test_a_new_sink_probes_then_opens_up_on_success() -> None:
    h = SinkHealth()
    assert h.state is Health.PROBING and h.window(NOW, 8) == 1 and h.probing(NOW)
    h = h.succeeded()
    assert h.state is Health.CLOSED and h.window(NOW, 8) == 8 and not h.probing(NOW)


def test_unavailable_pauses_for_the_schedule_step_then_probes() -> None:
    h = fail(SinkHealth().succeeded())
    assert h.state is Health.PAUSED and h.level == 1
    assert h.paused_until == NOW + timedelta(seconds=5)
    assert h.window(NOW, 8) == 0 and not h.probing(NOW)
    later = NOW + timedelta(seconds=5)
    assert h.window(later, 8) == 1 and h.probing(later)


def test_failed_probes_escalate_along_the_schedule_and_stay_at_its_end() -> None:
    h = SinkHealth()
    now = NOW
    waits = []
    for _ in range(len(DEFAULT_SCHEDULE_S) + 2):
        h = fail(h, now=now)
        assert h.paused_until is not None
        waits.append((h.paused_until - now).total_seconds())
        now = h.paused_until
    assert waits == [*DEFAULT_SCHEDULE_S, DEFAULT_SCHEDULE_S[-1], DEFAULT_SCHEDULE_S[-1]]
    assert h.succeeded() == SinkHealth(state=Health.CLOSED)


def test_failures_of_attempts_already_in_flight_do_not_escalate() -> None:
    h = fail(SinkHealth().succeeded())
    again = fail(h, now=NOW + timedelta(seconds=1))  # 3 more of the 4 in flight come back failed
    again = fail(again, now=NOW + timedelta(seconds=2))
    assert again == h
    # ... but a Retry-After they carry is honoured.
    longer = fail(h, now=NOW + timedelta(seconds=1), retry_after_s=60)
    assert longer.level == 1 and longer.paused_until == NOW + timedelta(seconds=61)


def test_retry_after_is_a_floor_on_the_pause() -> None:
    h = fail(SinkHealth(), retry_after_s=120)
    assert h.paused_until == NOW + timedelta(seconds=120)
    short = fail(SinkHealth(), retry_after_s=1)
    assert short.paused_until == NOW + timedelta(seconds=5)


def test_refusals_pause_only_when_they_keep_coming() -> None:
    h = SinkHealth().succeeded()
    for i in range(1, REJECTIONS_BEFORE_PAUSE):
        h = fail(h, unavailable=False)
        assert h.state is Health.CLOSED and h.rejections == i
    h = fail(h, unavailable=False)
    assert h.state is Health.PAUSED and h.level == 1 and h.rejections == 0
    # One success in between resets the count.
    h = SinkHealth().succeeded()
    for _ in range(REJECTIONS_BEFORE_PAUSE - 1):
        h = fail(h, unavailable=False)
    h = fail(h.succeeded(), unavailable=False)
    assert h.state is Health.CLOSED and h.rejections == 1


def test_a_probe_refused_for_its_event_keeps_probing() -> None:
    h = fail(SinkHealth())  # paused
    after = h.paused_until
    assert after is not None
    h = fail(h, unavailable=False, now=after)
    assert h.probing(after) and h.level == 1


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        fail(SinkHealth(), now=datetime(2026, 1, 1))


@given(
    outcomes=st.lists(
        st.one_of(
            st.just("ok"),
            st.tuples(st.booleans(), st.none() | st.floats(0, 86400)),
        ),
        max_size=60,
    ),
    steps=st.lists(st.floats(0, 100_000), min_size=60, max_size=60),
    seed=st.integers(0, 2**32),
)
def test_invariants_under_any_sequence(outcomes, steps, seed) -> None:
    rng = random.Random(seed)
    h = SinkHealth()
    now = NOW
    for outcome, step in zip(outcomes, steps, strict=False):
        now += timedelta(seconds=step)
        before = h
        if outcome == "ok":
            h = h.succeeded()
            assert h.window(now, 4) == 4
            continue
        unavailable, retry_after = outcome
        h = h.failed(
            unavailable=unavailable,
            retry_after_s=retry_after,
            reason=None,
            now=now,
            schedule=DEFAULT_SCHEDULE_S,
            rng=rng,
        )
        assert 0 <= h.window(now, 4) <= 4
        assert 0 <= h.rejections < REJECTIONS_BEFORE_PAUSE
        if h.paused(now):
            assert h.paused_until is not None
            # Never longer than the schedule's longest step (with jitter) or the Retry-After.
            limit = max(DEFAULT_SCHEDULE_S[-1] * 1.1, retry_after or 0.0)
            if not before.paused(now):
                assert (h.paused_until - now).total_seconds() <= limit + 1e-6
            if retry_after is not None:
                assert h.paused_until >= now + timedelta(seconds=retry_after)
