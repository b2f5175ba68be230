"""WebSub subscriptions on PostgreSQL (`websub_subscriptions`): the only reader and writer of
that table on this backend. Records what the subscriber decided; decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.storage.postgres.db import Pg
from syncd.storage.protocol import SubscriptionCounter
from syncd.storage.rows import (
    OPEN_SUBSCRIPTION_STATES,
    SUBSCRIPTION_COLUMNS,
    as_subscription,
    stamp,
    subscription_update,
)
from syncd.storage.values import Subscription
from syncd.websub import PENDING


class PostgresWebSub:
    def __init__(self, pg: Pg) -> None:
        self.pg = pg

    async def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[Subscription]:
        rows = await self.pg.rows(
            f"SELECT {SUBSCRIPTION_COLUMNS}"
            " FROM websub_subscriptions s JOIN feeds f ON f.id = s.feed_id"
            f" WHERE {where}",
            params,
        )
        return [as_subscription(dict(r)) for r in rows]

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
        async with self.pg.write() as conn:
            await conn.execute(
                "INSERT INTO websub_subscriptions (id, feed_id, hub, topic, secret, state,"
                " callback, lease_seconds, requested_at, retry_at, attempts)"
                " VALUES (%s, %s, %s, %s, %s, 'subscribing', %s, %s, %s, %s, 1)",
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
        found = await self._select("s.id = %s", (sub_id,))
        return found[0] if found else None

    async def feed_subscriptions(self, feed_id: int) -> list[Subscription]:
        return await self._select(
            "s.feed_id = %s AND s.state != 'unsubscribed' ORDER BY s.requested_at DESC",
            (feed_id,),
        )

    async def open_subscriptions(self) -> list[Subscription]:
        return await self._select("s.state = ANY(%s)", (list(OPEN_SUBSCRIPTION_STATES),))

    async def due_subscriptions(self, now: datetime) -> list[Subscription]:
        at = stamp(now)
        return await self._select(
            "(s.state = ANY(%s) AND s.retry_at <= %s) OR (s.state = 'active' AND s.renew_at <= %s)",
            ([*PENDING, "unsubscribing"], at, at),
        )

    async def all_subscriptions(self) -> list[Subscription]:
        return await self._select("TRUE ORDER BY s.requested_at")

    async def update_subscription(
        self,
        sub_id: str,
        values: Mapping[str, str | int | datetime | None],
        *,
        expect: Mapping[str, str | int | datetime | None] | None = None,
    ) -> bool:
        sql, params = subscription_update(
            sub_id, values, expect, mark="%s", same="IS NOT DISTINCT FROM"
        )
        async with self.pg.write() as conn:
            return (await conn.execute(sql, params)).rowcount == 1

    async def count_push(self, sub_id: str, counter: SubscriptionCounter, now: datetime) -> None:
        async with self.pg.write() as conn:
            if counter == "pushes":
                await conn.execute(
                    "UPDATE websub_subscriptions SET pushes = pushes + 1, last_push_at = %s"
                    " WHERE id = %s",
                    (stamp(now), sub_id),
                )
            else:
                await conn.execute(
                    "UPDATE websub_subscriptions SET rejected = rejected + 1 WHERE id = %s",
                    (sub_id,),
                )
