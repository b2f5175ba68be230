"""The SQLite backend of the store: the embedded default, one file, one writer connection."""

from syncd.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
