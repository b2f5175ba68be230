"""`syncd datasette`: the store in Datasette, read-only, with syncd's metadata."""

from __future__ import annotations

import importlib.util
import json
import os

import click

from syncd import datasette
from syncd.cli.common import Ctx, pass_ctx, reading
from syncd.cli.errors import CliError
from syncd.cli.index import caught_up
from syncd.storage import Store

__all__ = ["datasette_command"]


@click.command(
    "datasette",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("datasette_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def datasette_command(ctx: Ctx, datasette_args: tuple[str, ...]) -> None:
    """Browse the store in Datasette (read-only, safe while `syncd run` writes), with titles,
    column descriptions, search and canned queries. Other arguments go to `datasette serve`,
    e.g. `syncd datasette --port 8001 --open`. Needs `pip install 'syncd[datasette]'`."""
    if importlib.util.find_spec("datasette") is None:
        raise CliError("Datasette is not installed here: pip install 'syncd[datasette]'")
    config = ctx.config()
    if config.store.url is not None:
        raise CliError("syncd datasette opens SQLite stores; this config uses [store] url")
    path = config.store.path

    async def exists(store: Store) -> None:
        # Opened: the store exists and is migrated (else an error names the file). Datasette
        # searches the index as it stands: it takes in what waits now; a running daemon keeps
        # it current after that, else `syncd index` does.
        await caught_up(store)

    reading(config, exists)
    # The metadata goes through a pipe: nothing is written beside the store, and it needs no
    # clean-up after the exec. It is far below a pipe's capacity, so writing cannot block.
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w", encoding="utf-8") as pipe:
        json.dump(datasette.metadata(path.stem), pipe, ensure_ascii=False)
    os.set_inheritable(read_end, True)
    args = datasette.argv(path, f"/dev/fd/{read_end}", datasette_args)
    os.execv(args[0], args)
