"""Per-entry order checks for delivery tests.

:class:`OrderingReceiver` is a webhook receiver that answers after a random (seeded) delay, so
requests overlap and a later one can finish first, as on a real network. It notes which entry each
request belongs to, flags two requests of one entry in flight at once, and keeps the events it
*applied* (answered 2xx) in the order it answered them: the order a receiver that applies events as
they come would see. It can refuse given events a given number of times (by event id), and hold
every request until one has come on each of some paths (one per sender, so each has work in flight
before any is answered).

:func:`order_violations` checks any such sequence, also one read back from a subprocess
receiver's log: an entry's event applied after a later event of the same entry is a violation.
Redeliveries of the latest event (at least once) are not.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.receiver import Receiver, Reply

__all__ = ["Arrival", "OrderingReceiver", "arrival_of", "order_violations", "per_entry"]


@dataclass(frozen=True)
class Arrival:
    entry: str  # feed name and entry id
    seq: int
    event_id: str


def arrival_of(body: bytes | str) -> Arrival:
    """Which entry an event envelope belongs to, and its seq."""
    event: Any = json.loads(body)
    data = event["data"]
    return Arrival(f"{data['feed']['name']}/{data['entry']['id']}", int(data["seq"]), event["id"])


def order_violations(applied: Iterable[Arrival]) -> list[str]:
    """Each event applied after a later event of its entry had been applied, described."""
    latest: dict[str, Arrival] = {}
    found = []
    for a in applied:
        before = latest.get(a.entry)
        if before is not None and a.seq < before.seq:
            found.append(f"{a.entry}: seq {a.seq} ({a.event_id}) after seq {before.seq}")
        else:
            latest[a.entry] = a
    return found


def per_entry(applied: Iterable[Arrival]) -> dict[str, list[int]]:
    """The seqs applied for each entry, in order, redeliveries included."""
    out: dict[str, list[int]] = defaultdict(list)
    for a in applied:
        out[a.entry].append(a.seq)
    return dict(out)


class OrderingReceiver(Receiver):
    def __init__(
        self,
        *,
        seed: int = 1,
        max_delay: float = 0.02,
        refuse: Mapping[str, Sequence[int]] | None = None,
        hold_until: Collection[str] = (),
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self._awaited_paths = set(hold_until)
        self._held = asyncio.Event()
        if not self._awaited_paths:
            self._held.set()
        self._rng = random.Random(seed)
        self.max_delay = max_delay
        self._refuse = {k: list(v) for k, v in (refuse or {}).items()}
        self._open: Counter[str] = Counter()
        self.current = 0
        self.peak = 0  # most requests handled at once
        self.overlaps: list[Arrival] = []  # requests that came while one of their entry was open
        self.applied: list[Arrival] = []  # answered 2xx, in the order they were answered
        self.arrived = asyncio.Event()  # set by the first request

    def refuse(self, event_id: str, *statuses: int) -> None:
        """Answer the next requests for `event_id` with these statuses."""
        self._refuse.setdefault(event_id, []).extend(statuses)

    def reply_for(self, body: bytes) -> Reply:
        pending = self._refuse.get(arrival_of(body).event_id)
        if pending:
            return Reply(status=pending.pop(0))
        return super().reply_for(body)

    def sent(self, event_id: str) -> int:
        """Requests received for `event_id`, answered or not."""
        return sum(1 for r in self.requests if r.webhook_id == event_id)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrival = arrival_of(await request.read())
        if self._open[arrival.entry]:
            self.overlaps.append(arrival)
        self._open[arrival.entry] += 1
        self.arrived.set()
        self.current += 1
        self.peak = max(self.peak, self.current)
        self._awaited_paths.discard(request.path)
        if not self._awaited_paths:
            self._held.set()
        try:
            await self._held.wait()  # still counted open: an overlap meanwhile is flagged
            await asyncio.sleep(self._rng.uniform(0.0, self.max_delay))
            response = await super().handle(request)
        finally:
            self._open[arrival.entry] -= 1
            self.current -= 1
        if 200 <= response.status < 300:
            self.applied.append(arrival)
        return response
