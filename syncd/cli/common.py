"""What every command shares: the invocation's state (`Ctx`), the global options, which are
accepted before or after the subcommand (`syncd status --config x.toml`), the `--json` and
`--tag` options, and the two ways to use the store: `reading` (read-only, never creates
anything) and `changing` (writes to an existing store, never creates one), each in an event loop
of its own.

Loading the config happens here, once per invocation. No business logic lives here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog

from syncd.app import open_store, open_store_readonly
from syncd.cli.errors import UsageFailure
from syncd.config import Config, FeedConfig, SinkConfig, load_config
from syncd.errors import ConfigError, StoreError
from syncd.logs import configure_logging
from syncd.storage import Store

__all__ = [
    "Ctx",
    "accept_global_options",
    "changing",
    "configured_sink",
    "global_params",
    "json_option",
    "pass_ctx",
    "reading",
    "reading_if_present",
    "tag_option",
]

F = TypeVar("F", bound=Callable[..., Any])
log = structlog.get_logger("syncd.cli")
T = TypeVar("T")

DEFAULT_CONFIG = "config/syncd.toml"


@dataclass
class Ctx:
    """One invocation: where the config is and how loud to be. Filled in by the global options
    wherever they appear; the config is loaded on first use, after all options are parsed, so
    `--help` and usage errors never read it."""

    config_path: Path | None = None  # None: $SYNCD_CONFIG, else DEFAULT_CONFIG
    verbose: bool = False
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            self._config = self.reload()
        return self._config

    def reload(self) -> Config:
        """The config file read and validated again (the daemon's SIGHUP), its notes logged
        (an OPML outline a [[feeds]] table overrides)."""
        path = self.config_path or Path(os.environ.get("SYNCD_CONFIG") or DEFAULT_CONFIG)
        config = load_config(path)
        for note in config.notes:
            log.warning("config note", note=note)
        return config

    def feeds(self, tags: Sequence[str]) -> tuple[FeedConfig, ...]:
        """The configured feeds carrying any of `tags` (all of them without a tag); an unknown
        tag is a usage error listing the known ones."""
        try:
            return self.config().tagged(tags)
        except ConfigError as e:
            raise UsageFailure(str(e)) from None


pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _set_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(Ctx).config_path = value


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Ctx).verbose = True
        configure_logging(verbose=True)


def global_params() -> list[click.Parameter]:
    """Fresh --config and --verbose options (a click parameter belongs to one command)."""
    return [
        click.Option(
            ["--config"],
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            expose_value=False,
            callback=_set_config,
            help=f"Configuration file (TOML). [default: $SYNCD_CONFIG or {DEFAULT_CONFIG}]",
        ),
        click.Option(
            ["--verbose", "-v"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbose,
            help="Debug logging and tracebacks on errors.",
        ),
    ]


def accept_global_options(command: click.Command) -> None:
    """Let `command` and its subcommands take --config and --verbose after their names too.
    Adds them once: a command object lives as long as its module, across invocations."""
    if not any(p.name == "config" for p in command.params):
        command.params.extend(global_params())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_global_options(sub)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)


def tag_option(f: F) -> F:
    """`--tag T` (repeatable): only the feeds with one of these tags."""
    return click.option(
        "--tag",
        "tags",
        multiple=True,
        metavar="TAG",
        help="Only feeds with this tag (repeat for any of several).",
    )(f)


def reading(config: Config, use: Callable[[Store], Awaitable[T]]) -> T:
    """`use` the store, read-only, in an event loop of its own: a missing database is an error
    naming its path, not a new file."""

    async def run() -> T:
        store = await open_store_readonly(config)
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def reading_if_present(config: Config, use: Callable[[Store | None], Awaitable[T]]) -> T:
    """`use` the store read-only, or None when there is no database yet (nothing synced so
    far), in an event loop of its own."""
    if config.store.url is None and not config.store.path.is_file():

        async def without() -> T:
            return await use(None)

        return asyncio.run(without())
    return reading(config, use)


def changing(config: Config, use: Callable[[Store], Awaitable[T]]) -> T:
    """`use` the store for an operator's change (enable a sink, recover deliveries), in an event
    loop of its own: it must exist already, since there is nothing to change in a new one."""
    if config.store.url is None and not config.store.path.is_file():
        raise StoreError(
            f"no database at {str(config.store.path)!r}"
            " (check [store] path, or run `syncd sync` first)"
        )

    async def run() -> T:
        store = await open_store(config)
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def configured_sink(config: Config, name: str) -> SinkConfig:
    """The sink called `name`; a usage error (exit 2) listing the configured ones if none is."""
    try:
        return config.sink(name)
    except ConfigError as e:
        raise UsageFailure(str(e)) from None
