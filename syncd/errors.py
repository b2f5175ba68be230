"""syncd's exceptions. Each carries the data a caller needs to decide (url, status, retryability).

Foreign exceptions (aiohttp, sqlite3, feedparser) are wrapped into these at the module boundary
where they occur; code above that boundary never catches library exceptions.
"""

from __future__ import annotations


def _rebuild(cls: type[SyncdError], message: str, state: dict[str, object]) -> SyncdError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class SyncdError(Exception):
    """Base class: every error syncd reports to an operator is one of these."""

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructor arguments do not survive default pickling, and errors cross
        # process boundaries (the parser pool).
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


class ConfigError(SyncdError):
    """The configuration is invalid. `str()` names the file and key path."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigErrors(ConfigError):
    """Every problem found in one file: `errors` holds one ConfigError per line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
        self.path = errors[0].path
        self.key = errors[0].key


class FetchError(SyncdError):
    """A page could not be fetched. `retryable` says whether trying later may help; `kind` names
    the state an operator sees (status, logs): "timeout", "dns", "tls", "connect", "forbidden"
    (403), "throttled" (429), "challenge" (a bot shield's HTML 403/503), "unavailable" (503),
    or "error" for anything else."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        retryable: bool = True,
        kind: str = "error",
    ) -> None:
        self.url = url
        self.status = status
        self.retry_after_s = retry_after_s
        self.retryable = retryable
        self.kind = kind
        super().__init__(message)


class GoneError(FetchError):
    """The publisher says the feed is gone for good (410)."""


class BlockedAddressError(FetchError):
    """A discovered URL resolved to an address that policy forbids (private, loopback, …)."""


class ParseError(SyncdError):
    """A page is not a usable feed: HTML, empty, truncated, or refused as dangerous."""

    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(message)


class StoreError(SyncdError):
    """The store refused an operation (e.g. a write through the read-only query path)."""


class NoSuchFeed(StoreError):
    """The store has no feed of that name."""


class LeaseLost(StoreError):
    """A fenced write was refused: another worker took the feed over (its lease ran out and the
    fencing token moved on), so this worker's crawl is stale and must write nothing."""

    def __init__(self, feed_id: int, token: int) -> None:
        super().__init__(f"feed {feed_id}: lease {token} was taken over by another worker")
        self.feed_id = feed_id
        self.token = token


class CursorGone(SyncdError):
    """The cursor is behind events that were pruned: the reader must restart from a later one."""

    def __init__(self, restart_from: int) -> None:
        super().__init__(
            f"events up to seq {restart_from} were pruned: restart from {restart_from}"
        )
        self.restart_from = restart_from


class SearchQueryError(SyncdError):
    """The search query is not valid syntax for the store's full-text index."""
