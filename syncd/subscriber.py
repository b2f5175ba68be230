"""The WebSub subscriber (issue 10): asks hubs for subscriptions, answers their intent
verifications, and takes their content distributions into the store.

Subscriptions live in the store (`Store.websub`), one per callback; the callback URL
`<[websub] public_url>/websub/<id>` is the capability, and a random secret per subscription signs
the pushes. A pushed document goes through the syncer's own parse ─► diff ─► commit path, as a
partial page. This module decides nothing about schedules and serves no HTTP itself: the routes
in syncd.web.websub call it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import structlog

from syncd.config import Config, FeedConfig
from syncd.errors import SyncdError
from syncd.storage import Store
from syncd.storage.protocol import SubscriptionCounter
from syncd.storage.values import Subscription
from syncd.sync import FeedSyncer
from syncd.timestamps import to_text
from syncd.websub import Discovery, new_callback_id, new_secret, signature_ok

log = structlog.get_logger("syncd.websub")

Clock = Callable[[], datetime]
LIVE = ("subscribing", "active")  # states in which nothing new is asked of the hub
HUB_TIMEOUT_S = 30.0


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
    ) -> None:
        self.store = store
        self.syncer = syncer
        self.session = session
        self.clock = clock
        self.config = config
        self.committed = committed
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ subscribing

    async def noticed(self, feed: FeedConfig, found: Discovery | None) -> None:
        """After a poll: subscribe to the hub page 1 advertised, unless already (being) done."""
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
        state = await self.store.ensure_feed(feed.name, feed.url, self.clock())
        if await self.store.websub.subscription_known(state.id, found.hub, found.topic):
            return  # live, or refused by this hub: not asked again in every poll
        sub_id, secret = new_callback_id(), new_secret()
        await self.store.websub.add_subscription(
            sub_id,
            feed_id=state.id,
            hub=found.hub,
            topic=found.topic,
            secret=secret,
            lease_s=int(ws.lease_s),
            now=self.clock(),
        )
        task = asyncio.create_task(self._ask_hub(feed.name, sub_id, found, secret, "subscribe"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def callback_url(self, sub_id: str) -> str:
        base = self.config().websub.public_url or ""
        return f"{base}/websub/{sub_id}"

    async def _ask_hub(
        self, feed: str, sub_id: str, found: Discovery, secret: str | None, mode: str
    ) -> None:
        form: dict[str, str] = {
            "hub.mode": mode,
            "hub.topic": found.topic,
            "hub.callback": self.callback_url(sub_id),
        }
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(int(self.config().websub.lease_s))
            if secret is not None:
                form["hub.secret"] = secret
        try:
            async with self.session.post(
                found.hub, data=form, timeout=aiohttp.ClientTimeout(total=HUB_TIMEOUT_S)
            ) as r:
                text = (await r.content.read(2000)).decode("utf-8", "replace")
                ok = 200 <= r.status < 300
                why = None if ok else f"hub answered {r.status}: {text.strip()[:200]}"
        except (aiohttp.ClientError, TimeoutError, SyncdError) as e:
            ok, why = False, f"hub unreachable: {type(e).__name__}: {e}"
        if ok:
            log.info("websub request accepted", feed=feed, hub=found.hub, mode=mode)
            return
        log.warning("websub request failed", feed=feed, hub=found.hub, mode=mode, error=why)
        await self._set(sub_id, state="failed", reason=why)

    # ------------------------------------------------------------------ the callback

    async def _find(self, sub_id: str) -> Subscription | None:
        return await self.store.websub.subscription(sub_id)

    async def _set(self, sub_id: str, **values: str | int | None) -> None:
        await self.store.websub.update_subscription(sub_id, values)

    async def verify(self, sub_id: str, query: Mapping[str, str]) -> Answer:
        """A hub's intent verification (or denial) for callback `sub_id`."""
        sub = await self._find(sub_id)
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        if sub is None or topic != sub.topic:
            return Answer(404)
        now = self.clock()
        if mode == "denied":
            reason = query.get("hub.reason") or "denied by the hub"
            log.warning("websub subscription denied", feed=sub.feed_name, reason=reason)
            await self._set(sub_id, state="denied", reason=reason)
            return Answer(200)
        challenge = query.get("hub.challenge")
        if not challenge:
            return Answer(404)
        if mode == "subscribe" and sub.state == "subscribing":
            lease = _lease(query.get("hub.lease_seconds"))
            expires = to_text(now + timedelta(seconds=lease)) if lease is not None else None
            await self._set(
                sub_id, state="active", lease_seconds=lease, expires_at=expires, reason=None
            )
            log.info("websub subscription verified", feed=sub.feed_name, lease_s=lease)
            return Answer(200, challenge)
        if mode == "unsubscribe" and sub.state == "unsubscribing":
            await self._set(sub_id, state="unsubscribed")
            return Answer(200, challenge)
        return Answer(404)

    async def receive(self, sub_id: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """A content distribution to callback `sub_id`: committed before it is answered."""
        sub = await self._find(sub_id)
        if sub is None or sub.state not in LIVE:
            return Answer(410)  # ends the hub's subscription
        if sub.secret is not None and not signature_ok(
            sub.secret, headers.get("X-Hub-Signature"), body
        ):
            # 2xx as the spec says (a hub must not learn which signatures pass); ignored.
            log.warning("websub push ignored: bad or missing signature", feed=sub.feed_name)
            await self._bump(sub_id, "rejected")
            return Answer(202)
        try:
            feed = self.config().feed(sub.feed_name)
        except SyncdError:
            return Answer(410)  # the feed left the config
        try:
            changed = await self.syncer.apply_push(
                feed, body, {"content-type": headers.get("Content-Type", "")}, f"websub:{sub_id}"
            )
        except SyncdError as e:
            log.warning("websub push not usable", feed=feed.name, error=str(e))
            await self._bump(sub_id, "rejected")
            return Answer(202)
        await self._bump(sub_id, "pushes")
        if changed.seqs:
            self.committed()
        log.info(
            "websub push taken",
            feed=feed.name,
            changes=len(changed.changes),
            deletions=len(changed.deletions),
        )
        return Answer(202)

    async def _bump(self, sub_id: str, counter: SubscriptionCounter) -> None:
        await self.store.websub.count_push(sub_id, counter, self.clock())

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _lease(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
