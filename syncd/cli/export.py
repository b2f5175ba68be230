"""`syncd export --feed NAME --format atom|jsonl`: a feed's mirrored history as one document,
streamed from the read-only store to stdout or a file (written whole or not at all)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import click

from syncd.app import system_clock
from syncd.cli.common import Ctx, pass_ctx, reading
from syncd.cli.errors import UsageFailure
from syncd.errors import NoSuchFeed
from syncd.storage import Store

__all__ = ["export"]


@click.command()
@click.option("--feed", "name", required=True, metavar="NAME", help="The feed (as stored).")
@click.option("--format", "fmt", type=click.Choice(["atom", "jsonl"]), required=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file (replaced only once complete) instead of stdout.",
)
@click.option(
    "--include-deleted",
    is_flag=True,
    help="Deleted entries too (Atom: RFC 6721 tombstones; JSON Lines: with deleted_at).",
)
@pass_ctx
def export(ctx: Ctx, name: str, fmt: str, output: Path | None, include_deleted: bool) -> None:
    """Export every entry syncd holds of a feed, all pages merged, each in its newest version:
    Atom 1.0 (which syncd reads back to the same entries) or JSON Lines (one entry a line)."""
    from syncd.export import write_atom, write_jsonl  # lxml: loaded by this command only

    config = ctx.config()

    async def export(store: Store) -> int:
        try:
            head = await store.feed_head(name)
        except NoSuchFeed as e:
            raise UsageFailure(str(e)) from None
        entries = store.feed_history(name, include_deleted=include_deleted)
        with _destination(output) as out:
            if fmt == "atom":
                return await write_atom(out, head, entries, now=system_clock())
            return await write_jsonl(out, head, entries)

    n = reading(config, export)
    if output is not None:
        click.echo(f"{n} entries of {name} written to {output}", err=True)


@contextmanager
def _destination(output: Path | None) -> Iterator[BinaryIO]:
    """stdout, or a temporary file beside `output` renamed over it once the export is whole."""
    if output is None:
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # The reader stopped (`| head`): not a failure. Python's own flush at exit would
            # meet the closed pipe again, so stdout goes nowhere from here on.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
