"""syncd's configuration as the rest of syncd uses it: typed, frozen values (`Config` and its
parts) and the duration syntax. The loader (`syncd.config`) fills them in, through the hand
checker (`syncd.configcheck`) or the pydantic models (`syncd.configmodels`). Reads nothing and
imports no validation library.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from syncd.errors import ConfigError
from syncd.paths import credential_path
from syncd.redact import redacted_url
from syncd.sinks import CheckedOptions

DEFAULT_RETRY_SCHEDULE = ("5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h")
EventType = Literal["entry.created", "entry.updated", "entry.deleted"]
EVENT_TYPES = frozenset({"entry.created", "entry.updated", "entry.deleted"})
IgnorableField = Literal[
    "title", "content", "summary", "links", "authors", "categories", "published"
]
NO_FIELDS: frozenset[str] = frozenset()
IGNORABLE_FIELDS = frozenset(
    {"title", "content", "summary", "links", "authors", "categories", "published"}
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from "250ms", "30s", "15m", "2h", "1d" or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_S[m.group(2)]
    raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 15m, 2h, 1d)")


# The longest duration a config may set. A lease, a retry or the next poll is a duration from
# now: NaN, infinity, or thousands of years make that datetime arithmetic raise at every attempt
# or poll, long after the config was accepted (a lease is 5 sink timeouts).
MAX_CONFIG_DURATION_S = 100 * 365 * 86400.0


def config_duration(value: object) -> float:
    """`parse_duration` for the config: also refuses NaN, infinity and more than 100 years."""
    return _bounded(value, parse_duration(value))


def _bounded(value: object, seconds: float) -> float:
    if not seconds <= MAX_CONFIG_DURATION_S:  # NaN compares false too
        raise ValueError(f"{value!r} is not a duration of at most 100 years")
    return seconds


def duration_or_auto(value: object) -> object:
    if value == "auto":
        return value
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(
            f'{value!r} is not a duration (use e.g. 30s, 15m, 2h, 1d) or "auto"'
        ) from None
    return _bounded(value, seconds)


def postgres_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{url!r} is not a postgresql:// URL")
    return url


def changes_template(url: str) -> str:
    if "{updated_min}" not in url:
        raise ValueError(f"{url!r} lacks the {{updated_min}} placeholder")
    return url


def listen_address(value: str) -> str:
    if value:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:8787)")
    return value


def ip_networks(value: list[str]) -> list[str]:
    for n in value:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise ValueError(f"{n!r} is not an IP network") from None
    return value


FeedSource = Literal["toml", "opml"]


@dataclass(frozen=True)
class StoreConfig:
    """The store: a SQLite file, or a PostgreSQL URL, and what retention keeps."""

    path: Path  # the SQLite file (and the daemon's lock files beside it)
    keep_versions: int | None = None
    keep_events_s: float | None = None
    keep_deliveries_s: float | None = None
    url: str | None = None  # a PostgreSQL database instead of the SQLite file
    prune_interval_s: float = 3600.0  # the daemon's periodic prune; 0: off
    lease_s: float = 60.0  # a worker's feed leases outlive its last heartbeat by this much

    @property
    def where(self) -> str:
        """The store for messages: the file, or the URL without its credentials."""
        return str(self.path) if self.url is None else redacted_url(self.url)


@dataclass(frozen=True)
class FetchConfig:
    """How feeds are fetched: limits, politeness, parse workers."""

    timeout_s: float = 30.0
    max_body_bytes: int = 20_000_000
    per_host_rate: float = 1.0
    concurrency: int = 64
    allow_private_networks: bool = False
    max_redirects: int = 5
    parse_workers: int = 2
    contact_url: str | None = None  # named in the User-Agent, so publishers can reach us


@dataclass(frozen=True)
class HttpConfig:
    """The daemon's HTTP server (health, metrics, status). `listen = ""` turns it off."""

    listen: str = "127.0.0.1:8787"
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # A bearer token for everything but /healthz and /readyz: the file as written (it may name
    # $CREDENTIALS_DIRECTORY), read by the daemon only (`token_path`).
    token_file: str | None = None
    per_feed_metrics: int = 1000  # per-feed metric labels only while there are fewer feeds
    base_dir: Path | None = None  # where a relative token_file is

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def token_path(self, environ: Mapping[str, str]) -> Path | None:
        """The token file's path, $CREDENTIALS_DIRECTORY expanded (ConfigError if unset)."""
        if self.token_file is None:
            return None
        try:
            return credential_path(self.token_file, self.base_dir, environ)
        except ConfigError as e:
            raise ConfigError(str(e), key="http.token_file") from None


@dataclass(frozen=True)
class WebSubConfig:
    """WebSub subscribing (issue 10). Without `public_url` nothing is subscribed."""

    enabled: bool = True
    public_url: str | None = None
    lease_s: float = 864_000.0
    allow_insecure_hubs: bool = False
    poll_interval_s: float = 86_400.0  # websub_poll_interval
    max_pushes_per_minute: int = 60

    @property
    def active(self) -> bool:
        return self.enabled and self.public_url is not None


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One configured feed, [defaults] filled in. Slotted: a daemon may hold a million."""

    name: str
    url: str
    interval_s: float = 900.0
    max_pages: int = 100
    full_sync_every_s: float = 86400.0
    ignore_fields: frozenset[str] = frozenset()
    changes: str = "auto"  # the GData changes query: "auto" (when the feed offers it) | "off"
    changes_url: str | None = None  # a changes-query URL template with {updated_min}
    interval_auto: bool = False  # interval = "auto": from the feed's observed entry frequency
    min_interval_s: float = 300.0  # bounds of the auto interval and of what publishers ask
    max_interval_s: float = 86400.0
    max_backoff_s: float = 86400.0  # errors back off up to this, and are probed at it
    expect_update_within_s: float | None = None  # silent longer: flagged stale in status
    websub: bool = True  # subscribe to the hub it advertises ([websub] enabled per feed)
    tags: tuple[str, ...] = ()  # sorted, distinct
    source: FeedSource = "toml"  # where it is configured: [[feeds]], or an OPML list
    opml: Path | None = None  # that OPML file
    opml_title: str | None = None  # the title its outline gives (OPML export falls back to it)


@dataclass(frozen=True)
class SinkConfig:
    """One `[[sinks]]` table: the common keys, and the type's options as validated."""

    name: str
    type: str
    initial: str  # "deliver" or "skip": what to do with the events of a feed's first sync
    events: frozenset[str]
    feeds: frozenset[str] | None  # None: every feed
    timeout_s: float
    retry_schedule_s: tuple[float, ...]
    max_in_flight: int
    # The type's validated options (a SinkOptions; CheckedOptions when syncd's own checker
    # validated a built-in type's table; a mapping for a plugin without a model), handed to the
    # sink factory as they are.
    options: Any = field(default_factory=dict, repr=False)
    # The table as written, for `sink_fingerprint` (secrets are left out there).
    table: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def wants(self, event_type: str, feed_name: str, initial: bool) -> bool:
        """Whether an event of this type, feed and initial-ness is to be delivered here."""
        if event_type not in self.events:
            return False
        if self.feeds is not None and feed_name not in self.feeds:
            return False
        return not (initial and self.initial == "skip")

    def target(self) -> str:
        """Where its events go, in a few words."""
        from syncd.sinks.options import SinkOptions  # pydantic: only for the commands that say

        options = self.options
        if isinstance(options, CheckedOptions):
            options = options.validated()
        return options.target() if isinstance(options, SinkOptions) else "(plugin)"


@dataclass(frozen=True)
class Config:
    """The whole configuration as the rest of syncd uses it."""

    source: str
    base_dir: Path  # relative paths in the config (sink files, secrets) are taken from here
    store: StoreConfig
    fetch: FetchConfig
    feeds: tuple[FeedConfig, ...]
    sinks: tuple[SinkConfig, ...]
    http: HttpConfig = HttpConfig()
    websub: WebSubConfig = WebSubConfig()
    # What the operator should know though nothing is wrong enough to refuse the file (an OPML
    # outline that a [[feeds]] table overrides): logged by every command that loads it.
    notes: tuple[str, ...] = ()
    # A feed with nothing but the [defaults] (name and url empty): what an unconfigured URL gets.
    defaults: FeedConfig = FeedConfig(name="", url="")

    def feed(self, name_or_url: str) -> FeedConfig:
        for f in self.feeds:
            if name_or_url in (f.name, f.url):
                return f
        known = ", ".join(f.name for f in self.feeds) or "none"
        raise ConfigError(f"no feed named {name_or_url!r} (configured: {known})")

    def feed_at(self, url: str) -> FeedConfig:
        """The feed configured at `url`, else one with the [defaults] (`syncd preview`)."""
        for f in self.feeds:
            if f.url == url:
                return f
        return dataclasses.replace(self.defaults, name=url, url=url)

    def tagged(self, tags: Sequence[str]) -> tuple[FeedConfig, ...]:
        """The feeds carrying any of `tags` (every feed when none is given); an unknown tag is
        a ConfigError listing the known ones."""
        known = {t for f in self.feeds for t in f.tags}
        for t in tags:
            if t not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise ConfigError(f"no feed is tagged {t!r} (tags: {listed})")
        if not tags:
            return self.feeds
        return tuple(f for f in self.feeds if set(tags) & set(f.tags))

    def sink(self, name: str) -> SinkConfig:
        for s in self.sinks:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sinks) or "none"
        raise ConfigError(f"no sink named {name!r} (configured: {known})")


class Tables(NamedTuple):
    """A config file's tables as validated, before the feeds get their [defaults]: what the
    loader (`syncd.config`) assembles a `Config` from. The tables are the pydantic models'
    instances (`syncd.configmodels`) or the hand checker's equivalents (`syncd.configcheck`):
    the same attributes, defaults filled in, `model_fields_set` naming the keys set."""

    store: Any
    fetch: Any
    defaults: Any
    http: Any
    websub: Any
    feeds: list[Any]  # [[feeds]] tables, None where one is invalid
    sinks: list[SinkConfig | None]  # None where one is invalid
    feeds_from: list[tuple[int, Any]]  # [[feeds_from]] tables by their index
    errors: list[ConfigError]
