"""The outbox dispatcher: moves due deliveries from the store to their sinks, at least once.

Every sink has its own loop and its own bounded set of in-flight attempts, so a slow, hanging or
failing receiver only ever occupies its own sink's slots: other sinks never wait for it. Within a
sink, deliveries are claimed (leased) in `seq` order and up to `max_in_flight` run at once while
the receiver is healthy, never two of one entry: the outbox only hands out an entry's next event
once the previous one is recorded delivered or dead (with `max_in_flight = 1`, the sink's next
event). A failure reschedules that one delivery (the pure retry policy) and the other entries carry
on; a receiver that is unavailable pauses its sink (`retry.SinkHealth`), after which single probes
decide when to open up again. 410 Gone disables the sink; its deliveries keep accumulating until an
operator (or a config change) enables it again.

The store side is batched: each sink's loop records finished attempts, hands back unused leases
and leases the next ones (a few windows ahead) in one transaction, not two per delivery.

The dispatcher never drops an event: dead deliveries stay in the store, visible and replayable, a
crash leaves at most leases that run out (attempts not yet recorded are sent again), and a
shutdown records what finished and hands unfinished leases back. It decides
nothing about content and holds no SQL (that is `syncd.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from syncd.config import SinkConfig
from syncd.errors import SyncdError
from syncd.model import DeliveryState, SendOutcome
from syncd.retry import Health, SinkHealth, next_attempt_at, receiver_unavailable
from syncd.sinks.base import BatchSink, Sink
from syncd.storage import Store
from syncd.storage.values import AttemptRecord, Claim, DueDelivery

__all__ = [
    "BATCH_SIZE",
    "CLAIM_AHEAD_MIN_EVENTS",
    "CLAIM_AHEAD_WINDOWS",
    "IDLE_POLL_S",
    "LEASE_MARGIN_S",
    "SHUTDOWN_GRACE_S",
    "BoundSink",
    "DeliveryObserver",
    "Dispatcher",
    "OwnerLock",
    "SinkReport",
    "sink_fingerprint",
]

log = structlog.get_logger("syncd.delivery")

Clock = Callable[[], datetime]
BATCH_SIZE = 100  # events per attempt for sinks that take batches (a file: one write, one fsync)
IDLE_POLL_S = 1.0  # how often an idle sink looks at the store (other processes' work, commands)
SHUTDOWN_GRACE_S = 5.0  # how long a stopping daemon lets in-flight attempts finish
# A lease outlives the attempt's own timeout by this much (recording it takes milliseconds; this
# covers a stalled event loop). After a crash, that delivery is due again once the lease runs out.
LEASE_MARGIN_S = 10.0
# A busy sink leases this many windows of attempts ahead of the ones it starts, in the same
# transaction that records the finished ones, so a delivery costs a fraction of a transaction
# instead of two. Their leases cover the wait: one attempt timeout per window ahead.
CLAIM_AHEAD_WINDOWS = 4
# A sink that takes one event per attempt leases at least this many ahead, whatever its window:
# a store transaction costs about as much as a dozen webhook deliveries' bookkeeping, so a claim
# of 4 windows of 4 spent a fifth of a delivery's CPU on commits. The lease stays 4 attempt
# timeouts long: if the receiver slows down, what it would not start in time goes back instead.
CLAIM_AHEAD_MIN_EVENTS = 128
CLAIM_MAX_EVENTS = 500  # bodies held in memory ahead of their attempts, at most
# Finished attempts are recorded together, once this many wait or the oldest has waited this long
# (an entry's next event is claimable only once the previous one is recorded).
RECORD_BATCH = 256
RECORD_DELAY_S = 0.05
_MIN_WAIT_S = 0.02  # never spin, even if the store says something is due that cannot be claimed
# At most this much of a store write's length is added to the next claim's leases.
WRITE_ALLOWANCE_MAX_S = 120.0


class DeliveryObserver(Protocol):
    """Told the state every attempt left its delivery in (the daemon's metrics)."""

    def delivered(self, sink: str, state: DeliveryState) -> None: ...


@dataclass
class SinkReport:
    """What one delivery round did for a sink, and the state it left the sink in."""

    sink: str
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    paused_until: datetime | None = None
    disabled: bool = False


def sink_fingerprint(config: SinkConfig) -> str:
    """A digest of a sink's configuration (secrets left out): a 410-disabled sink whose config
    changed since (a new URL, say) is enabled again on the next start."""
    options = {k: v for k, v in config.table.items() if k not in ("secret", "secrets")}
    blob = json.dumps({"type": config.type, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class OwnerLock:
    """An exclusive flock on a file next to the store, taken by a dispatcher when it starts and
    held until the process ends (the kernel drops it even on SIGKILL).

    Whoever gets it knows that no dispatcher that held it before is alive, so the leases such a
    process left behind are stale and can be reclaimed at once instead of waiting for them to run
    out: a crashed daemon's in-flight deliveries go out as soon as syncd starts again. A process
    that does not get it (a `syncd sync` next to a running daemon) delivers too, respecting
    leases; it just never reclaims any.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_store(cls, db_path: Path) -> OwnerLock:
        return cls(db_path.with_name(db_path.name + "-dispatcher.lock"))

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock


@dataclass(eq=False)
class BoundSink:
    """A sink with its configuration and the dispatcher's in-memory view of its health."""

    sink: Sink
    config: SinkConfig
    health: SinkHealth = field(default_factory=SinkHealth)
    disabled: bool = False
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    loaded: bool = False  # persisted state read
    resume_seen: str | None = None  # the last operator resume request acted upon
    fingerprint: str = ""
    batch_sink: BatchSink | None = None  # the same sink, when it takes several events per attempt
    # Leased ahead, not started yet (only while healthy; never for a strict sink).
    ready: deque[DueDelivery] = field(default_factory=deque)
    unrecorded: list[AttemptRecord] = field(default_factory=list)  # finished, not written yet
    unrecorded_since: float | None = None  # monotonic time the oldest of them finished
    give_back: list[DueDelivery] = field(default_factory=list)  # leases to hand back
    refreshed_at: float | None = None  # monotonic time of the last look at the sink's row
    # How long the last store write of its `_fill` took by the clock, the turn that lets just
    # started attempts run included (it eats into the leases as much).
    write_s: float = 0.0

    def __post_init__(self) -> None:
        self.fingerprint = sink_fingerprint(self.config)
        # Checked once: isinstance against a runtime Protocol inspects the class every time.
        self.batch_sink = self.sink if isinstance(self.sink, BatchSink) else None

    @property
    def batches(self) -> bool:
        return self.batch_sink is not None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def strict(self) -> bool:
        """One attempt at a time means strict `seq` order for the whole sink, failures included."""
        return self.config.max_in_flight == 1


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        sinks: Sequence[BoundSink],
        clock: Clock,
        rng: random.Random,
        batch_size: int = BATCH_SIZE,
        idle_poll_s: float = IDLE_POLL_S,
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
        owner_lock: OwnerLock | None = None,
        observer: DeliveryObserver | None = None,
        worker: str | None = None,
    ) -> None:
        self.observer = observer
        self.outbox = store.outbox
        self.owner_lock = owner_lock
        # The worker whose leases these are (syncd.workers): on a shared store, its leases are
        # taken back only once its row is gone or expired.
        self.worker = worker
        self._started = False
        self.sinks = list(sinks)
        self.clock = clock
        self.rng = rng
        self.batch_size = batch_size
        self.idle_poll_s = idle_poll_s
        self.shutdown_grace_s = shutdown_grace_s

    def bound(self, name: str) -> BoundSink | None:
        return next((b for b in self.sinks if b.name == name), None)

    # ------------------------------------------------------------------ entry points

    async def deliver_due(self) -> list[SinkReport]:
        """One pass (`syncd sync`): every sink concurrently sends what is due, then returns.

        Failures are rescheduled, not waited for; a paused or disabled sink sends nothing.
        """
        await self._start()
        return list(await asyncio.gather(*(self._pass(b) for b in self.sinks)))

    async def _start(self) -> None:
        """Once per dispatcher: reclaim the leases a crashed dispatcher left, so its in-flight
        deliveries are due now rather than when the leases run out. With an owner lock (SQLite:
        one machine), holding it proves no other dispatcher is alive: every lease. Without one,
        as a worker of a shared store: only the leases of workers that are gone."""
        if self._started:
            return
        self._started = True
        reclaimed = 0
        if self.owner_lock is not None:
            if self.owner_lock.try_acquire():
                reclaimed = await self.outbox.reclaim_leases(self.clock(), everyone=True)
        elif self.worker is not None:
            reclaimed = await self.outbox.reclaim_leases(self.clock())
        if reclaimed:
            log.info("reclaimed leases of an unfinished run", deliveries=reclaimed)

    def notify(self) -> None:
        """New events were committed: wake the sink loops."""
        for b in self.sinks:
            b.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver continuously until `stop` is set, then let in-flight attempts finish for up to
        `shutdown_grace_s` and hand the leases of the rest back."""

        async def relay_stop() -> None:
            await stop.wait()
            self.notify()

        await self._start()
        relay = asyncio.create_task(relay_stop())
        try:
            await asyncio.gather(*(self._loop(b, stop) for b in self.sinks))
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)

    async def send_now(self, delivery_id: int) -> tuple[DueDelivery, SendOutcome, DeliveryState]:
        """`syncd deliveries retry`: one attempt of one delivery now, whatever its state.

        Ignores the schedule, the sink's pause and its disabled flag (the operator asked for this
        attempt). A success lifts the sink's pause so a running daemon drains it at once.
        """
        due = await self.outbox.load(delivery_id)
        if due is None:
            raise SyncdError(f"no delivery with id {delivery_id}")
        bound = self.bound(due.sink)
        if bound is None:
            raise SyncdError(f"delivery {delivery_id} belongs to sink {due.sink!r}, not configured")
        [outcome] = await self._send(bound, [due])
        now = self.clock()
        [record] = self._records(bound, [due], [outcome], now)
        [state] = await self.outbox.record_attempts([record])
        self._log_failure(bound, due, record)
        if outcome.disable_sink:
            await self._disable(bound, outcome, now)
        elif outcome.ok:
            await self.outbox.request_resume(bound.name, now)
        return due, outcome, state

    # ------------------------------------------------------------------ per-sink loops

    async def _pass(self, bound: BoundSink) -> SinkReport:
        report = SinkReport(bound.name)
        try:
            await self._refresh(bound)
            while True:
                # Cleared before filling: an attempt that finishes meanwhile sets it (`_finished`),
                # so the wait below returns at once. Cheaper than asyncio.wait on the in-flight
                # set, which hooks every task again for each finished attempt.
                bound.wake.clear()
                await self._fill(bound, report)
                if bound.in_flight:
                    await bound.wake.wait()
                elif not bound.unrecorded and not bound.give_back:
                    break
                # Else every attempt finished while the store was written (a remote store's
                # write awaits): record them and claim what they unblocked, in this pass.
        finally:
            await self._abandon(bound, grace_s=0.0)
        now = self.clock()
        report.paused_until = bound.health.paused_until if bound.health.paused(now) else None
        report.disabled = bound.disabled
        return report

    async def _loop(self, bound: BoundSink, stop: asyncio.Event) -> None:
        report = SinkReport(bound.name)  # running totals, for the debugger's benefit
        try:
            while not stop.is_set():
                # Cleared before looking, so a notify() that lands meanwhile is not lost.
                bound.wake.clear()
                try:
                    if self._refresh_due(bound):
                        await self._refresh(bound)
                    await self._fill(bound, report)
                    delay = await self._wait_s(bound)
                except Exception:
                    # The store is busy or full, or a bug: say so and try again, never die
                    # silently while other sinks carry on.
                    log.exception("delivery loop error", sink=bound.name)
                    delay = self.idle_poll_s
                if stop.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await bound.wake.wait()
        finally:
            await self._abandon(bound, grace_s=self.shutdown_grace_s)

    def _refresh_due(self, bound: BoundSink) -> bool:
        """A busy loop turns for every finished attempt; the sink's row is read once a poll."""
        last = bound.refreshed_at
        return last is None or time.monotonic() - last >= self.idle_poll_s

    async def _refresh(self, bound: BoundSink) -> None:
        """Bring the in-memory view in line with the store: operator commands from other
        processes (enable, disable, recover, replay) and a config change after a 410."""
        bound.refreshed_at = time.monotonic()
        row = await self.outbox.sink_row(bound.name)
        if not bound.loaded:
            bound.loaded = True
            bound.resume_seen = row.resume_requested_at
            if row.paused_until is not None:
                # A pause outlives restarts: the receiver asked (Retry-After) or was down.
                bound.health = SinkHealth(
                    Health.PAUSED, row.paused_until, row.pause_level, 0, row.pause_reason
                )
        elif row.resume_requested_at != bound.resume_seen:
            bound.resume_seen = row.resume_requested_at
            bound.health = SinkHealth()
            log.info("sink resumed by operator", sink=bound.name)
        if row.disabled_at is not None and row.config_hash not in (None, bound.fingerprint):
            await self.outbox.enable_sink(bound.name, self.clock())
            row = await self.outbox.sink_row(bound.name)
            bound.resume_seen = row.resume_requested_at
            bound.health = SinkHealth()
            log.info("sink re-enabled", sink=bound.name, reason="its configuration changed")
        if row.disabled_at is not None and not bound.disabled:
            log.warning("sink disabled", sink=bound.name, reason=row.disabled_reason)
        bound.disabled = row.disabled_at is not None

    async def _fill(self, bound: BoundSink, report: SinkReport) -> None:
        """Start attempts until the sink's window is full, and do the store's side in (mostly)
        one transaction: record what finished, hand back unused leases, lease what comes next."""
        now, window = self._window(bound)
        started = self._start_ready(bound, report, now, window)
        while True:
            # Claimed as soon as nothing is leased ahead, even while every slot is busy (a
            # healthy sink then leases ahead only): the store's work overlaps a full window of
            # attempts instead of waiting for one to finish (a file sink's writer thread had
            # nothing queued during most of each exchange).
            free = max(window - len(bound.in_flight), 0)
            claim = self._claim_for(bound, now, free) if window and not bound.ready else None
            if claim is None and not self._record_due(bound):
                return
            records, give_back = bound.unrecorded, bound.give_back
            health = bound.health  # a transition makes a new value
            began = self.clock()
            if claim is not None and not records and not give_back:
                # Nothing to write but the claim: an idle sink looks before taking the write
                # lock (the syncer's page commits need it), and so does one leasing ahead with
                # every slot busy (a hung receiver's sink must not take it at every wake); a busy
                # one with room will find work.
                claimed = await self.outbox.claim_due(
                    claim.sink,
                    claim.now,
                    claim.limit,
                    claim.lease_until,
                    probe=claim.probe,
                    strict=claim.strict,
                    peek=not bound.in_flight or free == 0,
                    owner=claim.owner,
                )
            else:
                if started:
                    # Let the attempts just started reach their sink (a file sink's writer
                    # thread) before a local store's write holds the event loop.
                    await asyncio.sleep(0)
                # Taken out before the write awaits: attempts that finish meanwhile (the store
                # is remote) append to fresh lists, not to ones this write already went through.
                since = bound.unrecorded_since
                bound.unrecorded, bound.give_back, bound.unrecorded_since = [], [], None
                try:
                    claimed = await self.outbox.exchange(records, release=give_back, claim=claim)
                except BaseException:
                    bound.unrecorded[:0], bound.give_back[:0] = records, give_back
                    bound.unrecorded_since = since if records else bound.unrecorded_since
                    raise
            bound.ready.extend(claimed)
            if bound.health is not health or bound.disabled:
                # Attempts that finished while the store was written changed the sink's health
                # (paused it, or a probe closed it): what may start is decided again, never on
                # the window from before the write, or a remote store's writes would let a
                # paused sink's backlog through to the receiver that just said it is down.
                now, window = self._window(bound)
            else:
                now = self.clock()  # the lease check must see the time the write took
            # The next claim's leases are longer by this: they are taken from the time before
            # the write, and must still outlast an attempt when it returns (`_claim_for`).
            # (Bounded: a wall clock stepped forward mid-write must not lease for hours. A peek
            # that found nothing wrote nothing: it says nothing about how long writes take.)
            if claimed or records or give_back:
                bound.write_s = min(max((now - began).total_seconds(), 0.0), WRITE_ALLOWANCE_MAX_S)
            started = self._start_ready(bound, report, now, window)
            # Claimed less than asked: nothing more is claimable now. Otherwise the window may
            # still have room (a probe that became a full window cannot, it waits for its answer),
            # also after a write that only recorded: attempts may have finished while it awaited.
            if claim is not None and (len(claimed) < claim.limit or claim.probe):
                return

    def _window(self, bound: BoundSink) -> tuple[datetime, int]:
        """Now, and how many attempts the sink may have in flight now. While it is paused,
        probing or disabled, what was leased ahead goes back, so probes choose freely and
        another process may send it."""
        now = self.clock()
        window = 0 if bound.disabled else bound.health.window(now, bound.config.max_in_flight)
        if bound.ready and (window == 0 or bound.health.state is not Health.CLOSED):
            bound.give_back.extend(bound.ready)
            bound.ready.clear()
        return now, window

    def _claim_for(self, bound: BoundSink, now: datetime, free: int) -> Claim | None:
        """What to lease for `free` open attempts, and how far ahead."""
        if bound.disabled:
            return None
        probe = bound.health.probing(now)
        per_attempt = 1 if probe else (self.batch_size if bound.batches else 1)
        # Only a healthy, non-strict sink leases ahead: a probe waits for its answer, and a
        # strict sink's next event is not claimable before this one is recorded anyway.
        ahead = 0 if probe or bound.strict else CLAIM_AHEAD_WINDOWS
        attempts = free + ahead * bound.health.window(now, bound.config.max_in_flight)
        if ahead and per_attempt == 1:
            attempts = max(attempts, free + CLAIM_AHEAD_MIN_EVENTS)
        limit = min(attempts * per_attempt, max(CLAIM_MAX_EVENTS, free * per_attempt))
        if limit <= 0:
            return None  # every slot busy and nothing to lease ahead (probing, strict)
        # A slow store write eats into a lease before its attempt can start: the last one's
        # length is added, or a store that stays slow (a lease taken with only the margin to
        # spare, as a probe's or a strict sink's is) would have every claim given back.
        lease_s = bound.config.timeout_s * (1 + ahead) + LEASE_MARGIN_S + bound.write_s
        return Claim(
            bound.name,
            now,
            limit,
            now + timedelta(seconds=lease_s),
            probe=probe,
            strict=bound.strict,
            owner=self.worker,
        )

    def _start_ready(
        self, bound: BoundSink, report: SinkReport, now: datetime, window: int
    ) -> bool:
        """Start attempts from what is leased ahead while the window has room (whether any
        started). One whose lease could run out before its attempt ends (a stalled loop) goes
        back instead."""
        started = False
        per_attempt = self.batch_size if bound.batches else 1
        lease_needed = now + timedelta(seconds=bound.config.timeout_s + LEASE_MARGIN_S / 2)
        ready = bound.ready
        while ready and len(bound.in_flight) < window:
            taken = [ready.popleft() for _ in range(min(per_attempt, len(ready)))]
            group = [d for d in taken if d.leased_until is None or d.leased_until >= lease_needed]
            if len(group) < len(taken):
                bound.give_back.extend(
                    d for d in taken if d.leased_until is not None and d.leased_until < lease_needed
                )
            if group:
                task = asyncio.create_task(self._attempt(bound, group, report))
                bound.in_flight.add(task)
                task.add_done_callback(functools.partial(_finished, bound))
                started = True
        return started

    def _record_due(self, bound: BoundSink) -> bool:
        """Whether the finished attempts waiting to be written should be written now."""
        if bound.give_back:
            return True
        if not bound.unrecorded:
            return False
        if bound.strict or len(bound.unrecorded) >= RECORD_BATCH or not bound.in_flight:
            return True
        since = bound.unrecorded_since
        return since is not None and time.monotonic() - since >= RECORD_DELAY_S

    async def _wait_s(self, bound: BoundSink) -> float:
        """How long an idle loop may sleep before something could be due."""
        now = self.clock()
        wait = await self._wait_due_s(bound, now)
        if bound.unrecorded_since is not None:
            left = RECORD_DELAY_S - (time.monotonic() - bound.unrecorded_since)
            wait = min(wait, max(left, _MIN_WAIT_S))
        return wait

    async def _wait_due_s(self, bound: BoundSink, now: datetime) -> float:
        if bound.disabled:
            return self.idle_poll_s
        if bound.health.paused(now):
            assert bound.health.paused_until is not None
            until = bound.health.paused_until
        elif len(bound.in_flight) >= bound.health.window(now, bound.config.max_in_flight):
            return self.idle_poll_s  # a finishing attempt wakes the loop
        else:
            next_due = await self.outbox.next_due_at(bound.name)
            if next_due is None:
                return self.idle_poll_s
            until = next_due
        return min(max((until - now).total_seconds(), _MIN_WAIT_S), self.idle_poll_s)

    async def _abandon(self, bound: BoundSink, *, grace_s: float) -> None:
        """Let in-flight attempts finish for `grace_s`, then cancel the rest (they hand their
        leases back, so a restart sends them at once); write what finished, give back what was
        leased ahead."""
        pending = set(bound.in_flight)
        if pending and grace_s > 0:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        bound.give_back.extend(bound.ready)
        bound.ready.clear()
        records, give_back = bound.unrecorded, bound.give_back
        bound.unrecorded, bound.give_back, bound.unrecorded_since = [], [], None
        try:
            await self.outbox.exchange(records, release=give_back)
        except Exception:
            # Unrecorded attempts keep their leases: they run out (or the next start reclaims
            # them) and the deliveries are sent again. At least once, never lost.
            log.exception("recording delivery attempts failed", sink=bound.name)

    # ------------------------------------------------------------------ one attempt

    async def _attempt(
        self, bound: BoundSink, group: list[DueDelivery], report: SinkReport
    ) -> None:
        try:
            outcomes = await self._send(bound, group)
        except asyncio.CancelledError:
            bound.give_back.extend(group)
            raise
        try:
            await self._settle(bound, group, outcomes, report)
        except Exception:
            # The attempt happened but could not be taken in: its lease runs out and it is sent
            # again (same id, same body). At least once, never lost.
            log.exception("settling a delivery attempt failed", sink=bound.name)

    async def _send(self, bound: BoundSink, group: list[DueDelivery]) -> list[SendOutcome]:
        sink, batch_sink = bound.sink, bound.batch_sink
        try:
            if batch_sink is not None:
                outcomes = list(await batch_sink.send_batch([d.event for d in group]))
                if len(outcomes) != len(group):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(group)} events")
            else:
                outcomes = [await sink.send(group[0].event)]
        except Exception as exc:
            # A sink broke its contract (sinks report failures, they do not raise). Count it as
            # a failed attempt so the delivery is retried, and keep the other sinks going.
            log.exception("sink raised", sink=bound.name)
            error = f"sink error: {type(exc).__name__}: {exc}"
            outcomes = [SendOutcome(ok=False, error=error)] * len(group)
        return outcomes

    def _records(
        self,
        bound: BoundSink,
        group: Sequence[DueDelivery],
        outcomes: Sequence[SendOutcome],
        now: datetime,
    ) -> list[AttemptRecord]:
        """One record per delivery, or one for the whole group when it all went through with
        one outcome (a batch written at once)."""
        first = outcomes[0] if outcomes else None
        # count() compares by identity first: a batch sink answers with one outcome object.
        if first is not None and first.ok and outcomes.count(first) == len(outcomes):
            return [AttemptRecord(tuple([d.id for d in group]), first, None, now)]
        records = []
        for due, outcome in zip(group, outcomes, strict=True):
            retry_at: datetime | None
            if outcome.ok:
                retry_at = None
            elif outcome.disable_sink:
                retry_at = now  # stays due: it goes out as soon as the sink is enabled again
            elif not outcome.retryable:
                retry_at = None
            else:
                retry_at = next_attempt_at(
                    due.attempts + 1,
                    bound.config.retry_schedule_s,
                    now,
                    retry_after_s=outcome.retry_after_s,
                    rng=self.rng,
                )
            records.append(AttemptRecord((due.id,), outcome, retry_at, now))
        return records

    async def _settle(
        self,
        bound: BoundSink,
        group: Sequence[DueDelivery],
        outcomes: Sequence[SendOutcome],
        report: SinkReport,
    ) -> None:
        """Take in a finished attempt: decide retries and the sink's health now, and queue the
        records for the next write (`_fill`). Until that write the deliveries stay leased: a
        crash before it means they are sent again, never lost."""
        now = self.clock()
        records = self._records(bound, group, outcomes, now)
        if bound.unrecorded_since is None:
            bound.unrecorded_since = time.monotonic()
        bound.unrecorded.extend(records)
        before = bound.health
        by_id = {d.id: d for d in group} if len(records) > 1 else {}
        for record in records:
            if self.observer is not None:
                for _ in record.delivery_ids:
                    self.observer.delivered(bound.name, record.state)
            outcome = record.outcome
            if outcome.ok:
                report.delivered += len(record.delivery_ids)
                bound.health = bound.health.succeeded()
                continue
            due = by_id[record.delivery_ids[0]] if by_id else group[0]
            if record.state is DeliveryState.DEAD:
                report.dead += 1
            else:
                report.failed += 1
            self._log_failure(bound, due, record)
            if outcome.disable_sink:
                if not bound.disabled:
                    await self._disable(bound, outcome, now)
                continue
            bound.health = bound.health.failed(
                unavailable=receiver_unavailable(outcome.status, outcome.retry_after_s),
                retry_after_s=outcome.retry_after_s,
                reason=outcome.error,
                now=now,
                schedule=bound.config.retry_schedule_s,
                rng=self.rng,
            )
        if bound.health is not before:  # transitions make a new value; a healthy sink's do not
            await self._persist_health(bound, before, now)

    async def _persist_health(self, bound: BoundSink, before: SinkHealth, now: datetime) -> None:
        after = bound.health
        if after.state is Health.PAUSED and after.paused_until != before.paused_until:
            await self.outbox.set_pause(bound.name, after.paused_until, after.level, after.reason)
            assert after.paused_until is not None
            log.warning(
                "sink paused",
                sink=bound.name,
                until=after.paused_until.isoformat(),
                pause_level=after.level,
                reason=after.reason,
            )
        elif before.level > 0 and after.state is Health.CLOSED:
            # Probes spread over the least-tried deliveries, so during an outage each delivery
            # failed about once and its own short back-off is long over: the queue drains in seq
            # order from here without pulling anything forward.
            await self.outbox.set_pause(bound.name, None, 0, None)
            log.info("sink recovered", sink=bound.name, after_pauses=before.level)

    async def _disable(self, bound: BoundSink, outcome: SendOutcome, now: datetime) -> None:
        reason = f"receiver answered {outcome.status}: {outcome.error}"
        # Before the store's write: no attempt may start while a remote store records it.
        bound.disabled = True
        await self.outbox.disable_sink(bound.name, reason, now, config_hash=bound.fingerprint)
        log.error(
            "sink disabled", sink=bound.name, reason=reason, hint=f"syncd sinks enable {bound.name}"
        )

    def _log_failure(self, bound: BoundSink, due: DueDelivery, record: AttemptRecord) -> None:
        outcome = record.outcome
        if outcome.ok:
            return
        next_at = record.next_attempt_at
        state = record.state
        dead = state is DeliveryState.DEAD
        log.warning(
            "delivery failed",
            sink=bound.name,
            delivery_id=due.id,
            event_id=due.event.id,
            seq=due.event.seq,
            attempt=due.attempts + 1,
            status=outcome.status,
            error=outcome.error,
            state=str(state),
            next_attempt=None if next_at is None or dead else next_at.isoformat(),
        )


def _finished(bound: BoundSink, task: asyncio.Task[None]) -> None:
    bound.in_flight.discard(task)
    bound.wake.set()
