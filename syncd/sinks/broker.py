"""What the broker sinks (nats, redis) share: reading an event's routing keys, timing, and
turning a client exception into one readable, secret-free line.

Only pure helpers live here; no connection is opened and nothing is retried.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from syncd.model import OutboundEvent
from syncd.redact import redacted_url

__all__ = ["Routing", "describe_error", "ms_since", "routing_of"]

_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Routing:
    """The parts of an event a broker routes on: its feed's name and its type."""

    feed: str
    type: str


def routing_of(event: OutboundEvent) -> Routing | None:
    """The feed name (`data.feed.name` of the envelope) and type; None if the body lacks them.

    The body is parsed only to read these keys; it is sent as it is, byte for byte."""
    try:
        envelope = json.loads(event.body)
        feed = envelope["data"]["feed"]["name"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(feed, str) or not feed:
        return None
    return Routing(feed, event.type)


def describe_error(exc: BaseException, *, secret: str | None = None) -> str:
    """`Type: message` on one short printable line, with `secret` (a URL with a password) cut."""
    text = str(exc)
    if secret:
        text = text.replace(secret, redacted_url(secret))
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    flat = " ".join("".join(c if c.isprintable() else " " for c in line).split())
    return flat if len(flat) <= _LIMIT else flat[: _LIMIT - 1] + "…"


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
