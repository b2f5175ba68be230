"""Storage: the `Store` protocol the rest of syncd depends on (syncd.storage.protocol), the values
that cross it (syncd.storage.values), and its backends (syncd.storage.sqlite). Only the
composition root (syncd.app) names a backend.
"""

from syncd.storage.protocol import Outbox, Reads, Store, WebSubStore

__all__ = ["Outbox", "Reads", "Store", "WebSubStore"]
