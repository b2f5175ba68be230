"""The `syncd` command line: a thin click layer over the app (DESIGN §2), one module per command
group. This module builds the group, accepts the global options anywhere, and turns whatever a
command lets escape into one line and an exit code (see `syncd.cli.errors`).

A command's module is imported only when that command runs (or help lists it): `syncd sync` must
not pay for the daemon's web server, metrics or the delivery commands.
"""

from __future__ import annotations

import importlib
from typing import Any

from syncd.cli.startup import import_structlog_without_rich

import_structlog_without_rich()  # first: before anything imports structlog

import click  # noqa: E402

from syncd.cli.common import Ctx, accept_global_options, global_params  # noqa: E402
from syncd.cli.errors import reported  # noqa: E402
from syncd.logs import configure_logging  # noqa: E402

__all__ = ["main"]


# Command name -> "module:attribute", in the order help lists them.
COMMANDS = {
    "run": "syncd.cli.daemon:run",
    "sync": "syncd.cli.sync:sync",
    "status": "syncd.cli.status:status",
    "query": "syncd.cli.query:query",
    "search": "syncd.cli.search:search",
    "index": "syncd.cli.index:index_command",
    "prune": "syncd.cli.prune:prune_command",
    "vacuum": "syncd.cli.vacuum:vacuum_command",
    "datasette": "syncd.cli.browse:datasette_command",
    "check-config": "syncd.cli.configcmd:check_config",
    "config-schema": "syncd.cli.configcmd:config_schema",
    "deliveries": "syncd.cli.deliveries:deliveries",
    "sinks": "syncd.cli.sinks:sinks",
    "feeds": "syncd.cli.feeds:feeds",
    "preview": "syncd.cli.preview:preview",
    "export": "syncd.cli.export:export",
    "store": "syncd.cli.store:store",
}


class _SyncdGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            accept_global_options(command)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as e:
            verbose = isinstance(ctx.obj, Ctx) and ctx.obj.verbose
            raise reported(e, verbose=verbose) from e


@click.group(cls=_SyncdGroup, params=global_params())
@click.version_option(package_name="syncd")
@click.pass_context
def main(click_ctx: click.Context) -> None:
    """syncd keeps a SQLite mirror of Atom/RSS feeds and delivers change events to sinks."""
    ctx = click_ctx.ensure_object(Ctx)
    configure_logging(verbose=ctx.verbose)
