"""Load and validate syncd's TOML configuration into frozen dataclasses.

Every problem is a ConfigError naming the file and the key path (`feeds[2].interval: "5x" is not a
duration`). This module reads files (the config and secret files) and the environment, and nothing
else: it opens no database and no network connection.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.errors import ConfigError

DEFAULT_RETRY_SCHEDULE = ("5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h")
EVENT_TYPES = frozenset({"entry.created", "entry.updated", "entry.deleted"})
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


@dataclass(frozen=True)
class StoreConfig:
    path: Path


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
    token_file: Path | None = None  # a bearer token for everything but /healthz and /readyz
    per_feed_metrics: int = 1000  # per-feed metric labels only while there are fewer feeds

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class FeedConfig:
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
    secrets: tuple[str, ...] = field(default=(), repr=False)
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the raw table

    def wants(self, event_type: str, feed_name: str, initial: bool) -> bool:
        """Whether an event of this type, feed and initial-ness is to be delivered here."""
        if event_type not in self.events:
            return False
        if self.feeds is not None and feed_name not in self.feeds:
            return False
        return not (initial and self.initial == "skip")


@dataclass(frozen=True)
class Config:
    source: str
    base_dir: Path  # relative paths in the config (sink files, secrets) are taken from here
    store: StoreConfig
    fetch: FetchConfig
    feeds: tuple[FeedConfig, ...]
    sinks: tuple[SinkConfig, ...]
    http: HttpConfig = HttpConfig()

    def feed(self, name_or_url: str) -> FeedConfig:
        for f in self.feeds:
            if name_or_url in (f.name, f.url):
                return f
        known = ", ".join(f.name for f in self.feeds) or "none"
        raise ConfigError(f"no feed named {name_or_url!r} (configured: {known})")


class _Reader:
    """Typed access to one TOML table, producing ConfigErrors with the full key path."""

    def __init__(self, table: Mapping[str, Any], where: str, source: str) -> None:
        self.table = table
        self.where = where
        self.source = source
        self.seen: set[str] = set()

    def err(self, key: str, message: str) -> ConfigError:
        path = f"{self.where}.{key}" if self.where else key
        return ConfigError(message, path=self.source, key=path)

    def raw(self, key: str, default: Any) -> Any:
        self.seen.add(key)
        return self.table.get(key, default)

    def string(self, key: str, default: str | None = None) -> str:
        v = self.raw(key, default)
        if v is None:
            raise self.err(key, "is required")
        if not isinstance(v, str) or not v.strip():
            raise self.err(key, f"{v!r} is not a non-empty string")
        return v

    def optional_string(self, key: str) -> str | None:
        v = self.raw(key, None)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.err(key, f"{v!r} is not a string")
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise self.err(key, f"{v!r} is not true or false")
        return v

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < minimum:
            raise self.err(key, f"{v!r} is not a number >= {minimum:g}")
        return float(v)

    def integer(self, key: str, default: int, *, minimum: int = 1) -> int:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.err(key, f"{v!r} is not a whole number >= {minimum}")
        return v

    def duration(self, key: str, default: object) -> float:
        v = self.raw(key, default)
        try:
            return parse_duration(v)
        except ValueError as e:
            raise self.err(key, str(e)) from None

    def string_list(self, key: str, default: list[str] | None) -> list[str] | None:
        v = self.raw(key, default)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.err(key, f"{v!r} is not a list of strings")
        return list(v)

    def check_unknown(self, known_extra: frozenset[str] = frozenset()) -> None:
        unknown = set(self.table) - self.seen - known_extra
        if unknown:
            key = sorted(unknown)[0]
            raise self.err(key, "is not a known setting")


def _url(r: _Reader, key: str) -> str:
    url = r.string(key)
    if not re.match(r"^https?://[^/\s]+", url):
        raise r.err(key, f"{url!r} is not an http(s) URL")
    return url


def _feed_defaults(r: _Reader) -> dict[str, Any]:
    return {
        "interval": r.raw("interval", "15m"),
        "max_pages": r.raw("max_pages", 100),
        "full_sync_every": r.raw("full_sync_every", "24h"),
        "ignore_fields": r.raw("ignore_fields", []),
        "changes": r.raw("changes", "auto"),
        "min_interval": r.raw("min_interval", "5m"),
        "max_interval": r.raw("max_interval", "24h"),
        "max_backoff": r.raw("max_backoff", "24h"),
        "expect_update_within": r.raw("expect_update_within", None),
    }


def _interval(r: _Reader, default: object) -> tuple[float | None, bool]:
    """`interval`: a duration, or "auto" (None seconds)."""
    if r.raw("interval", default) == "auto":
        return None, True
    return r.duration("interval", default), False


def _optional_duration(r: _Reader, key: str, default: object) -> float | None:
    return None if r.raw(key, default) is None else r.duration(key, default)


def _feed(r: _Reader, defaults: Mapping[str, Any]) -> FeedConfig:
    ignore = r.string_list("ignore_fields", defaults["ignore_fields"]) or []
    bad = sorted(set(ignore) - IGNORABLE_FIELDS)
    if bad:
        raise r.err("ignore_fields", f"{bad[0]!r} is not one of {sorted(IGNORABLE_FIELDS)}")
    interval_s, auto = _interval(r, defaults["interval"])
    min_interval = r.duration("min_interval", defaults["min_interval"])
    max_interval = r.duration("max_interval", defaults["max_interval"])
    if max_interval < min_interval:
        raise r.err("max_interval", f"{max_interval:g}s is shorter than min_interval")
    feed = FeedConfig(
        name=r.string("name"),
        url=_url(r, "url"),
        interval_s=min_interval if interval_s is None else interval_s,
        interval_auto=auto,
        min_interval_s=min_interval,
        max_interval_s=max_interval,
        max_backoff_s=r.duration("max_backoff", defaults["max_backoff"]),
        expect_update_within_s=_optional_duration(
            r, "expect_update_within", defaults["expect_update_within"]
        ),
        max_pages=r.integer("max_pages", defaults["max_pages"]),
        full_sync_every_s=r.duration("full_sync_every", defaults["full_sync_every"]),
        ignore_fields=frozenset(ignore),
        changes=_choice(r, "changes", defaults["changes"], ("auto", "off")),
        changes_url=_changes_url(r),
    )
    r.check_unknown()
    return feed


def _choice(r: _Reader, key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = r.string(key, default)
    if value not in allowed:
        raise r.err(key, f"{value!r} is not one of {', '.join(repr(a) for a in allowed)}")
    return value


def _changes_url(r: _Reader) -> str | None:
    if r.raw("changes_url", None) is None:
        return None
    url = _url(r, "changes_url")
    if "{updated_min}" not in url:
        raise r.err("changes_url", f"{url!r} lacks the {{updated_min}} placeholder")
    return url


def _secrets(r: _Reader, environ: Mapping[str, str], base: Path) -> tuple[str, ...]:
    """Secrets from `secret`/`secrets` inline, `secret_file`, or `secret_env`."""
    found: list[str] = []
    inline = r.raw("secret", None)
    if inline is not None:
        found.append(r.string("secret"))
    many = r.string_list("secrets", None)
    if many:
        found.extend(many)
    secret_file = r.optional_string("secret_file")
    if secret_file:
        p = _secret_path(r, "secret_file", environ, base)
        try:
            found.extend(line.strip() for line in p.read_text().splitlines() if line.strip())
        except OSError as e:
            raise r.err("secret_file", f"cannot read {str(p)!r}: {e.strerror}") from None
    env_name = r.optional_string("secret_env")
    if env_name:
        if env_name not in environ:
            raise r.err("secret_env", f"environment variable {env_name} is not set")
        found.append(environ[env_name].strip())
    for s in found:
        if not s.startswith("whsec_"):
            raise r.err("secret", 'a webhook secret must be "whsec_" followed by base64')
    return tuple(found)


def _secret_path(r: _Reader, key: str, environ: Mapping[str, str], base: Path) -> Path:
    """A secret file's path. `$CREDENTIALS_DIRECTORY` (or `${...}`) in it is the directory
    where systemd put the unit's credentials (LoadCredential=); it is not set outside systemd."""
    value = r.string(key)
    for form in ("${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"):
        if form in value:
            creds = environ.get("CREDENTIALS_DIRECTORY")
            if not creds:
                raise r.err(
                    key,
                    "uses $CREDENTIALS_DIRECTORY, which is not set (systemd sets it"
                    " for a unit with LoadCredential=)",
                )
            value = value.replace(form, creds)
    p = Path(value)
    return p if p.is_absolute() else base / p


def _http(r: _Reader, environ: Mapping[str, str], base: Path) -> HttpConfig:
    listen = r.raw("listen", HttpConfig.listen)
    if not isinstance(listen, str):
        raise r.err("listen", f"{listen!r} is not a string")
    if listen:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise r.err("listen", f"{listen!r} is not host:port (e.g. 127.0.0.1:8787)")
    networks = r.string_list("allowed_networks", list(HttpConfig.allowed_networks)) or []
    for n in networks:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise r.err("allowed_networks", f"{n!r} is not an IP network") from None
    token_file = _secret_path(r, "token_file", environ, base) if r.raw("token_file", None) else None
    http = HttpConfig(
        listen=listen,
        allowed_networks=tuple(networks),
        token_file=token_file,
        per_feed_metrics=r.integer("per_feed_metrics", HttpConfig.per_feed_metrics, minimum=0),
    )
    r.check_unknown()
    return http


def _sink(r: _Reader, environ: Mapping[str, str], base: Path) -> SinkConfig:
    name = r.string("name")
    kind = r.string("type")
    default_initial = "skip" if kind == "webhook" else "deliver"
    initial = r.string("initial", default_initial)
    if initial not in ("deliver", "skip"):
        raise r.err("initial", f'{initial!r} is not "deliver" or "skip"')
    events = r.string_list("events", sorted(EVENT_TYPES)) or []
    bad = sorted(set(events) - EVENT_TYPES)
    if bad:
        raise r.err("events", f"{bad[0]!r} is not one of {sorted(EVENT_TYPES)}")
    feeds = r.string_list("feeds", None)
    schedule_raw = r.raw("retry_schedule", list(DEFAULT_RETRY_SCHEDULE))
    if not isinstance(schedule_raw, list) or not schedule_raw:
        raise r.err("retry_schedule", "is not a non-empty list of durations")
    schedule: list[float] = []
    for i, item in enumerate(schedule_raw):
        try:
            schedule.append(parse_duration(item))
        except ValueError as e:
            raise r.err(f"retry_schedule[{i}]", str(e)) from None
    secrets = _secrets(r, environ, base) if kind == "webhook" else ()
    if kind == "webhook":
        _url(r, "url")
        if not secrets:
            raise r.err("secret_file", "a webhook sink needs a secret (secret_file, secret_env)")
    if kind == "file":
        r.string("path")
    sink = SinkConfig(
        name=name,
        type=kind,
        initial=initial,
        events=frozenset(events),
        feeds=frozenset(feeds) if feeds is not None else None,
        timeout_s=r.duration("timeout", "15s"),
        retry_schedule_s=tuple(schedule),
        max_in_flight=r.integer("max_in_flight", 4),
        secrets=secrets,
        options=dict(r.table),
    )
    # Sink types own their remaining keys (url, path, fsync, …); the registry validates them.
    return sink


def parse_config(
    data: Mapping[str, Any], *, source: str, environ: Mapping[str, str], base: Path
) -> Config:
    """Validate an already-decoded TOML document. `base` resolves relative paths."""
    top = _Reader(data, "", source)
    store_r = _Reader(_table(top, "store"), "store", source)
    store_path = Path(store_r.string("path", "var/syncd.db"))
    store_r.check_unknown()

    fr = _Reader(_table(top, "fetch"), "fetch", source)
    fetch = FetchConfig(
        timeout_s=fr.duration("timeout", "30s"),
        max_body_bytes=fr.integer("max_body_bytes", 20_000_000),
        per_host_rate=fr.number("per_host_rate", 1.0, minimum=0.001),
        concurrency=fr.integer("concurrency", 64),
        allow_private_networks=fr.boolean("allow_private_networks", False),
        max_redirects=fr.integer("max_redirects", 5, minimum=0),
        parse_workers=fr.integer("parse_workers", 2),
        contact_url=_url(fr, "contact_url") if fr.raw("contact_url", None) is not None else None,
    )
    fr.check_unknown()

    dr = _Reader(_table(top, "defaults"), "defaults", source)
    defaults = _feed_defaults(dr)
    _interval(dr, defaults["interval"])
    for key in ("full_sync_every", "min_interval", "max_interval", "max_backoff"):
        dr.duration(key, defaults[key])
    _optional_duration(dr, "expect_update_within", defaults["expect_update_within"])
    dr.integer("max_pages", defaults["max_pages"])
    _choice(dr, "changes", defaults["changes"], ("auto", "off"))
    dr.check_unknown()

    feeds_raw = top.raw("feeds", [])
    if not isinstance(feeds_raw, list):
        raise top.err("feeds", "must be an array of tables ([[feeds]])")
    feeds = tuple(
        _feed(_Reader(_as_table(top, f"feeds[{i}]", t), f"feeds[{i}]", source), defaults)
        for i, t in enumerate(feeds_raw)
    )
    _unique(top, "feeds", [f.name for f in feeds], [f.url for f in feeds])

    sinks_raw = top.raw("sinks", [])
    if not isinstance(sinks_raw, list):
        raise top.err("sinks", "must be an array of tables ([[sinks]])")
    sinks = tuple(
        _sink(_Reader(_as_table(top, f"sinks[{i}]", t), f"sinks[{i}]", source), environ, base)
        for i, t in enumerate(sinks_raw)
    )
    _unique(top, "sinks", [s.name for s in sinks], [])
    names = {f.name for f in feeds}
    for i, s in enumerate(sinks):
        for f in sorted((s.feeds or frozenset()) - names):
            raise ConfigError(
                f"{f!r} is not a configured feed", path=source, key=f"sinks[{i}].feeds"
            )
    http = _http(_Reader(_table(top, "http"), "http", source), environ, base)
    top.check_unknown()
    if not store_path.is_absolute():
        store_path = base / store_path
    return Config(
        source=source,
        base_dir=base,
        store=StoreConfig(store_path),
        fetch=fetch,
        feeds=feeds,
        sinks=sinks,
        http=http,
    )


def _table(r: _Reader, key: str) -> Mapping[str, Any]:
    v = r.raw(key, {})
    if not isinstance(v, dict):
        raise r.err(key, "must be a table")
    return v


def _as_table(r: _Reader, where: str, v: object) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError("must be a table", path=r.source, key=where)
    return v


def _unique(r: _Reader, key: str, names: list[str], urls: list[str]) -> None:
    for label, values in (("name", names), ("url", urls)):
        seen: set[str] = set()
        for i, v in enumerate(values):
            if v in seen:
                raise ConfigError(
                    f"duplicate {label} {v!r}", path=r.source, key=f"{key}[{i}].{label}"
                )
            seen.add(v)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at `path`. Relative paths are taken from the working
    directory, as an operator running `syncd` from the project directory expects."""
    env = os.environ if environ is None else environ
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror}", path=str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid TOML: {e}", path=str(path)) from None
    return parse_config(data, source=str(path), environ=env, base=Path.cwd())
