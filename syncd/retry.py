"""Retry policy for deliveries: when to try a delivery again, when to give up, and when a whole
sink should back off.

Two decisions live here. `next_attempt_at` is per delivery: the retry schedule with jitter and a
`Retry-After` floor; `None` means the delivery is dead (kept, visible and replayable, DESIGN §5).
`SinkHealth` is per sink: a small circuit breaker that stops a sink from hammering a receiver that
is down (one probe at a time after a pause) without letting one bad event hold back the others.

Pure decisions only: the current time and the random source are arguments, nothing here reads a
clock, sleeps, touches the network or the store. The dispatcher asks and records the answers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

__all__ = [
    "DEFAULT_SCHEDULE_S",
    "MAX_RETRY_AFTER_S",
    "REJECTIONS_BEFORE_PAUSE",
    "UNAVAILABLE_STATUSES",
    "Health",
    "SinkHealth",
    "next_attempt_at",
    "parse_retry_after",
    "receiver_unavailable",
]

# The Standard Webhooks schedule: the wait after the 1st, 2nd, … failed attempt (5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h). Nine waits: ten attempts over about three days.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)

# A receiver's Retry-After is honoured up to the schedule's longest wait. Beyond that it would
# stall the delivery indefinitely (or overflow datetime arithmetic with a date in year 9999); once
# the wait is over the receiver can simply ask again.
MAX_RETRY_AFTER_S: float = 86400.0


def next_attempt_at(
    attempts_made: int,
    schedule: Sequence[float],
    now: datetime,
    *,
    retry_after_s: float | None = None,
    jitter: float = 0.1,
    rng: random.Random,
) -> datetime | None:
    """When to make the next attempt, given that `attempts_made` attempts have failed so far.

    After the n-th failure the wait is `schedule[n-1]`, scaled by a uniform factor in
    [1 - jitter, 1 + jitter] (so retries of many deliveries that failed together spread out; never
    below zero), and never shorter than `retry_after_s` (the receiver's Retry-After). Returns
    `None` once `attempts_made` exceeds `len(schedule)`: the delivery is dead.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1 (got {attempts_made})")
    if not (math.isfinite(jitter) and jitter >= 0.0):
        raise ValueError(f"jitter must be a finite fraction >= 0 (got {jitter})")
    if retry_after_s is not None and not math.isfinite(retry_after_s):
        raise ValueError(f"retry_after_s must be finite (got {retry_after_s})")
    if now.tzinfo is None:
        # A naive `now` would silently mix local and UTC times in the outbox.
        raise ValueError("now must be timezone-aware")
    if attempts_made > len(schedule):
        return None
    base = float(schedule[attempts_made - 1])
    delay = max(0.0, base * (1.0 + rng.uniform(-jitter, jitter)))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return now + timedelta(seconds=delay)


def parse_retry_after(
    value: str | None, now: datetime, *, cap_s: float = MAX_RETRY_AFTER_S
) -> float | None:
    """Seconds to wait according to a Retry-After header value, or None if absent or unreadable.

    Accepts delta-seconds ("120") and an HTTP-date ("Wed, 21 Oct 2026 07:28:00 GMT"). A date in
    the past or a negative number gives 0; the result is capped at `cap_s` (feeds allow a week).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float
    try:
        # RFC 9110 says integer delta-seconds; decimals are accepted because some servers send them.
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            # parsedate_to_datetime returns naive for "-0000"; HTTP-dates are always GMT.
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), cap_s)


# --- per-sink health ------------------------------------------------------------------------------

# Statuses that speak for the receiver as a whole rather than for one event: it is overloaded,
# restarting, or behind a proxy whose backend is down.
UNAVAILABLE_STATUSES = frozenset({408, 425, 429, 502, 503, 504})

# A receiver that answers but refuses this many attempts in a row (a 400 on every event after a
# bad deploy, a secret it no longer accepts) is treated as unavailable too, so it is not sent the
# whole backlog. One refused event among accepted ones never pauses the sink.
REJECTIONS_BEFORE_PAUSE = 5


def receiver_unavailable(status: int | None, retry_after_s: float | None) -> bool:
    """Whether a failed attempt says the receiver is unavailable, rather than that it refused
    this one event. No status at all (refused connection, timeout, disk error) counts as
    unavailable: nothing was said about the event."""
    return status is None or retry_after_s is not None or status in UNAVAILABLE_STATUSES


class Health(StrEnum):
    CLOSED = "closed"  # healthy: up to max_in_flight attempts at once, in seq order
    PROBING = "probing"  # unknown (start, end of a pause): one attempt at a time
    PAUSED = "paused"  # backing off until `paused_until`, then probing


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """A sink's circuit breaker. Transitions return a new value; nothing is mutated.

    - success → CLOSED (every counter reset).
    - a failure that says the receiver is unavailable (`receiver_unavailable`), or the
      `REJECTIONS_BEFORE_PAUSE`-th refusal in a row → PAUSED for the retry schedule's step at
      `level` (with jitter; never shorter than `Retry-After`), `level` counting the pauses since
      the last success. Failures of attempts that were already in flight when the pause began do
      not escalate it; they can only lengthen it to honour a `Retry-After`.
    - any other failure (the receiver refused this event) → unchanged but counted: the event is
      retried on its own schedule and the events after it carry on.
    """

    state: Health = Health.PROBING
    paused_until: datetime | None = None
    level: int = 0
    rejections: int = 0
    reason: str | None = None

    def window(self, now: datetime, max_in_flight: int) -> int:
        """How many attempts may be in flight at `now`: 0 while paused, 1 while probing."""
        if self.state is Health.CLOSED:
            return max(1, max_in_flight)
        if self.paused(now):
            return 0
        return 1

    def paused(self, now: datetime) -> bool:
        until = self.paused_until
        return self.state is Health.PAUSED and until is not None and now < until

    def probing(self, now: datetime) -> bool:
        """Attempts now are probes: one at a time, least-tried deliveries first."""
        return self.state is not Health.CLOSED and not self.paused(now)

    def succeeded(self) -> SinkHealth:
        if self.state is Health.CLOSED and self.rejections == 0:
            return self  # already the healthy default; every success of a batch lands here
        return SinkHealth(state=Health.CLOSED)

    def failed(
        self,
        *,
        unavailable: bool,
        retry_after_s: float | None,
        reason: str | None,
        now: datetime,
        schedule: Sequence[float],
        rng: random.Random,
        jitter: float = 0.1,
    ) -> SinkHealth:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        floor = now + timedelta(seconds=retry_after_s) if retry_after_s is not None else None
        if self.paused(now):
            # An attempt started before the pause: it says nothing new about the receiver.
            assert self.paused_until is not None
            if floor is not None and floor > self.paused_until:
                return replace(self, paused_until=floor, reason=reason)
            return self
        rejections = 0 if unavailable else self.rejections + 1
        if not unavailable and rejections < REJECTIONS_BEFORE_PAUSE:
            return replace(self, rejections=rejections)
        level = self.level + 1
        base = float(schedule[min(level, len(schedule)) - 1]) if schedule else 0.0
        until = now + timedelta(seconds=max(0.0, base * (1.0 + rng.uniform(-jitter, jitter))))
        if floor is not None and floor > until:
            until = floor
        return SinkHealth(Health.PAUSED, until, level, 0, reason)
