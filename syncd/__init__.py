"""syncd: a streaming feed-sync daemon (SQLite mirror of Atom/RSS feeds with change events)."""

__version__ = "0.1.0"
