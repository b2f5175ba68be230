"""syncd's own config checker: accepts the configs it fully understands without pydantic.

The pydantic models (`syncd.configmodels`) are the authority on what a config may hold and how a
problem is worded; importing pydantic and building them is about a fifth of the CPU of a pass
that meets only 304s. This checker accepts a decoded TOML document only when every key is one it
knows and every value is exactly of the type and range the models accept; then it returns the
same tables the models would (defaults filled in, `model_fields_set` naming the keys set). On
anything else (an unknown or misspelt key, a wrong type, a value out of range, `[[feeds_from]]`
lists, a sink type other than "file" or "webhook") it declines, returning None, and the loader
asks the models, which report the problems. So it may decline what the models accept, never
accept what they refuse; a differential test (tests/test_config_check.py) holds it to giving
equal `Config`s. It reads nothing and words no error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from syncd.configtypes import (
    DEFAULT_RETRY_SCHEDULE,
    EVENT_TYPES,
    IGNORABLE_FIELDS,
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
from syncd.paths import http_url
from syncd.sinks import BuiltinSinkFactory, CheckedOptions, builtin_sink_factories
from syncd.sinks.webhook_secrets import checked_secret

__all__ = ["checked_tables"]


class _Decline(Exception):
    """A value the checker does not accept as it is: the models decide."""


Check = Callable[[Any], Any]


def _text(value: Any) -> str:
    if type(value) is not str or not value:
        raise _Decline
    return value


def _string(value: Any) -> str:
    if type(value) is not str:
        raise _Decline
    return value


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise _Decline
    return value


def _whole(minimum: int) -> Check:
    def check(value: Any) -> int:
        if type(value) is not int or value < minimum:
            raise _Decline
        return value

    return check


def _number(minimum: float) -> Check:
    def check(value: Any) -> float:
        if type(value) not in (int, float) or not value >= minimum:
            raise _Decline
        return float(value)

    return check


def _duration(minimum: float = 0.0) -> Check:
    def check(value: Any) -> float:
        try:
            seconds = config_duration(value)
        except ValueError:
            raise _Decline from None
        if not seconds >= minimum:  # NaN too
            raise _Decline
        return seconds

    return check


def _interval(value: Any) -> float | str:
    try:
        checked = duration_or_auto(value)
    except ValueError:
        raise _Decline from None
    if checked != "auto" and not (isinstance(checked, float) and checked >= 0):
        raise _Decline
    return checked


def _rule(check: Check, rule: Callable[[Any], Any]) -> Check:
    """`check`, then one of the value rules the models apply too (ValueError: decline)."""

    def checked(value: Any) -> Any:
        try:
            return rule(check(value))
        except ValueError:
            raise _Decline from None

    return checked


def _one_of(*allowed: str) -> Check:
    def check(value: Any) -> str:
        if type(value) is not str or value not in allowed:
            raise _Decline
        return value

    return check


def _list(item: Check, min_length: int = 0) -> Check:
    def check(value: Any) -> list[Any]:
        if type(value) is not list or len(value) < min_length:
            raise _Decline
        return [item(v) for v in value]

    return check


class _Checked:
    """A table as checked: its keys as attributes, defaults filled in, like the model's."""

    def __init__(self, values: dict[str, Any], given: frozenset[str]) -> None:
        self.__dict__.update(values)
        self.model_fields_set = given

    def __getattr__(self, key: str) -> Any:  # for the type checker: every key is set
        raise AttributeError(key)


# Each table's keys: (check, default). A default is a fresh value per table (lists are copied).
Spec = dict[str, tuple[Check, Any]]

_DURATION = _duration()
_HTTP_URL = _rule(_string, http_url)

STORE: Spec = {
    "path": (_text, "var/syncd.db"),
    "url": (_rule(_text, postgres_url), None),
    "keep_versions": (_whole(1), None),
    "keep_events": (_DURATION, None),
    "keep_deliveries": (_DURATION, None),
    "prune_interval": (_DURATION, 3600.0),
    "lease_seconds": (_duration(1.0), 60.0),
}
FETCH: Spec = {
    "timeout": (_DURATION, 30.0),
    "max_body_bytes": (_whole(1), 20_000_000),
    "per_host_rate": (_number(0.001), 1.0),
    "concurrency": (_whole(1), 64),
    "allow_private_networks": (_flag, False),
    "max_redirects": (_whole(0), 5),
    "parse_workers": (_whole(1), 2),
    "contact_url": (_HTTP_URL, None),
}
_IGNORABLE = _one_of(*sorted(IGNORABLE_FIELDS))
_CHANGES = _one_of("auto", "off")
DEFAULTS: Spec = {
    "interval": (_interval, 900.0),
    "min_interval": (_DURATION, 300.0),
    "max_interval": (_DURATION, 86400.0),
    "max_backoff": (_DURATION, 86400.0),
    "expect_update_within": (_DURATION, None),
    "max_pages": (_whole(1), 100),
    "full_sync_every": (_DURATION, 86400.0),
    "ignore_fields": (_list(_IGNORABLE), []),
    "changes": (_CHANGES, "auto"),
}
HTTP: Spec = {
    "listen": (_rule(_string, listen_address), "127.0.0.1:8787"),
    "allowed_networks": (_rule(_list(_string), ip_networks), ["127.0.0.0/8", "::1/128"]),
    "token_file": (_text, None),
    "per_feed_metrics": (_whole(0), 1000),
}
WEBSUB: Spec = {
    "enabled": (_flag, True),
    "public_url": (_HTTP_URL, None),
    "lease": (_DURATION, 864_000.0),
    "allow_insecure_hubs": (_flag, False),
    "websub_poll_interval": (_DURATION, 86_400.0),
    "max_pushes_per_minute": (_whole(1), 60),
}
FEED: Spec = {
    "interval": (_interval, None),
    "min_interval": (_DURATION, None),
    "max_interval": (_DURATION, None),
    "max_backoff": (_DURATION, None),
    "expect_update_within": (_DURATION, None),
    "max_pages": (_whole(1), None),
    "full_sync_every": (_DURATION, None),
    "ignore_fields": (_list(_IGNORABLE), None),
    "changes": (_CHANGES, None),
    "websub": (_flag, None),
    "tags": (_list(_text), []),
    "name": (_text, ...),  # required
    "url": (_HTTP_URL, ...),
    "changes_url": (_rule(_HTTP_URL, changes_template), None),
}
SINK: Spec = {
    "name": (_text, ...),
    "type": (_one_of("file", "webhook"), ...),
    "initial": (_one_of("deliver", "skip"), None),
    "events": (
        _list(_one_of(*sorted(EVENT_TYPES))),
        ["entry.created", "entry.updated", "entry.deleted"],
    ),
    "feeds": (_list(_string), None),
    "timeout": (_DURATION, 15.0),
    "retry_schedule": (_list(_DURATION, 1), [parse_duration(d) for d in DEFAULT_RETRY_SCHEDULE]),
    "max_in_flight": (_whole(1), 4),
}
FILE_OPTIONS: Spec = {"path": (_text, ...), "fsync": (_flag, False)}
_SECRET = _rule(_string, checked_secret)
WEBHOOK_OPTIONS: Spec = {
    "url": (_HTTP_URL, ...),
    "secret": (_SECRET, None),
    "secrets": (_list(_SECRET), []),
    "secret_env": (_string, None),
    "secret_file": (_string, None),  # or one of the others: `_some_secret`
}
# Each type the checker knows: its options and what its first sync does unless told
# (the options model's `initial_default`).
OPTIONS: dict[str, tuple[Spec, str]] = {
    "file": (FILE_OPTIONS, "deliver"),
    "webhook": (WEBHOOK_OPTIONS, "skip"),
}
TABLES = ("store", "fetch", "defaults", "feeds", "sinks", "http", "websub")


class _Shape:
    """A table's spec made ready for checking many tables (a config may list a million feeds)."""

    def __init__(self, spec: Spec) -> None:
        self.checks = {key: check for key, (check, _) in spec.items()}
        self.required = frozenset(key for key, (_, d) in spec.items() if d is ...)
        self.defaults = {k: d for k, (_, d) in spec.items() if d is not ...}
        self.lists = [k for k, d in self.defaults.items() if isinstance(d, list)]


_STORE, _FETCH, _DEFAULTS, _HTTP, _WEBSUB, _FEED, _SINK = map(
    _Shape, (STORE, FETCH, DEFAULTS, HTTP, WEBSUB, FEED, SINK)
)
_OPTIONS = {kind: (_Shape(spec), initial) for kind, (spec, initial) in OPTIONS.items()}


def _table(shape: _Shape, value: Any) -> _Checked:
    if type(value) is not dict:
        raise _Decline
    if not shape.required <= value.keys():
        raise _Decline  # a required key is missing
    values = shape.defaults.copy()
    for key in shape.lists:  # each table its own list, as the models give
        values[key] = list(values[key])
    checks = shape.checks
    for key, given in value.items():
        check = checks.get(key)
        if check is None:
            raise _Decline  # not a key of this table
        values[key] = check(given)
    return _Checked(values, frozenset(value))


def _some_secret(options: _Checked) -> None:
    """The webhook model's rule: a secret from somewhere (secret_file checked last)."""
    if options.secret_file is None and not (
        options.secret or options.secrets or options.secret_env
    ):
        raise _Decline


def _sink(value: Any, factories: Mapping[str, Any]) -> SinkConfig:
    if type(value) is not dict:
        raise _Decline
    common = _table(_SINK, {k: v for k, v in value.items() if k in SINK})
    shape, initial = _OPTIONS[common.type]
    options = _table(shape, {k: v for k, v in value.items() if k not in SINK})
    if common.type == "webhook":
        _some_secret(options)
    factory = factories[common.type]
    assert isinstance(factory, BuiltinSinkFactory)
    return SinkConfig(
        name=common.name,
        type=common.type,
        initial=common.initial or initial,
        events=frozenset(common.events),
        feeds=frozenset(common.feeds) if common.feeds is not None else None,
        timeout_s=common.timeout,
        retry_schedule_s=tuple(common.retry_schedule),
        max_in_flight=common.max_in_flight,
        options=CheckedOptions(factory, {k: getattr(options, k) for k in shape.checks}),
        table=dict(value),
    )


def _array(data: Mapping[str, Any], key: str) -> list[Any]:
    items = data.get(key, [])
    if type(items) is not list:
        raise _Decline
    return items


def checked_tables(data: Mapping[str, Any]) -> Tables | None:
    """The tables of a decoded TOML document, as the models would validate them, when the
    checker accepts every one of its values; None when it declines any."""
    if not data.keys() <= set(TABLES):
        return None
    try:
        factories = builtin_sink_factories()
        return Tables(
            store=_table(_STORE, data.get("store", {})),
            fetch=_table(_FETCH, data.get("fetch", {})),
            defaults=_table(_DEFAULTS, data.get("defaults", {})),
            http=_table(_HTTP, data.get("http", {})),
            websub=_table(_WEBSUB, data.get("websub", {})),
            feeds=[_table(_FEED, t) for t in _array(data, "feeds")],
            sinks=[_sink(t, factories) for t in _array(data, "sinks")],
            feeds_from=[],
            errors=[],
        )
    except _Decline:
        return None
