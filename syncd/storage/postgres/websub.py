"""WebSub subscriptions on PostgreSQL (`websub_subscriptions`): the only writer of that table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from syncd.errors import StoreError
from syncd.storage.postgres.db import Pg
from syncd.storage.protocol import SubscriptionCounter
from syncd.storage.values import Subscription
from syncd.timestamps import to_text

_UPDATABLE = frozenset({"state", "reason", "lease_seconds", "expires_at"})


class PostgresWebSub:
    def __init__(self, pg: Pg) -> None:
        self.pg = pg

    async def subscription_known(self, feed_id: int, hub: str, topic: str) -> bool:
        rows = await self.pg.rows(
            "SELECT 1 FROM websub_subscriptions WHERE feed_id = %s AND hub = %s AND topic = %s"
            " AND state IN ('subscribing', 'active', 'denied')",
            (feed_id, hub, topic),
        )
        return bool(rows)

    async def add_subscription(
        self,
        sub_id: str,
        *,
        feed_id: int,
        hub: str,
        topic: str,
        secret: str | None,
        lease_s: int,
        now: datetime,
    ) -> None:
        async with self.pg.write() as conn:
            await conn.execute(
                "INSERT INTO websub_subscriptions (id, feed_id, hub, topic, secret, state,"
                " lease_seconds, requested_at) VALUES (%s, %s, %s, %s, %s, 'subscribing', %s, %s)",
                (sub_id, feed_id, hub, topic, secret, lease_s, to_text(now)),
            )

    async def subscription(self, sub_id: str) -> Subscription | None:
        rows = await self.pg.rows(
            "SELECT s.id, f.name AS feed_name, s.hub, s.topic, s.secret, s.state"
            " FROM websub_subscriptions s JOIN feeds f ON f.id = s.feed_id WHERE s.id = %s",
            (sub_id,),
        )
        return Subscription(**rows[0]) if rows else None

    async def update_subscription(
        self, sub_id: str, values: Mapping[str, str | int | None]
    ) -> None:
        unknown = set(values) - _UPDATABLE
        if unknown:
            raise StoreError(f"websub subscription {sub_id!r}: cannot set {sorted(unknown)}")
        sets = ", ".join(f"{k} = %s" for k in values)
        async with self.pg.write() as conn:
            await conn.execute(
                f"UPDATE websub_subscriptions SET {sets} WHERE id = %s", (*values.values(), sub_id)
            )

    async def count_push(self, sub_id: str, counter: SubscriptionCounter, now: datetime) -> None:
        async with self.pg.write() as conn:
            if counter == "pushes":
                await conn.execute(
                    "UPDATE websub_subscriptions SET pushes = pushes + 1, last_push_at = %s"
                    " WHERE id = %s",
                    (to_text(now), sub_id),
                )
            else:
                await conn.execute(
                    "UPDATE websub_subscriptions SET rejected = rejected + 1 WHERE id = %s",
                    (sub_id,),
                )
