"""The config file's tables as pydantic models: the authority on what a config may hold.

Every config the hand checker (`syncd.configcheck`) does not accept is validated here: strictly
(an unknown key is an error, with a "did you mean" when a known key is close), completely (every
error of the file is reported at once, one line each, naming the file and the key path:
`feeds[2].interval: '5x' is not a duration`). A `[[sinks]]` table is checked against the common
sink keys plus its type's own options model (`syncd.sinks.options.SinkOptions`), which the sink
factory later receives as is. Also the config's JSON Schema. Reads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, Union

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

from syncd.configtypes import (
    _DURATION,
    DEFAULT_RETRY_SCHEDULE,
    MAX_CONFIG_DURATION_S,
    EventType,
    IgnorableField,
    SinkConfig,
    Tables,
    changes_template,
    config_duration,
    duration_or_auto,
    ip_networks,
    listen_address,
    parse_duration,
    postgres_url,
)
from syncd.errors import ConfigError
from syncd.sinks import SinkRegistry, default_registry, options_model_of
from syncd.sinks.options import HttpUrlText, NonEmptyText, SinkOptions
from syncd.validation import did_you_mean, key_path, readable_errors

Duration = Annotated[
    float,
    BeforeValidator(config_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern},
                {"type": "number", "minimum": 0, "maximum": MAX_CONFIG_DURATION_S},
            ],
            "description": 'A duration: "250ms", "30s", "15m", "2h", "1d" or seconds.',
        }
    ),
]
Positive = Annotated[int, Field(ge=1)]


# A feed's poll interval: a duration, or "auto" (from the feed's observed entry frequency).
Interval = Annotated[
    float | Literal["auto"],
    BeforeValidator(duration_or_auto),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern},
                {"type": "number", "minimum": 0, "maximum": MAX_CONFIG_DURATION_S},
                {"const": "auto"},
            ],
            "description": 'A duration ("15m", "2h", seconds) or "auto".',
        }
    ),
]


# --- the file's tables, as validated -----------------------------------------------------------


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


PostgresUrl = Annotated[NonEmptyText, AfterValidator(postgres_url)]


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


ChangesUrl = Annotated[HttpUrlText, AfterValidator(changes_template)]


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


class HttpTable(_Table):
    listen: Annotated[str, AfterValidator(listen_address)] = "127.0.0.1:8787"  # "": no server
    allowed_networks: Annotated[list[str], AfterValidator(ip_networks)] = [
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


def validated_tables(data: Mapping[str, Any], source: str, registry: SinkRegistry) -> Tables:
    """Every table of an already-decoded TOML document validated, with every problem found."""
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
    feed_tables = [
        _validate(FeedTable, t, source, where, errors)
        for where, t in _tables(data, "feeds", source, errors)
    ]
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
    return Tables(
        store, fc, d or DefaultsTable(), http, ws or WebSubTable(),
        feed_tables, sinks, from_tables, errors,
    )  # fmt: skip


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
