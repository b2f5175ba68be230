"""`syncd run`: the daemon, a thin call into `syncd.daemon` (one daemon per store: a second
one is refused, naming the process that holds it; SIGHUP reads the config file again)."""

from __future__ import annotations

import asyncio

import click

from syncd.cli.common import Ctx, pass_ctx
from syncd.daemon import run_daemon

__all__ = ["run"]


@click.command()
@pass_ctx
def run(ctx: Ctx) -> None:
    """Poll feeds on schedule and deliver events until SIGTERM or SIGINT."""
    asyncio.run(run_daemon(ctx.config(), load=ctx.reload))
