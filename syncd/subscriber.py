"""The WebSub subscriber (issue 10): asks hubs for subscriptions and keeps their leases, answers
their intent verifications, takes their content distributions into the store, and keeps the
safety-net poll of a subscribed feed.

The callback URL `<[websub] public_url>/websub/<id>` is the capability, and a random secret per
subscription signs the pushes. A pushed document goes through the syncer's own parse ─► diff ─►
commit path, as a partial page. When to renew, retry or poll is decided in syncd.websub (pure);
rows are read and written through `Store.websub`. This module serves no HTTP itself: the
routes in syncd.web.websub call it, and the daemon's poll loop calls `tick`, `configured` and
`polled`.

A push is a write to a feed like a crawl's page, so it takes the feed's lease for its commit
(docs/design.md, "Many workers"): while a worker crawls the feed, the push waits for the lease
(at most one lease period, then page 1 is polled instead), and its commit is fenced like a
crawl's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import structlog

from syncd.config import Config, FeedConfig
from syncd.errors import SyncdError
from syncd.schedule import spread_first_poll
from syncd.storage import Store
from syncd.storage.values import FeedLease, Subscription
from syncd.sync import FeedSyncer, SyncReport
from syncd.websub import (
    PENDING,
    THIN_PING_EVERY,
    Budget,
    Discovery,
    is_live,
    new_callback_id,
    new_secret,
    next_step,
    renew_at,
    retry_at,
    safety_net_due,
    signature_ok,
    take_push,
)
from syncd.workers import Worker

log = structlog.get_logger("syncd.websub")

Clock = Callable[[], datetime]
HUB_TIMEOUT_S = 30.0
# Hubs give up on a callback that answers slowly (and retry, or drop it): a push whose commit
# takes longer is answered first and committed after; a crash in between loses nothing the
# safety-net poll will not find.
ANSWER_WITHIN_S = 5.0
RECEIVING = (*PENDING, "active")  # states in which a push is taken (anything else: 410)
PUSH_LEASE_RETRY_S = 0.25  # how often a push waiting for a crawl to end asks for the lease


class PushObserver(Protocol):
    """Told every push's outcome: `accepted`, or why it was rejected (the daemon's metrics)."""

    def pushed(self, outcome: str) -> None: ...


@dataclass(frozen=True)
class Answer:
    """What the callback route answers: status and body."""

    status: int
    body: str = ""


class Subscriber:
    def __init__(
        self,
        *,
        store: Store,
        syncer: FeedSyncer,
        session: aiohttp.ClientSession,
        clock: Clock,
        config: Callable[[], Config],
        committed: Callable[[], None],
        rng: random.Random,
        observer: PushObserver | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.worker = worker  # None: pushes commit unfenced (a store no other worker shares)
        self.store = store
        self.syncer = syncer
        self.session = session
        self.clock = clock
        self.config = config
        self.committed = committed
        self.rng = rng
        self.observer = observer
        self._tasks: set[asyncio.Task[None]] = set()
        self._budgets: dict[str, Budget] = {}  # per callback: its push rate
        self._thin_at: dict[str, datetime] = {}  # per feed: the last page-1 fetch a ping asked
        self._pinged: dict[str, datetime] = {}  # per feed: a ping's poll not yet done
        # Per feed, when this process last started a poll of it: a poll is judged (did it find
        # what pushes missed?) only when the one before it ran under the same subscription.
        self._last_poll: dict[str, datetime] = {}

    # ------------------------------------------------------------------ subscribing

    async def noticed(self, feed: FeedConfig, found: Discovery | None) -> None:
        """After a poll: subscribe to the hub page 1 advertised, unless already (being) done.
        A different hub or topic than the subscribed one: unsubscribe there, subscribe here."""
        ws = self.config().websub
        if found is None or not ws.active or not feed.websub:
            return
        if urlsplit(found.hub).scheme != "https" and not ws.allow_insecure_hubs:
            log.info(
                "websub hub not used: not https (websub.allow_insecure_hubs)",
                feed=feed.name,
                hub=found.hub,
            )
            return
        now = self.clock()
        state = await self.store.feed_state(feed.name)
        rows = [
            r
            for r in await self.store.websub.feed_subscriptions(state.id)
            if r.state != "unsubscribing"
        ]
        if any((r.hub, r.topic) == (found.hub, found.topic) for r in rows):
            return  # live, pending, or refused by this hub: not asked again in every poll
        for old in rows:
            if old.state in (*PENDING, "active"):
                log.info("websub hub changed", feed=feed.name, old=old.hub, new=found.hub)
                await self._send(old, "unsubscribe", now)
        sub_id = new_callback_id()
        await self.store.websub.add_subscription(
            sub_id,
            feed_id=state.id,
            hub=found.hub,
            topic=found.topic,
            secret=new_secret(),
            callback=self.callback_url(sub_id),
            lease_s=int(ws.lease_s),
            now=now,
            retry_at=retry_at(now, 1, self.rng),
        )
        sub = await self.store.websub.subscription(sub_id)
        assert sub is not None
        self._spawn(self._ask_hub(sub, "subscribe"))

    def callback_url(self, sub_id: str) -> str:
        base = self.config().websub.public_url or ""
        return f"{base}/websub/{sub_id}"

    async def configured(self, config: Config, *, starting: bool) -> None:
        """At start and after a reload: unsubscribe where a feed left the config (or WebSub was
        turned off for it). At start also renew every lease now (the hub may have lost it, and
        `public_url` may have changed), and poll each subscribed feed within its own interval:
        pushes sent while syncd was down were lost."""
        now = self.clock()
        wanted = {f.name: f for f in config.feeds if f.websub} if config.websub.active else {}
        # Another live worker on the store has kept the leases while this one was not running:
        # renew at start only what it could not (a callback under a changed public_url).
        others = starting and await self._other_workers_alive(now)
        for sub in await self.store.websub.open_subscriptions():
            feed = wanted.get(sub.feed_name)
            if feed is None:
                if sub.state != "unsubscribing":
                    log.info("websub unsubscribing: feed not configured", feed=sub.feed_name)
                    await self._send(sub, "unsubscribe", now)
                continue
            if not starting:
                continue
            if _live(sub, now):
                try:
                    await self._catch_up(feed, sub, now)
                except SyncdError as e:  # the feed could not be registered: logged there
                    log.warning("websub catch-up poll not scheduled", feed=feed.name, error=str(e))
            if others and sub.callback == self.callback_url(sub.id):
                continue
            if sub.state in (*PENDING, "active"):
                await self._send(sub, "renew" if sub.state == "active" else "subscribe", now)
            elif sub.state == "unsubscribing":
                await self._send(sub, "unsubscribe", now)

    async def _other_workers_alive(self, now: datetime) -> bool:
        if self.worker is None:
            return False
        # Rows only: worker_summaries' lease counts scan deliveries, needless here.
        return any(w != self.worker.id for w in await self.store.worker_ids(alive_at=now))

    async def _catch_up(self, feed: FeedConfig, sub: Subscription, now: datetime) -> None:
        state = await self.store.feed_state(feed.name)
        if state.first_synced_at is None or state.crawl_incomplete:
            return  # due now anyway
        due = spread_first_poll(now, feed.interval_s, self.rng)
        if state.next_due_at is None or state.next_due_at > due.at:
            await self.store.reschedule(
                state.id, due.at, f"{due.reason}; WebSub pushes sent while syncd was down are lost"
            )

    async def tick(self) -> None:
        """Send what is due: retries of unverified requests, renewals, unsubscriptions."""
        now = self.clock()
        for sub in await self.store.websub.due_subscriptions(now):
            step = next_step(
                sub.state, attempts=sub.attempts, retry=sub.retry_at, renew=sub.renew_at, now=now
            )
            if step is not None:
                await self._send(sub, step, now)

    async def _send(self, sub: Subscription, step: str, now: datetime) -> None:
        """Record the request as pending (before it is sent: the hub may verify before it
        answers), then send it. `close` gives up on an unverified unsubscription."""
        # Only if the row is still as read: another worker that read it too and got here first
        # has sent the request (docs/design.md, "Many workers").
        expect: dict[str, str | int | datetime | None] = {
            "state": sub.state,
            "requested_at": sub.requested_at,
        }
        if step == "close":
            await self.store.websub.update_subscription(
                sub.id, {"state": "unsubscribed", "reason": "unsubscription not verified"},
                expect=expect,
            )  # fmt: skip
            return
        mode = "unsubscribe" if step == "unsubscribe" else "subscribe"
        if step == "renew":
            state, attempts = "renewing", 1
        elif mode == "subscribe":
            state, attempts = (
                ("renewing" if sub.state == "renewing" else "subscribing"),
                (sub.attempts + 1),
            )
        else:
            state = "unsubscribing"
            attempts = sub.attempts + 1 if sub.state == "unsubscribing" else 1
        callback = sub.callback or self.callback_url(sub.id)
        if mode == "subscribe":
            callback = self.callback_url(sub.id)  # where hubs reach this daemon now
        values: dict[str, str | int | datetime | None] = {
            "state": state,
            "attempts": attempts,
            "retry_at": retry_at(now, attempts, self.rng),
            "callback": callback,
            "requested_at": now,
        }
        if not await self.store.websub.update_subscription(sub.id, values, expect=expect):
            log.debug("websub request sent by another worker", feed=sub.feed_name, step=step)
            return
        fresh = await self.store.websub.subscription(sub.id)
        assert fresh is not None
        self._spawn(self._ask_hub(fresh, mode))

    async def _set(self, sub_id: str, **values: str | int | datetime | None) -> None:
        await self.store.websub.update_subscription(sub_id, values)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _ask_hub(self, sub: Subscription, mode: str) -> None:
        assert sub.callback is not None
        form: dict[str, str] = {
            "hub.mode": mode,
            "hub.topic": sub.topic,
            "hub.callback": sub.callback,
        }
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(int(self.config().websub.lease_s))
            if sub.secret is not None:
                form["hub.secret"] = sub.secret
        try:
            async with self.session.post(
                sub.hub, data=form, timeout=aiohttp.ClientTimeout(total=HUB_TIMEOUT_S)
            ) as r:
                text = (await r.content.read(2000)).decode("utf-8", "replace")
                ok = 200 <= r.status < 300
                why = None if ok else f"hub answered {r.status}: {text.strip()[:200]}"
        except (aiohttp.ClientError, TimeoutError, SyncdError) as e:
            ok, why = False, f"hub unreachable: {type(e).__name__}: {e}"
        if ok:
            log.info("websub request accepted", feed=sub.feed_name, hub=sub.hub, mode=mode)
            return
        # The row stays pending: its retry time (back-off) is already set.
        log.warning("websub request failed", feed=sub.feed_name, hub=sub.hub, mode=mode, error=why)
        await self._set(sub.id, reason=why)

    # ------------------------------------------------------------------ the safety net

    async def polled(self, feed: FeedConfig, report: SyncReport) -> None:
        """After a poll of `feed`: subscribe to what it advertised; if its subscription is live,
        judge the poll (a change it found is one no push delivered: WebSub is unreliable for the
        feed, and its own interval returns) or else put the next poll off to the safety net's
        interval."""
        if not self.config().websub.active or not feed.websub:
            return  # and nothing kept per feed: a daemon may poll a million without WebSub
        await self.noticed(feed, report.websub)
        now = self.clock()
        started = now - timedelta(milliseconds=report.ms)
        previous = self._last_poll.get(feed.name)
        self._last_poll[feed.name] = started
        pinged = self._pinged.get(feed.name)
        if pinged is not None and pinged <= started:
            del self._pinged[feed.name]  # this poll is the ping's fetch, not the safety net
        if not report.completed:
            return
        state = await self.store.feed_state(feed.name)
        live = [s for s in await self.store.websub.feed_subscriptions(state.id) if _live(s, now)]
        if not live:
            return
        sub = live[0]
        if sub.unreliable_at is not None:
            return
        missed = report.created + report.updated
        judged = (
            previous is not None
            and sub.verified_at is not None
            and sub.verified_at <= previous
            and not (pinged is not None and pinged <= started)
        )
        if judged and missed:
            why = f"a poll found {missed} new or updated entries that no push delivered"
            log.warning("websub unreliable: polled at its interval", feed=feed.name, why=why)
            await self._set(sub.id, unreliable_at=now, unreliable_reason=why)
            return
        await self._put_off(state.id, state.publisher_interval_s, sub)

    async def _put_off(self, feed_id: int, publisher_s: float | None, sub: Subscription) -> None:
        """Poll a feed whose pushes are trusted at the safety net's interval instead of its own
        (a cadence the publisher stated, `<ttl>` or `sy:updatePeriod`, is still a floor)."""
        now = self.clock()
        at = safety_net_due(now, self.config().websub.poll_interval_s, self.rng)
        reason = f"WebSub subscription live at {sub.hub}: safety-net poll"
        if publisher_s is not None and now + timedelta(seconds=publisher_s) > at:
            at, reason = now + timedelta(seconds=publisher_s), f"{reason}; publisher's cadence"
        await self.store.reschedule(feed_id, at, reason)

    # ------------------------------------------------------------------ the callback

    async def verify(self, sub_id: str, query: Mapping[str, str]) -> Answer:
        """A hub's intent verification (or denial) for callback `sub_id`."""
        sub = await self.store.websub.subscription(sub_id)
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        if sub is None or topic != sub.topic:
            return Answer(404)
        now = self.clock()
        if mode == "denied":
            reason = query.get("hub.reason") or "denied by the hub"
            log.warning("websub subscription denied", feed=sub.feed_name, reason=reason)
            await self._set(sub_id, state="denied", reason=reason, retry_at=None)
            return Answer(200)
        challenge = query.get("hub.challenge")
        if not challenge:
            return Answer(404)
        if mode == "subscribe" and sub.state in PENDING:
            lease = _lease(query.get("hub.lease_seconds")) or sub.lease_seconds
            lease = lease or int(self.config().websub.lease_s)
            await self._set(
                sub_id,
                state="active",
                lease_seconds=lease,
                expires_at=now + timedelta(seconds=lease),
                renew_at=renew_at(now, lease, self.rng),
                verified_at=sub.verified_at or now,
                retry_at=None,
                attempts=0,
                reason=None,
            )
            log.info("websub subscription verified", feed=sub.feed_name, lease_s=lease)
            if sub.verified_at is None:
                try:
                    feed = self.config().feed(sub.feed_name)
                    state = await self.store.feed_state(feed.name)
                    await self._put_off(state.id, state.publisher_interval_s, sub)
                except SyncdError:
                    pass  # the feed left the config meanwhile: it is unsubscribed
            return Answer(200, challenge)
        if mode == "unsubscribe" and sub.state == "unsubscribing":
            await self._set(sub_id, state="unsubscribed", retry_at=None)
            return Answer(200, challenge)
        return Answer(404)

    def max_body_bytes(self) -> int:
        return self.config().fetch.max_body_bytes

    async def too_large(self, sub_id: str) -> None:
        """A push over the body cap (answered 413)."""
        await self._reject(sub_id, "too_large")

    async def _reject(self, sub_id: str | None, why: str) -> None:
        if self.observer is not None:
            self.observer.pushed(why)
        if sub_id is not None and why != "unknown_callback":
            await self.store.websub.count_push(sub_id, "rejected", self.clock())

    async def receive(self, sub_id: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """A content distribution to callback `sub_id`: committed before it is answered, unless
        that takes longer than a hub waits."""
        sub = await self.store.websub.subscription(sub_id)
        if sub is None or sub.state not in RECEIVING:
            await self._reject(None, "unknown_callback")
            return Answer(410)  # ends the hub's subscription
        now = self.clock()
        budget = take_push(
            self._budgets.get(sub_id), self.config().websub.max_pushes_per_minute, now
        )
        if budget is None:
            log.warning("websub push refused: over the callback's rate", feed=sub.feed_name)
            await self._reject(sub_id, "rate_limited")
            return Answer(429)
        self._budgets[sub_id] = budget
        if sub.secret is not None and not signature_ok(
            sub.secret, headers.get("X-Hub-Signature"), body
        ):
            # 2xx as the spec says (a hub must not learn which signatures pass); ignored.
            log.warning("websub push ignored: bad or missing signature", feed=sub.feed_name)
            await self._reject(sub_id, "signature")
            return Answer(202)
        try:
            feed = self.config().feed(sub.feed_name)
        except SyncdError:
            await self._reject(None, "unknown_callback")
            return Answer(410)  # the feed left the config
        work = self._spawn(self._take(feed, sub, body, headers.get("Content-Type", "")))
        done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN_S)
        if not done:
            log.warning("websub push answered before its commit", feed=feed.name)
        return Answer(202)

    async def _push_lease(self, worker: Worker, feed_id: int) -> FeedLease | None:
        """The feed's lease for a push, waiting while a crawl holds it; None if one held it for
        a whole lease period (that crawl's worker is stalled, or the feed is huge)."""
        deadline = asyncio.get_running_loop().time() + worker.lease_s
        while (lease := await worker.lease(feed_id)) is None:
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(PUSH_LEASE_RETRY_S)
        return lease

    async def _take(self, feed: FeedConfig, sub: Subscription, body: bytes, ctype: str) -> None:
        lease: FeedLease | None = None
        if self.worker is not None:
            try:
                lease = await self._push_lease(self.worker, sub.feed_id)
            except SyncdError as e:
                log.warning("websub push not taken; fetching page 1", feed=feed.name, error=str(e))
                await self._thin_ping(feed, sub)
                return
            if lease is None:
                log.warning("websub push not taken: the feed stayed leased; fetching page 1",
                            feed=feed.name)  # fmt: skip
                await self._thin_ping(feed, sub)
                return
        try:
            changed, usable = await self.syncer.apply_push(
                feed, body, {"content-type": ctype}, f"websub:{sub.id}", lease=lease
            )
        except SyncdError as e:
            # Signed, so the hub did say the topic changed: fetch it instead.
            log.warning("websub push not usable; fetching page 1", feed=feed.name, error=str(e))
            await self._reject(sub.id, "unparsable")
            await self._thin_ping(feed, sub)
            return
        finally:
            if lease is not None and self.worker is not None:
                await self.worker.release(lease)
        if self.observer is not None:
            self.observer.pushed("accepted")
        await self.store.websub.count_push(sub.id, "pushes", self.clock())
        if not usable:
            await self._thin_ping(feed, sub)
            return
        if changed.seqs:
            self.committed()
        log.info(
            "websub push taken",
            feed=feed.name,
            changes=len(changed.changes),
            deletions=len(changed.deletions),
        )

    async def _thin_ping(self, feed: FeedConfig, sub: Subscription) -> None:
        """A push without entries: page 1 is polled now, at most once a minute per feed, and
        never against the publisher's Retry-After."""
        now = self.clock()
        last = self._thin_at.get(feed.name)
        if last is not None and now - last < THIN_PING_EVERY:
            log.info("websub thin ping: page 1 fetched less than a minute ago", feed=feed.name)
            return
        state = await self.store.feed_state(feed.name)
        if state.retry_after_until is not None and state.retry_after_until > now:
            return
        self._thin_at[feed.name] = now
        self._pinged[feed.name] = now
        await self.store.reschedule(sub.feed_id, now, "WebSub thin ping: page 1 now")
        log.info("websub thin ping: fetching page 1", feed=feed.name)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _live(sub: Subscription, now: datetime) -> bool:
    return is_live(sub.state, sub.expires_at, now)


def _lease(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
