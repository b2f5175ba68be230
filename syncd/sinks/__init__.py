"""Sink types by name: a registry that turns a `[[sinks]]` table into a `Sink`.

Built-in types are "webhook", "file" and "exec". More come from packages declaring a factory in
the `syncd.sinks` entry-point group, e.g. in their pyproject.toml::

    [project.entry-points."syncd.sinks"]
    nats = "syncd_nats:create_sink"

A factory is any callable `(*, name, options, context) -> Sink`. A type that wants its keys
checked like the built-ins' (unknown keys rejected with a "did you mean", every error at once,
listed by `syncd config-schema`) exposes a `TypedSinkFactory`: a `SinkOptions` model plus a build
function; the config loader validates the table against that model once and the factory receives
the validated instance. A plain callable receives the table's own keys as a mapping, plus
`timeout_s`, unchecked.

The built-in types are `BuiltinSinkFactory`s: their modules and options models (pydantic) are
imported when a sink of the type is built or validated, and a file sink is built as well from the
`CheckedOptions` syncd's own config checker gives (`syncd.configcheck`), so a pass with only file
sinks never imports pydantic. Entry points (importlib.metadata) are only read when a type is not
already known, and only the one asked for is
imported, so a broken third-party plugin cannot stop syncd from using the built-in sinks. There
is no process-wide table: the composition root builds a registry (`default_registry()`), and
`SinkRegistry.register` extends that one instance.

This module maps names to factories. It does not parse the config file or duration strings, and
it never opens a connection or a file itself (a webhook's secret file is read when it is built).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from syncd.errors import ConfigError
from syncd.paths import resolve_path
from syncd.sinks.base import BatchSink, Sink

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    import aiohttp

    from syncd.sinks.exec import ExecOptions
    from syncd.sinks.file_options import FileOptions
    from syncd.sinks.options import SinkOptions
    from syncd.sinks.webhook_options import WebhookOptions

__all__ = [
    "ENTRY_POINT_GROUP",
    "BatchSink",
    "CheckedOptions",
    "Sink",
    "SinkContext",
    "SinkFactory",
    "SinkOptions",
    "SinkRegistry",
    "TypedSinkFactory",
    "builtin_sink_factories",
    "default_registry",
    "options_model_of",
]

ENTRY_POINT_GROUP = "syncd.sinks"

Opts = TypeVar("Opts", bound="SinkOptions")


def __getattr__(name: str) -> Any:
    """`syncd.sinks.SinkOptions`, the base of plugins' options models, imported when asked for:
    it is a pydantic model, and a pass whose sinks need no model never imports pydantic."""
    if name == "SinkOptions":
        from syncd.sinks.options import SinkOptions

        return SinkOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What the composition root hands to a sink factory.

    `webhook_session` is the aiohttp session for webhook deliveries (see
    `syncd.sinks.webhook.session_for_webhooks`); sinks borrow it, the root closes it. `base_dir`
    resolves relative paths (the config file's directory; None: the working directory). `clock`
    returns aware UTC "now". `timeout_s` is this sink's attempt timeout (the common `timeout`
    key). `environ` is where secrets named by environment variable are looked up (None: the
    process environment).
    """

    webhook_session: aiohttp.ClientSession | None = None
    base_dir: Path | None = None
    clock: Callable[[], datetime] | None = None
    timeout_s: float = 15.0
    environ: Mapping[str, str] | None = field(default=None, repr=False)


class SinkFactory(Protocol):
    """Builds one sink from its options. Raises ConfigError for bad options."""

    def __call__(self, *, name: str, options: Any, context: SinkContext) -> Sink: ...


@dataclass(frozen=True)
class TypedSinkFactory(Generic[Opts]):
    """A sink type with typed options: `options_model` validates the table (at config load),
    `build` makes the sink from the validated instance. Called with a plain mapping instead (a
    test, a plugin's own code), it validates that mapping first."""

    options_model: type[Opts]
    build: Callable[[str, Opts, SinkContext], Sink]

    def __call__(self, *, name: str, options: Any, context: SinkContext) -> Sink:
        if not isinstance(options, self.options_model):
            options = _validated(self.options_model, name, options)
        return _build(self.build, name, options, context)


@dataclass(frozen=True, slots=True)
class CheckedOptions:
    """A built-in type's options as syncd's own config checker validated them
    (`syncd.configcheck`): the values its options model would hold, defaults filled in, without
    importing pydantic to build the model. Read like the model (`options.path`); the config
    (`SinkConfig.validated_options`) builds the model itself for whoever needs more."""

    factory: BuiltinSinkFactory
    values: Mapping[str, Any]

    def validated(self) -> SinkOptions:
        """The type's options model built from these values (imports pydantic)."""
        return self.factory.options_model.model_validate(dict(self.values))

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # copy and pickle probe for hooks: never an option
            raise AttributeError(key)
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None


@dataclass(frozen=True)
class BuiltinSinkFactory:
    """A built-in typed sink type: like `TypedSinkFactory`, but its options model (pydantic) is
    imported on first use, and `CheckedOptions` are built from as they are."""

    options_module: str
    options_class: str
    build: Callable[[str, Any, SinkContext], Sink]

    @property
    def options_model(self) -> type[SinkOptions]:
        model: type[SinkOptions] = getattr(
            importlib.import_module(self.options_module), self.options_class
        )
        return model

    def __call__(self, *, name: str, options: Any, context: SinkContext) -> Sink:
        if not isinstance(options, CheckedOptions):
            model = self.options_model
            if not isinstance(options, model):
                options = _validated(model, name, options)
        return _build(self.build, name, options, context)


def _validated(model: type[Opts], name: str, options: Any) -> Opts:
    """`options` (a mapping) validated as `model`; ConfigErrors naming the sink's keys."""
    from pydantic import ValidationError

    from syncd.validation import ConfigErrors, readable_errors

    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        errors = readable_errors(exc, None, model)
        raise ConfigErrors(
            [ConfigError(_bare(e), key=_key(name, e.key or "options")) for e in errors]
        ) from None


def _build(
    build: Callable[[str, Any, SinkContext], Sink], name: str, options: Any, context: SinkContext
) -> Sink:
    try:
        return build(name, options, context)
    except ConfigError as exc:
        # The sink names the offending option in `key` (and never echoes a secret); say
        # which sink.
        raise ConfigError(_bare(exc), key=_key(name, exc.key or "options")) from None


def options_model_of(factory: SinkFactory) -> type[SinkOptions] | None:
    """The options model of a typed sink type; None for a plain factory (its keys unchecked)."""
    if isinstance(factory, TypedSinkFactory | BuiltinSinkFactory):
        model: type[SinkOptions] = factory.options_model
        return model
    return None


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

    def builtin_models(self) -> dict[str, type[SinkOptions]]:
        """The options model of every registered (not entry-point) typed sink type."""
        models = {name: options_model_of(f) for name, f in self._factories.items()}
        return {name: m for name, m in sorted(models.items()) if m is not None}

    def typed_models(self) -> tuple[dict[str, type[SinkOptions]], list[str]]:
        """The options model of every typed sink type, installed plugins included (each entry
        point is loaded), and one line per plugin that failed to load, for `config-schema`."""
        problems: list[str] = []
        for ep in self._entry_points():
            if ep.name not in self._factories:
                try:
                    self.factory_for(ep.name)
                except ConfigError as exc:
                    problems.append(str(exc))
        return self.builtin_models(), problems

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

    def create(self, type_name: str, *, name: str, options: Any, context: SinkContext) -> Sink:
        """Build the sink called `name` of type `type_name` from its (validated) options."""
        try:
            factory = self.factory_for(type_name)
        except ConfigError as exc:
            raise ConfigError(str(exc), key=_key(name, "type")) from None
        return factory(name=name, options=options, context=context)

    def _entry_points(self) -> tuple[EntryPoint, ...]:
        if self._group is None:
            return ()
        from importlib.metadata import entry_points  # only for a type not built in

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


def _key(name: str, option: str) -> str:
    return f"sinks[{name!r}].{option}"


def _bare(error: ConfigError) -> str:
    """The message of a ConfigError without its "key: " prefix."""
    return str(error).removeprefix(f"{error.key}: ")


# --- built-in types -----------------------------------------------------------------------------
# Each sink module owns its options model; this only wires model and constructor together.


def _webhook(name: str, options: WebhookOptions | CheckedOptions, context: SinkContext) -> Sink:
    from syncd.sinks.webhook import WebhookSink
    from syncd.sinks.webhook_secrets import resolve_secrets

    if context.webhook_session is None:
        raise ValueError("webhook sinks need SinkContext.webhook_session")
    environ = os.environ if context.environ is None else context.environ
    secrets = resolve_secrets(options, context.base_dir, environ)
    return WebhookSink(
        name,
        options.url,
        secrets,
        context.timeout_s,
        session=context.webhook_session,
        clock=context.clock,
    )


def _file(name: str, options: FileOptions | CheckedOptions, context: SinkContext) -> Sink:
    from syncd.sinks.file import FileSink

    return FileSink(name, resolve_path(options.path, context.base_dir), fsync=options.fsync)


def _exec(name: str, options: ExecOptions, context: SinkContext) -> Sink:
    from syncd.sinks.exec import ExecSink

    return ExecSink(
        name,
        options.argv(),
        context.timeout_s,
        env=options.env,
        cwd=options.resolved_cwd(context.base_dir),
    )


def builtin_sink_factories() -> dict[str, SinkFactory]:
    """The built-in types, as a fresh mapping. Their modules and options models are imported
    when a sink of the type is built or its options are validated."""
    return {
        "webhook": BuiltinSinkFactory("syncd.sinks.webhook_options", "WebhookOptions", _webhook),
        "file": BuiltinSinkFactory("syncd.sinks.file_options", "FileOptions", _file),
        "exec": BuiltinSinkFactory("syncd.sinks.exec", "ExecOptions", _exec),
    }


def default_registry() -> SinkRegistry:
    """A fresh registry with the built-ins and the `syncd.sinks` entry points (tests use this)."""
    return SinkRegistry(builtin_sink_factories())
