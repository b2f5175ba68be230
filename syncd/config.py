"""Load and validate syncd's TOML configuration into typed, frozen objects (`syncd.configtypes`).

The file is validated strictly (an unknown key is an error, with a "did you mean" when a known
key is close), completely (every error of the file is reported at once, one line each, naming
the file and the key path: `feeds[2].interval: '5x' is not a duration`), and once. The pydantic
models of `syncd.configmodels` are the authority; a config made only of what syncd's own checker
(`syncd.configcheck`) fully understands (the common case: feeds, file sinks, plain settings) is
accepted by that checker without importing pydantic, and any config it does not accept, or that
has any problem, goes through the models, which report the problems. Both give equal `Config`s
(a differential test holds them to it).

`[[feeds_from]]` tables name OPML subscription lists (`syncd.opml`), read here too: their feeds
join the `[[feeds]]` ones (which win a clash), their folders becoming tags.

Relative paths (the store, OPML lists, sink files, secret files) are taken from the config
file's directory. This module reads the config file and the OPML lists it names, nothing else:
no secret (a webhook's secret and the HTTP
token are read by whoever needs them, with $CREDENTIALS_DIRECTORY expanded then), no database,
no network, no environment.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from syncd.configcheck import checked_tables
from syncd.configtypes import (
    DEFAULT_RETRY_SCHEDULE,
    EVENT_TYPES,
    IGNORABLE_FIELDS,
    NO_FIELDS,
    Config,
    EventType,
    FeedConfig,
    FeedSource,
    FetchConfig,
    HttpConfig,
    IgnorableField,
    SinkConfig,
    StoreConfig,
    Tables,
    WebSubConfig,
    parse_duration,
)
from syncd.errors import ConfigError, ConfigErrors
from syncd.paths import resolve_path

if TYPE_CHECKING:
    from syncd.opml import OpmlFeed
    from syncd.sinks import SinkRegistry

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "EVENT_TYPES",
    "IGNORABLE_FIELDS",
    "NO_FIELDS",
    "Config",
    "EventType",
    "FeedConfig",
    "FeedSource",
    "FetchConfig",
    "HttpConfig",
    "IgnorableField",
    "SinkConfig",
    "StoreConfig",
    "WebSubConfig",
    "config_schema",
    "load_config",
    "parse_config",
    "parse_duration",
]


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str,
    base: Path,
    registry: SinkRegistry | None = None,
) -> Config:
    """Validate an already-decoded TOML document; raise ConfigErrors listing every problem.
    `base` resolves relative paths. With the default registry, a document syncd's own checker
    accepts is not given to pydantic; one it declines, or with any problem, is."""
    if registry is None:
        checked = checked_tables(data)
        if checked is not None:
            try:
                return _assemble(checked, source, base)
            except ConfigErrors:
                pass  # the models find and word every problem, all at once
    from syncd.configmodels import validated_tables
    from syncd.sinks import default_registry

    return _assemble(validated_tables(data, source, registry or default_registry()), source, base)


def _assemble(tables: Tables, source: str, base: Path) -> Config:
    """The Config of validated tables: the OPML lists read, the [defaults] filled in, names
    checked for clashes; ConfigErrors with the tables' problems and these."""
    store, fc, d, http, ws = tables.store, tables.fetch, tables.defaults, tables.http, tables.websub
    feed_tables, sinks, errors = tables.feeds, tables.sinks, list(tables.errors)
    feeds_ok = all(f is not None for f in feed_tables)
    listed, notes, opml_errors = _opml_lists(
        tables.feeds_from, base, [f for f in feed_tables if f is not None]
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
        defaults=_feed(_Listed("defaults", _NO_OPTIONS, "", "", (), None, None), d, source, [])
        or FeedConfig(name="", url=""),
    )


_NOT_OPTIONS = frozenset({"name", "url", "tags", "changes_url", "opml"})


def _feed(
    listed: _Listed,
    d: Any,
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


def _derive(f: Any, d: Any, websub: bool) -> dict[str, Any] | str:
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
    options: Any  # a FeedOptions, or the checker's equivalent
    name: str
    url: str
    tags: Sequence[str]
    changes_url: str | None
    opml: tuple[Path, str | None] | None


def _opml_lists(
    tables: list[tuple[int, Any]],
    base: Path,
    explicit: list[Any],
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
    found: dict[str, tuple[int, Any, Path, OpmlFeed]] = {}
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


class _NoOptions:
    """The options of a feed that sets none (the [defaults] as a feed): every option None."""

    model_fields_set: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        return None


_NO_OPTIONS = _NoOptions()


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
    """A JSON Schema (draft 2020-12) of the config file (`syncd.configmodels.config_schema`)."""
    from syncd.configmodels import config_schema as schema_of_models

    return schema_of_models(registry, problems)
