"""WebSub subscriptions (`websub_subscriptions`): the only reader and writer of that table.
Records what the subscriber (syncd.subscriber) decided; decides nothing itself (when to renew or
retry: syncd.websub).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.storage.protocol import SubscriptionCounter
from syncd.storage.rows import (
    OPEN_SUBSCRIPTION_STATES,
    SUBSCRIPTION_COLUMNS,
    as_subscription,
    stamp,
    subscription_update,
)
from syncd.storage.sqlite.db import Db
from syncd.storage.values import Subscription
from syncd.websub import PENDING


class SqliteWebSub:
    def __init__(self, db: Db) -> None:
        self.db = db

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[Subscription]:
        rows = self.db.rows(
            f"SELECT {SUBSCRIPTION_COLUMNS}"
            " FROM websub_subscriptions s JOIN feeds f ON f.id = s.feed_id"
            f" WHERE {where}",
            params,
        )
        return [as_subscription(r) for r in rows]

    async def add_subscription(
        self,
        sub_id: str,
        *,
        feed_id: int,
        hub: str,
        topic: str,
        secret: str | None,
        callback: str,
        lease_s: int,
        now: datetime,
        retry_at: datetime,
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO websub_subscriptions (id, feed_id, hub, topic, secret, state,"
                " callback, lease_seconds, requested_at, retry_at, attempts)"
                " VALUES (?, ?, ?, ?, ?, 'subscribing', ?, ?, ?, ?, 1)",
                (
                    sub_id,
                    feed_id,
                    hub,
                    topic,
                    secret,
                    callback,
                    lease_s,
                    stamp(now),
                    stamp(retry_at),
                ),
            )

    async def subscription(self, sub_id: str) -> Subscription | None:
        found = self._select("s.id = ?", (sub_id,))
        return found[0] if found else None

    async def feed_subscriptions(self, feed_id: int) -> list[Subscription]:
        return self._select(
            "s.feed_id = ? AND s.state != 'unsubscribed' ORDER BY s.requested_at DESC", (feed_id,)
        )

    async def open_subscriptions(self) -> list[Subscription]:
        return self._select(
            f"s.state IN ({', '.join('?' * len(OPEN_SUBSCRIPTION_STATES))})",
            OPEN_SUBSCRIPTION_STATES,
        )

    async def due_subscriptions(self, now: datetime) -> list[Subscription]:
        at = stamp(now)
        return self._select(
            f"(s.state IN ({', '.join('?' * len(PENDING))}, 'unsubscribing') AND s.retry_at <= ?)"
            " OR (s.state = 'active' AND s.renew_at <= ?)",
            (*PENDING, at, at),
        )

    async def all_subscriptions(self) -> list[Subscription]:
        return self._select("1 ORDER BY s.requested_at")

    async def update_subscription(
        self,
        sub_id: str,
        values: Mapping[str, str | int | datetime | None],
        *,
        expect: Mapping[str, str | int | datetime | None] | None = None,
    ) -> bool:
        sql, params = subscription_update(sub_id, values, expect, mark="?", same="IS")
        with self.db.write() as conn:
            return (conn.execute(sql, params)).rowcount == 1

    async def count_push(self, sub_id: str, counter: SubscriptionCounter, now: datetime) -> None:
        """One more push taken (`pushes`, stamping `last_push_at`) or refused (`rejected`)."""
        with self.db.write() as conn:
            if counter == "pushes":
                conn.execute(
                    "UPDATE websub_subscriptions SET pushes = pushes + 1, last_push_at = ?"
                    " WHERE id = ?",
                    (stamp(now), sub_id),
                )
            else:
                conn.execute(
                    "UPDATE websub_subscriptions SET rejected = rejected + 1 WHERE id = ?",
                    (sub_id,),
                )
