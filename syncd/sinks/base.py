"""The Sink protocol: the one interface the dispatcher uses to hand an event to a destination.

A sink delivers; it does not decide. Retries, backoff, dead-lettering, event filtering and the
first-sync policy belong to the dispatcher, which reads the returned `SendOutcome`. Sinks hold no
outbox state and never read the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from syncd.model import OutboundEvent, SendOutcome

__all__ = ["BatchSink", "Sink"]


class Sink(Protocol):
    """A destination for events (a webhook receiver, a JSON Lines file, later a message broker).

    Contract:

    - Delivery is at-least-once. The same event may be sent again (a retry, a crash between
      sending and recording, a replay), so `send` must be safe to repeat, and receivers
      deduplicate on `event.id`. The body is `event.body`, byte for byte identical on every
      attempt: a sink may frame it (a newline, a signature header) but never re-serialises it.
    - `send` never raises for a delivery failure. Every failure (timeout, refused connection,
      non-2xx status, disk full…) is returned as `SendOutcome(ok=False, error=...)` with a short
      readable reason and `retryable`/`disable_sink`/`retry_after_s` set when the sink knows
      better than the default. Exceptions are reserved for programming errors; cancellation
      propagates as usual.
    - `send` may be called concurrently from several tasks.
    - Errors and reprs never contain secrets.
    - `aclose` releases what the sink owns (not shared resources it was given) and is idempotent.
    """

    @property
    def name(self) -> str:
        """The sink's configured name, unique within a config (`[[sinks]] name`)."""
        ...

    async def send(self, event: OutboundEvent) -> SendOutcome:
        """Make one delivery attempt of `event` and report how it went."""
        ...

    async def aclose(self) -> None:
        """Release the sink's own resources. Safe to call more than once."""
        ...


@runtime_checkable
class BatchSink(Sink, Protocol):
    """A sink that can take several events in one attempt (a file: one write, one fsync).

    The dispatcher hands such a sink up to a batch of due events, in `seq` order, as one
    in-flight attempt. The contract of `send` applies to each event of the batch, and a batch
    succeeds or fails as a whole (only events refused for good, `retryable=False`, may fail alone):
    otherwise a retried event would arrive after later ones of the same batch.
    """

    async def send_batch(self, events: Sequence[OutboundEvent]) -> Sequence[SendOutcome]:
        """One attempt for all `events`: exactly one outcome per event, in the same order."""
        ...
