"""How the pull API's long-polls learn of commits (`Bell`), and the event types it filters by.
The reads themselves are the store's (`Store.reads()`, syncd.storage.protocol.Reads). This module
reads and writes nothing.
"""

from __future__ import annotations

import asyncio

EVENT_TYPES = ("entry.created", "entry.updated", "entry.deleted")


class Bell:
    """Rung by the commit path when events were committed; long-polls wait on it. Take a
    `ticket()` *before* looking at the store, then wait on it: a ring in between is not lost."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        return self._event
