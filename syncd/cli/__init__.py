"""The `syncd` command line: a thin click layer over the app (DESIGN §2), one module per command
group. This module builds the group, accepts the global options anywhere, and turns whatever a
command lets escape into one line and an exit code (see `syncd.cli.errors`).
"""

from __future__ import annotations

from typing import Any

import click

from syncd.cli.common import Ctx, accept_global_options, global_params
from syncd.cli.configcmd import check_config, config_schema
from syncd.cli.daemon import run
from syncd.cli.deliveries import deliveries
from syncd.cli.errors import reported
from syncd.cli.export import export
from syncd.cli.feeds import feeds
from syncd.cli.preview import preview
from syncd.cli.prune import prune_command
from syncd.cli.query import query
from syncd.cli.search import search
from syncd.cli.sinks import sinks
from syncd.cli.status import status
from syncd.cli.sync import sync
from syncd.logs import configure_logging

__all__ = ["main"]


class _SyncdGroup(click.Group):
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


for _command in (
    run,
    sync,
    status,
    query,
    search,
    prune_command,
    check_config,
    config_schema,
    deliveries,
    sinks,
    feeds,
    preview,
    export,
):
    main.add_command(_command)
accept_global_options(main)
