"""WebSub subscriptions (`websub_subscriptions`): the only writer of that table. Records what the
subscriber (syncd.subscriber) decided; decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from syncd.errors import StoreError
from syncd.storage.protocol import SubscriptionCounter
from syncd.storage.sqlite.db import Db
from syncd.storage.values import Subscription
from syncd.timestamps import to_text

# The columns a subscription's update may set (never its identity, feed, hub or topic).
_UPDATABLE = frozenset({"state", "reason", "lease_seconds", "expires_at"})


class SqliteWebSub:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def subscription_known(self, feed_id: int, hub: str, topic: str) -> bool:
        return bool(
            self.db.rows(
                "SELECT 1 FROM websub_subscriptions WHERE feed_id = ? AND hub = ? AND topic = ?"
                " AND state IN ('subscribing', 'active', 'denied')",
                (feed_id, hub, topic),
            )
        )

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
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO websub_subscriptions (id, feed_id, hub, topic, secret, state,"
                " lease_seconds, requested_at) VALUES (?, ?, ?, ?, ?, 'subscribing', ?, ?)",
                (sub_id, feed_id, hub, topic, secret, lease_s, to_text(now)),
            )

    async def subscription(self, sub_id: str) -> Subscription | None:
        rows = self.db.rows(
            "SELECT s.id, f.name AS feed_name, s.hub, s.topic, s.secret, s.state"
            " FROM websub_subscriptions s JOIN feeds f ON f.id = s.feed_id WHERE s.id = ?",
            (sub_id,),
        )
        return Subscription(**rows[0]) if rows else None

    async def update_subscription(
        self, sub_id: str, values: Mapping[str, str | int | None]
    ) -> None:
        unknown = set(values) - _UPDATABLE
        if unknown:
            raise StoreError(f"websub subscription {sub_id!r}: cannot set {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.db.write() as conn:
            conn.execute(
                f"UPDATE websub_subscriptions SET {sets} WHERE id = ?", (*values.values(), sub_id)
            )

    async def count_push(self, sub_id: str, counter: SubscriptionCounter, now: datetime) -> None:
        """One more push taken (`pushes`, stamping `last_push_at`) or refused (`rejected`)."""
        with self.db.write() as conn:
            if counter == "pushes":
                conn.execute(
                    "UPDATE websub_subscriptions SET pushes = pushes + 1, last_push_at = ?"
                    " WHERE id = ?",
                    (to_text(now), sub_id),
                )
            else:
                conn.execute(
                    "UPDATE websub_subscriptions SET rejected = rejected + 1 WHERE id = ?",
                    (sub_id,),
                )
