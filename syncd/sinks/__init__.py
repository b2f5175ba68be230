"""Sink types by name: a registry that turns a `[[sinks]]` table into a `Sink`.

Built-in types are "webhook", "file" and "exec". More come from packages declaring a factory in
the `syncd.sinks` entry-point group, e.g. in their pyproject.toml::

    [project.entry-points."syncd.sinks"]
    nats = "syncd_nats:create_sink"

Entry points are only read when a type is not already known, and only the one asked for is
imported, so a broken third-party plugin cannot stop syncd from using the built-in sinks. There
is no process-wide table: the composition root builds a registry (`default_registry()`), and
`SinkRegistry.register` extends that one instance.

This module maps names to factories and reads the few options each built-in needs. It does not
parse the config file, resolve secret files or parse duration strings (the config loader hands
factories a resolved table), and it never opens a connection or a file itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from syncd.errors import ConfigError
from syncd.sinks.base import BatchSink, Sink

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "ENTRY_POINT_GROUP",
    "BatchSink",
    "Sink",
    "SinkContext",
    "SinkFactory",
    "SinkRegistry",
    "builtin_sink_factories",
    "default_registry",
]

ENTRY_POINT_GROUP = "syncd.sinks"


@dataclass(frozen=True, slots=True)
class SinkContext:
    """Shared resources the composition root hands to every sink factory.

    `webhook_session` is the aiohttp session for webhook deliveries (see
    `syncd.sinks.webhook.session_for_webhooks`); sinks borrow it, the root closes it. `base_dir`
    resolves relative file paths (None: the working directory). `clock` returns aware UTC "now".
    """

    webhook_session: aiohttp.ClientSession | None = None
    base_dir: Path | None = None
    clock: Callable[[], datetime] | None = None


class SinkFactory(Protocol):
    """Builds one sink from its config table. Raises ConfigError for bad options."""

    def __call__(self, *, name: str, options: Mapping[str, Any], context: SinkContext) -> Sink: ...


class SinkRegistry:
    """Sink type name → factory, with lazy lookup in an entry-point group for unknown names."""

    def __init__(
        self,
        factories: Mapping[str, SinkFactory] | None = None,
        *,
        entry_point_group: str | None = ENTRY_POINT_GROUP,
    ) -> None:
        self._factories: dict[str, SinkFactory] = dict(factories or {})
        self._group = entry_point_group

    def register(self, type_name: str, factory: SinkFactory, *, replace: bool = False) -> None:
        """Add a sink type. Registering a taken name is an error unless `replace=True`."""
        if not type_name or not type_name.strip():
            raise ValueError("a sink type name must not be empty")
        if not callable(factory):
            raise TypeError(f"the factory for sink type {type_name!r} is not callable")
        if type_name in self._factories and not replace:
            raise ValueError(f"sink type {type_name!r} is already registered")
        self._factories[type_name] = factory

    def known_types(self) -> tuple[str, ...]:
        """Every type name that would resolve: registered ones and installed entry points."""
        return tuple(sorted(set(self._factories) | {ep.name for ep in self._entry_points()}))

    def factory_for(self, type_name: str) -> SinkFactory:
        """The factory for `type_name`, loading its entry point on first use."""
        factory = self._factories.get(type_name)
        if factory is not None:
            return factory
        for ep in self._entry_points():
            if ep.name == type_name:
                factory = _load_entry_point(ep)
                self._factories[type_name] = factory  # load once
                return factory
        known = ", ".join(self.known_types()) or "(none)"
        raise ConfigError(f"unknown sink type {type_name!r}; known types: {known}")

    def create(
        self, type_name: str, *, name: str, options: Mapping[str, Any], context: SinkContext
    ) -> Sink:
        """Build the sink called `name` of type `type_name` from its config table."""
        try:
            factory = self.factory_for(type_name)
        except ConfigError as exc:
            raise ConfigError(str(exc), key=_key(name, "type")) from None
        return factory(name=name, options=options, context=context)

    def _entry_points(self) -> tuple[EntryPoint, ...]:
        if self._group is None:
            return ()
        return tuple(entry_points(group=self._group))


def _load_entry_point(ep: EntryPoint) -> SinkFactory:
    try:
        loaded = ep.load()
    except Exception as exc:
        # Any import-time failure of a plugin is a configuration problem to report, not a crash.
        raise ConfigError(
            f"sink type {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(loaded):
        raise ConfigError(f"sink type {ep.name!r} ({ep.value}) is not callable")
    factory: SinkFactory = loaded
    return factory


# --- built-in factories -------------------------------------------------------------------------
# The sink modules are imported inside the factories so that `import syncd.sinks` stays cheap and
# free of import cycles (the modules import syncd.sinks.base).


def _key(name: str, option: str) -> str:
    return f"sinks[{name!r}].{option}"


def _seconds(name: str, options: Mapping[str, Any], default: float) -> float:
    # `timeout_s` (resolved by the config loader) wins over a raw `timeout`, which may still be the
    # unparsed duration string of the TOML table.
    for option in ("timeout_s", "timeout"):
        value = options.get(option)
        if value is None:
            continue
        if isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"expected seconds as a number (got {type(value).__name__})",
                key=_key(name, option),
            )
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"must be > 0 seconds (got {value})", key=_key(name, option))
        return float(value)
    return default


def _webhook_factory(*, name: str, options: Mapping[str, Any], context: SinkContext) -> Sink:
    from syncd.sinks.webhook import WebhookSink

    url = options.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError("a webhook sink needs a url", key=_key(name, "url"))
    # `secrets` (the loader's resolved list: inline, secret_file, env; several during a key
    # rotation) and/or an inline `secret`. Every distinct one signs each request; duplicates are
    # dropped, since a caller may merge resolved secrets over a raw table that still has `secret`.
    secrets: list[str] = []
    many = options.get("secrets", ())
    if not isinstance(many, list | tuple) or not all(isinstance(s, str) for s in many):
        raise ConfigError("must be a list of strings", key=_key(name, "secrets"))
    secrets.extend(many)
    one = options.get("secret")
    if one is not None:
        if not isinstance(one, str):
            raise ConfigError("must be a string", key=_key(name, "secret"))
        secrets.append(one)
    secrets = list(dict.fromkeys(secrets))
    if context.webhook_session is None:
        raise ValueError("webhook sinks need SinkContext.webhook_session")
    timeout_s = _seconds(name, options, 15.0)
    try:
        return WebhookSink(
            name, url, secrets, timeout_s, session=context.webhook_session, clock=context.clock
        )
    except ConfigError as exc:
        # The sink names the offending option in `key` (and never echoes a secret); say which sink.
        option = exc.key or "url"
        raise ConfigError(str(exc).removeprefix(f"{option}: "), key=_key(name, option)) from None


def _file_factory(*, name: str, options: Mapping[str, Any], context: SinkContext) -> Sink:
    from syncd.sinks.file import FileSink

    raw = options.get("path")
    if not isinstance(raw, str | Path) or not str(raw):
        raise ConfigError("a file sink needs a path", key=_key(name, "path"))
    path = Path(raw).expanduser()
    if not path.is_absolute() and context.base_dir is not None:
        path = context.base_dir / path
    fsync = options.get("fsync", False)
    if not isinstance(fsync, bool):
        raise ConfigError("must be true or false", key=_key(name, "fsync"))
    return FileSink(name, path, fsync=fsync)


def _exec_factory(*, name: str, options: Mapping[str, Any], context: SinkContext) -> Sink:
    from syncd.sinks.exec import ExecSink, parse_command

    if "command" not in options:
        raise ConfigError("an exec sink needs a command", key=_key(name, "command"))
    env = options.get("env", {})
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and "\0" not in v for k, v in env.items()
    ):
        raise ConfigError("must be a table of strings", key=_key(name, "env"))
    cwd_raw = options.get("cwd")
    cwd: Path | None = None
    if cwd_raw is not None:
        if not isinstance(cwd_raw, str | Path) or not str(cwd_raw):
            raise ConfigError("must be a directory path", key=_key(name, "cwd"))
        cwd = Path(cwd_raw).expanduser()
        if not cwd.is_absolute() and context.base_dir is not None:
            cwd = context.base_dir / cwd
    timeout_s = _seconds(name, options, 15.0)
    try:
        argv = parse_command(options["command"])
        return ExecSink(name, argv, timeout_s, env=env, cwd=cwd)
    except ConfigError as exc:
        option = exc.key or "command"
        raise ConfigError(str(exc).removeprefix(f"{option}: "), key=_key(name, option)) from None


def builtin_sink_factories() -> dict[str, SinkFactory]:
    """The built-in types, as a fresh mapping."""
    return {"webhook": _webhook_factory, "file": _file_factory, "exec": _exec_factory}


def default_registry() -> SinkRegistry:
    """A fresh registry with the built-ins and the `syncd.sinks` entry points (tests use this)."""
    return SinkRegistry(builtin_sink_factories())
