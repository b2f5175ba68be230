"""`syncd index`: bring the search index up to date with the store now, and `caught_up`, what
every command that reads the index runs first."""

from __future__ import annotations

import time

import click
import structlog

from syncd.cli.common import Ctx, changing, json_option, pass_ctx
from syncd.cli.output import echo_json
from syncd.errors import StoreError
from syncd.indexer import catch_up
from syncd.storage import Store

__all__ = ["caught_up", "index_command"]

log = structlog.get_logger("syncd.cli")


@click.command("index")
@json_option
@pass_ctx
def index_command(ctx: Ctx, as_json: bool) -> None:
    """Index the entries waiting for the search index (`syncd sync` leaves them; a running
    `syncd run` indexes them in the background). Safe beside a running daemon."""
    started = time.perf_counter()
    indexed = changing(ctx.config(), catch_up)
    seconds = time.perf_counter() - started
    if as_json:
        echo_json({"indexed": indexed, "seconds": round(seconds, 3)})
        return
    click.echo(f"{indexed} entries indexed in {seconds:.1f}s")


async def caught_up(store: Store) -> int:
    """Catch the index up before reading it; if the store cannot be written here (a read-only
    file), say how far behind the results are instead, and read on. The entries left behind."""
    try:
        await catch_up(store)
        return 0
    except StoreError as e:
        behind = await store.search_pending()
        if behind:
            log.warning(
                "search index not up to date; results may miss recent changes",
                pending=behind,
                error=str(e),
            )
        return behind
