"""Load and validate syncd's TOML configuration into typed, frozen objects.

The file is validated with pydantic models: strictly (an unknown key is an error, with a "did you
mean" when a known key is close), completely (every error of the file is reported at once, one
line each, naming the file and the key path: `feeds[2].interval: '5x' is not a duration`), and
once. A `[[sinks]]` table is checked against the common sink keys plus its type's own options
model (`syncd.sinks.options.SinkOptions`), which the sink factory later receives as is.

`[[feeds_from]]` tables name OPML subscription lists (`syncd.opml`), read here too: their feeds
join the `[[feeds]]` ones (which win a clash), their folders becoming tags.

Relative paths (the store, OPML lists, sink files, secret files) are taken from the config
file's directory. This module reads the config file and the OPML lists it names, nothing else:
no secret (a webhook's secret and the HTTP
token are read by whoever needs them, with $CREDENTIALS_DIRECTORY expanded then), no database,
no network, no environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from syncd.errors import ConfigError
from syncd.redact import redacted_url
from syncd.sinks import SinkRegistry, default_registry, options_model_of
from syncd.sinks.options import (
    HttpUrlText,
    NonEmptyText,
    SinkOptions,
    credential_path,
    resolve_path,
)
from syncd.validation import ConfigErrors, did_you_mean, key_path, readable_errors

if TYPE_CHECKING:
    from syncd.opml import OpmlFeed

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


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern},
                {"type": "number", "minimum": 0},
            ],
            "description": 'A duration: "250ms", "30s", "15m", "2h", "1d" or seconds.',
        }
    ),
]
Positive = Annotated[int, Field(ge=1)]


def _duration_or_auto(value: object) -> object:
    if value == "auto":
        return value
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            f'{value!r} is not a duration (use e.g. 30s, 15m, 2h, 1d) or "auto"'
        ) from None


# A feed's poll interval: a duration, or "auto" (from the feed's observed entry frequency).
Interval = Annotated[
    float | Literal["auto"],
    BeforeValidator(_duration_or_auto),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern},
                {"type": "number", "minimum": 0},
                {"const": "auto"},
            ],
            "description": 'A duration ("15m", "2h", seconds) or "auto".',
        }
    ),
]


# --- the file's tables, as validated -----------------------------------------------------------


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


def _postgres_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{url!r} is not a postgresql:// URL")
    return url


PostgresUrl = Annotated[NonEmptyText, AfterValidator(_postgres_url)]


class StoreTable(_Table):
    path: NonEmptyText = "var/syncd.db"
    url: PostgresUrl | None = None  # set: the PostgreSQL database at this URL, not the file
    # Retention (`syncd prune`); unset keeps everything of that kind.
    keep_versions: Positive | None = None  # newest versions kept per entry
    keep_events: Duration | None = None  # events older than this, every sink done with them
    keep_deliveries: Duration | None = None  # delivered deliveries older than this
    prune_interval: Duration = 3600.0  # how often `syncd run` prunes (0: never)
    # How long a worker's feed leases outlive its last heartbeat: a killed worker's feeds are
    # taken over within this long (docs/design.md, "Many workers").
    lease_seconds: Annotated[Duration, Field(ge=1)] = 60.0


class FetchTable(_Table):
    timeout: Duration = 30.0
    max_body_bytes: Positive = 20_000_000
    per_host_rate: Annotated[float, Field(ge=0.001)] = 1.0
    concurrency: Positive = 64
    allow_private_networks: bool = False
    max_redirects: Annotated[int, Field(ge=0)] = 5
    parse_workers: Positive = 2
    contact_url: HttpUrlText | None = None  # named in the User-Agent


Changes = Literal["auto", "off"]
FeedSource = Literal["toml", "opml"]


def _changes_template(url: str) -> str:
    if "{updated_min}" not in url:
        raise ValueError(f"{url!r} lacks the {{updated_min}} placeholder")
    return url


ChangesUrl = Annotated[HttpUrlText, AfterValidator(_changes_template)]


class DefaultsTable(_Table):
    interval: Interval = 900.0
    min_interval: Duration = 300.0  # bounds of the auto interval and of what publishers ask
    max_interval: Duration = 86400.0
    max_backoff: Duration = 86400.0  # errors back off up to this, and are probed at it
    expect_update_within: Duration | None = None  # silent longer: flagged stale in status
    max_pages: Positive = 100
    full_sync_every: Duration = 86400.0
    ignore_fields: list[IgnorableField] = []
    changes: Changes = "auto"  # the GData changes query: when the feed offers it, or never


def _listen(value: str) -> str:
    if value:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:8787)")
    return value


def _networks(value: list[str]) -> list[str]:
    for n in value:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise ValueError(f"{n!r} is not an IP network") from None
    return value


class HttpTable(_Table):
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8787"  # "": no server
    allowed_networks: Annotated[list[str], AfterValidator(_networks)] = [
        "127.0.0.0/8",
        "::1/128",
    ]
    token_file: NonEmptyText | None = None
    per_feed_metrics: Annotated[int, Field(ge=0)] = 1000


class FeedOptions(_Table):
    """What a feed may set for itself; None: the [defaults] value. Shared by `[[feeds]]` and
    `[[feeds_from]]` (where it applies to every feed the list brings)."""

    interval: Interval | None = None
    min_interval: Duration | None = None
    max_interval: Duration | None = None
    max_backoff: Duration | None = None
    expect_update_within: Duration | None = None
    max_pages: Positive | None = None
    full_sync_every: Duration | None = None
    ignore_fields: list[IgnorableField] | None = None
    changes: Changes | None = None
    websub: bool | None = None  # None: [websub] enabled
    # Labels for selecting feeds (`--tag`) and OPML folders. A factory, not `= []`: pydantic
    # deep-copies a list default for every table (a million feeds, a million copies).
    tags: list[NonEmptyText] = Field(default_factory=list, json_schema_extra={"default": []})


class FeedTable(FeedOptions):
    name: NonEmptyText
    url: HttpUrlText
    changes_url: ChangesUrl | None = None  # a changes-query URL template with {updated_min}


class FeedsFromTable(FeedOptions):
    """`[[feeds_from]]`: the feeds an OPML subscription list names (path relative to the config
    file), each with these options; its folders and categories become the feeds' tags."""

    opml: NonEmptyText


class WebSubTable(_Table):
    enabled: bool = True  # subscribe to the hubs feeds advertise (needs public_url)
    public_url: HttpUrlText | None = None  # the daemon's HTTP server as hubs reach it
    lease: Duration = 864_000.0  # the hub.lease_seconds asked for (10 days)
    allow_insecure_hubs: bool = False  # subscribe (and send a secret) to http:// hubs
    websub_poll_interval: Duration = 86_400.0  # the safety-net poll of a subscribed feed
    max_pushes_per_minute: Positive = 60  # per callback; beyond it pushes are answered 429


class SinkTable(_Table):
    """The keys every `[[sinks]]` table has, whatever its type."""

    name: NonEmptyText
    type: NonEmptyText
    initial: Literal["deliver", "skip"] | None = None  # None: the type's default
    events: list[EventType] = ["entry.created", "entry.updated", "entry.deleted"]
    feeds: list[str] | None = None  # None: every feed
    timeout: Duration = 15.0
    retry_schedule: Annotated[list[Duration], Field(min_length=1)] = [
        parse_duration(d) for d in DEFAULT_RETRY_SCHEDULE
    ]
    max_in_flight: Positive = 4


class _PluginSinkTable(SinkTable):
    """A sink of a type without an options model: its own keys pass through unchecked."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class ConfigFile(_Table):
    """The whole file. `sinks` is validated table by table (each against its type's model)."""

    store: StoreTable = StoreTable()
    fetch: FetchTable = FetchTable()
    defaults: DefaultsTable = DefaultsTable()
    feeds: list[FeedTable] = []
    feeds_from: list[FeedsFromTable] = []
    sinks: list[dict[str, Any]] = []
    http: HttpTable = HttpTable()
    websub: WebSubTable = WebSubTable()


@cache
def _sink_model(kind: str, options: type[SinkOptions]) -> type[SinkTable]:
    """The common sink keys plus one type's options, strict: one model for the whole table."""
    bases: Any = (SinkTable, options)
    only_this_type: Any = Literal[kind]  # the schema's discriminator
    model: type[SinkTable] = create_model(
        f"{options.__name__.removesuffix('Options')}SinkTable",
        __base__=bases,
        type=(only_this_type, ...),
    )
    return model


# --- what the rest of syncd uses ---------------------------------------------------------------


@dataclass(frozen=True)
class StoreConfig:
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
    name: str
    type: str
    initial: str  # "deliver" or "skip": what to do with the events of a feed's first sync
    events: frozenset[str]
    feeds: frozenset[str] | None  # None: every feed
    timeout_s: float
    retry_schedule_s: tuple[float, ...]
    max_in_flight: int
    # The type's validated options (a SinkOptions; a mapping for a plugin without a model),
    # handed to the sink factory as they are.
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
        return self.options.target() if isinstance(self.options, SinkOptions) else "(plugin)"


@dataclass(frozen=True)
class Config:
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


# --- validation --------------------------------------------------------------------------------


def _sink(
    where: tuple[int | str, ...],
    table: object,
    source: str,
    registry: SinkRegistry,
    errors: list[ConfigError],
) -> SinkConfig | None:
    if not isinstance(table, dict):
        errors.append(ConfigError("must be a table", path=source, key=key_path(where)))
        return None
    kind = table.get("type")
    model: type[SinkTable] = SinkTable
    options_model: type[SinkOptions] | None = None
    if isinstance(kind, str) and kind:
        try:
            factory = registry.factory_for(kind)
        except ConfigError as e:
            hint = did_you_mean(kind, list(registry.known_types()))
            errors.append(ConfigError(f"{e}{hint}", path=source, key=key_path((*where, "type"))))
            return None
        options_model = options_model_of(factory)
        model = _sink_model(kind, options_model) if options_model else _PluginSinkTable
    parsed = _validate(model, table, source, where, errors)
    if parsed is None:
        return None
    if options_model is not None:
        options: Any = parsed  # the combined model is-a options_model
        default_initial = options_model.initial_default
    else:
        options = {**(parsed.model_extra or {}), "timeout_s": parsed.timeout}
        default_initial = "deliver"
    return SinkConfig(
        name=parsed.name,
        type=parsed.type,
        initial=parsed.initial or default_initial,
        events=frozenset(parsed.events),
        feeds=frozenset(parsed.feeds) if parsed.feeds is not None else None,
        timeout_s=parsed.timeout,
        retry_schedule_s=tuple(parsed.retry_schedule),
        max_in_flight=parsed.max_in_flight,
        options=options,
        table=dict(table),
    )


# What a feed's table holds besides its options: feeds whose tables set the same options share
# everything _feed derives from them.
_NOT_OPTIONS = frozenset({"name", "url", "tags", "changes_url", "opml"})


def _feed(
    listed: _Listed,
    d: DefaultsTable,
    source: str,
    errors: list[ConfigError],
    websub: bool = True,
    shared: dict[tuple[Any, ...], dict[str, Any] | str] | None = None,
) -> FeedConfig | None:
    """A feed with the [defaults] filled in, or None with its problem added to `errors`.
    `listed.where` is its table's key path (`feeds[2]`, `feeds_from[0]`); `listed.options` holds
    its own options (its `[[feeds]]` table, or the `[[feeds_from]]` table that listed it). With
    `shared`, feeds setting the same options reuse one derivation (a million feeds, most setting
    none)."""
    f, where, opml = listed.options, listed.where, listed.opml
    if shared is None:
        derived = _derive(f, d, websub)
    else:  # keyed by the options the table sets: most set none
        own = sorted(f.model_fields_set - _NOT_OPTIONS)
        key = tuple((k, _hashable(getattr(f, k))) for k in own)
        derived = shared.get(key) or shared.setdefault(key, _derive(f, d, websub))
    if isinstance(derived, str):
        errors.append(ConfigError(derived, path=source, key=f"{where}.max_interval"))
        return None
    return FeedConfig(
        name=listed.name,
        url=listed.url,
        changes_url=listed.changes_url,
        tags=tuple(sorted(set(listed.tags))),
        source="toml" if opml is None else "opml",
        opml=opml[0] if opml else None,
        opml_title=opml[1] if opml else None,
        **derived,
    )


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _derive(f: FeedOptions, d: DefaultsTable, websub: bool) -> dict[str, Any] | str:
    """What a feed's own options and the [defaults] make of it (FeedConfig's fields but its
    identity), or the problem with them."""

    def pick(own: Any, default: Any) -> Any:
        return default if own is None else own

    interval = pick(f.interval, d.interval)
    min_interval: float = pick(f.min_interval, d.min_interval)
    max_interval: float = pick(f.max_interval, d.max_interval)
    if max_interval < min_interval:
        return f"{max_interval:g}s is shorter than min_interval"
    return dict(
        interval_s=min_interval if interval == "auto" else interval,
        interval_auto=interval == "auto",
        min_interval_s=min_interval,
        max_interval_s=max_interval,
        max_backoff_s=pick(f.max_backoff, d.max_backoff),
        expect_update_within_s=pick(f.expect_update_within, d.expect_update_within),
        max_pages=pick(f.max_pages, d.max_pages),
        full_sync_every_s=pick(f.full_sync_every, d.full_sync_every),
        # Most feeds ignore nothing: one shared empty set (each frozenset() is a new object).
        ignore_fields=frozenset(ignored)
        if (ignored := pick(f.ignore_fields, d.ignore_fields))
        else NO_FIELDS,
        changes=pick(f.changes, d.changes),
        websub=pick(f.websub, websub),
    )


class _Listed(NamedTuple):
    """A feed as listed, before the [defaults] are filled in: where (its key path), the table
    holding its own options, and what is its own."""

    where: str
    options: FeedOptions
    name: str
    url: str
    tags: Sequence[str]
    changes_url: str | None
    opml: tuple[Path, str | None] | None


def _opml_lists(
    tables: list[tuple[int, FeedsFromTable]],
    base: Path,
    explicit: list[FeedTable],
) -> tuple[list[_Listed], list[str], list[ConfigError]]:
    """The feeds the `[[feeds_from]]` lists name, as feed tables (each list's options applied),
    with their key path and file; notes about outlines a `[[feeds]]` table overrides; errors.

    Names: an outline's `syncd:name`, else one derived from its title or URL. Names that clash
    (two outlines, or an outline and a [[feeds]] table, whose names are the same) get a suffix
    from the outline's URL, so the result does not depend on the order of the outlines."""
    if not tables:
        return [], [], []
    from syncd.opml import OpmlError, derive_name, name_with_suffix, read_opml  # lists only

    errors: list[ConfigError] = []
    notes: list[str] = []
    by_url = {f.url: f.name for f in explicit}
    found: dict[str, tuple[int, FeedsFromTable, Path, OpmlFeed]] = {}
    for j, table in tables:
        path = resolve_path(table.opml, base)
        try:
            listed = read_opml(path.read_bytes())
        except OSError as e:
            problem = f"cannot read OPML file: {e.strerror}"
            errors.append(ConfigError(f"{problem} (feeds_from[{j}].opml)", path=str(path)))
            continue
        except OpmlError as e:
            errors.append(ConfigError(f"not a usable OPML list: {e}", path=str(path)))
            continue
        for feed in listed:
            if feed.url in by_url:
                notes.append(
                    f"{path}: line {feed.line}: {feed.url} is configured by [[feeds]] as"
                    f" {by_url[feed.url]!r}; that table wins over the OPML outline"
                )
            elif feed.url not in found:  # the first list that names a URL gives its options
                found[feed.url] = (j, table, path, feed)
    wanted = {url: f.name or derive_name(f.title, url) for url, (_, _, _, f) in found.items()}
    explicit_names = {f.name for f in explicit}
    counts: dict[str, int] = {}
    for name in wanted.values():
        counts[name] = counts.get(name, 0) + 1
    out: list[_Listed] = []
    for url, (j, table, path, feed) in found.items():
        name = wanted[url]
        if name in explicit_names:
            renamed = name_with_suffix(name, url)
            notes.append(
                f"{path}: line {feed.line}: the name {name!r} belongs to a [[feeds]] table;"
                f" this outline's feed ({url}) is {renamed!r}"
            )
            name = renamed
        elif counts[name] > 1:
            name = name_with_suffix(name, url)
        tags = (*table.tags, *feed.tags)
        out.append(_Listed(f"feeds_from[{j}]", table, name, url, tags, None, (path, feed.title)))
    return out, notes, errors


M = TypeVar("M", bound=BaseModel)


def _validate(
    model: type[M],
    table: object,
    source: str,
    where: tuple[int | str, ...],
    errors: list[ConfigError],
) -> M | None:
    """`table` validated as `model`, or None with its problems added to `errors`."""
    if not isinstance(table, dict):
        errors.append(ConfigError("must be a table", path=source, key=key_path(where)))
        return None
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        errors.extend(readable_errors(exc, source, model, where))
        return None


def _tables(
    data: Mapping[str, Any], key: str, source: str, errors: list[ConfigError]
) -> list[tuple[tuple[int | str, ...], Any]]:
    items = data.get(key, [])
    if not isinstance(items, list):
        errors.append(ConfigError(f"must be an array of tables ([[{key}]])", path=source, key=key))
        return []
    return [((key, i), t) for i, t in enumerate(items)]


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str,
    base: Path,
    registry: SinkRegistry | None = None,
) -> Config:
    """Validate an already-decoded TOML document; raise ConfigErrors listing every problem.
    `base` resolves relative paths."""
    registry = registry or default_registry()
    errors: list[ConfigError] = []
    for key in data:
        if key not in ConfigFile.model_fields:
            hint = did_you_mean(key, list(ConfigFile.model_fields))
            errors.append(ConfigError(f"is not a known setting{hint}", path=source, key=key))
    store = _validate(StoreTable, data.get("store", {}), source, ("store",), errors)
    fc = _validate(FetchTable, data.get("fetch", {}), source, ("fetch",), errors)
    d = _validate(DefaultsTable, data.get("defaults", {}), source, ("defaults",), errors)
    http = _validate(HttpTable, data.get("http", {}), source, ("http",), errors)
    ws = _validate(WebSubTable, data.get("websub", {}), source, ("websub",), errors)
    d = d or DefaultsTable()
    ws = ws or WebSubTable()
    feed_tables = [
        _validate(FeedTable, t, source, where, errors)
        for where, t in _tables(data, "feeds", source, errors)
    ]
    feeds_ok = all(f is not None for f in feed_tables)
    sinks = [
        _sink(where, t, source, registry, errors)
        for where, t in _tables(data, "sinks", source, errors)
    ]
    from_tables = [
        (where[1], t)
        for where, raw in _tables(data, "feeds_from", source, errors)
        if (t := _validate(FeedsFromTable, raw, source, where, errors)) is not None
        and isinstance(where[1], int)
    ]
    listed, notes, opml_errors = _opml_lists(
        from_tables, base, [f for f in feed_tables if f is not None]
    )
    errors += opml_errors
    shared: dict[tuple[Any, ...], dict[str, Any] | str] = {}
    feeds = tuple(
        feed
        for x in [
            *(
                _Listed(f"feeds[{i}]", f, f.name, f.url, f.tags, f.changes_url, None)
                for i, f in enumerate(feed_tables)
                if f is not None
            ),
            *listed,
        ]
        if (feed := _feed(x, d, source, errors, ws.enabled, shared)) is not None
    )
    _unique(errors, source, "feeds", "name", [f.name if f else None for f in feed_tables])
    _unique(errors, source, "feeds", "url", [f.url if f else None for f in feed_tables])
    _unique(errors, source, "sinks", "name", [s.name if s else None for s in sinks])
    names = {f.name for f in feeds}
    for i, s in enumerate(sinks):
        if s is None or s.feeds is None or not feeds_ok:
            continue
        for name in sorted(s.feeds - names):
            errors.append(
                ConfigError(
                    f"{name!r} is not a configured feed", path=source, key=f"sinks[{i}].feeds"
                )
            )
    if errors or store is None or fc is None or http is None:
        raise ConfigErrors(errors)
    return Config(
        source=source,
        base_dir=base,
        store=StoreConfig(
            resolve_path(store.path, base),
            store.keep_versions,
            store.keep_events,
            store.keep_deliveries,
            store.url,
            store.prune_interval,
            store.lease_seconds,
        ),
        fetch=FetchConfig(
            timeout_s=fc.timeout,
            max_body_bytes=fc.max_body_bytes,
            per_host_rate=fc.per_host_rate,
            concurrency=fc.concurrency,
            allow_private_networks=fc.allow_private_networks,
            max_redirects=fc.max_redirects,
            parse_workers=fc.parse_workers,
            contact_url=fc.contact_url,
        ),
        feeds=feeds,
        sinks=tuple(s for s in sinks if s is not None),
        http=HttpConfig(
            listen=http.listen,
            allowed_networks=tuple(http.allowed_networks),
            token_file=http.token_file,
            per_feed_metrics=http.per_feed_metrics,
            base_dir=base,
        ),
        websub=WebSubConfig(
            enabled=ws.enabled,
            public_url=ws.public_url.rstrip("/") if ws.public_url else None,
            lease_s=ws.lease,
            allow_insecure_hubs=ws.allow_insecure_hubs,
            poll_interval_s=ws.websub_poll_interval,
            max_pushes_per_minute=ws.max_pushes_per_minute,
        ),
        notes=tuple(notes),
        defaults=_feed(_Listed("defaults", FeedOptions(), "", "", (), None, None), d, source, [])
        or FeedConfig(name="", url=""),
    )


def _unique(
    errors: list[ConfigError], source: str, table: str, label: str, values: list[str | None]
) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v is None:
            continue
        if v in seen:
            errors.append(
                ConfigError(f"duplicate {label} {v!r}", path=source, key=f"{table}[{i}].{label}")
            )
        seen.add(v)


def load_config(path: Path, *, registry: SinkRegistry | None = None) -> Config:
    """Read and validate the TOML file at `path`. Relative paths in it are taken from the file's
    own directory, so the same file means the same thing from any working directory."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror}", path=str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid TOML: {e}", path=str(path)) from None
    return parse_config(data, source=str(path), base=path.absolute().parent, registry=registry)


def config_schema(
    registry: SinkRegistry | None = None, problems: list[str] | None = None
) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the config file, sinks of every typed type included:
    the built-ins and installed plugins'. A plugin that fails to load is left out and its one
    line appended to `problems`."""
    registry = registry or default_registry()
    typed, failed = registry.typed_models()
    if problems is not None:
        problems.extend(failed)
    models = tuple(_sink_model(k, m) for k, m in typed.items())
    sink_union: Any = Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007
    schema_model = create_model(
        "SyncdConfig",
        __base__=ConfigFile,
        sinks=(list[sink_union], []),
    )
    schema: dict[str, Any] = schema_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "syncd configuration"
    return schema
