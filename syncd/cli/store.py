"""`syncd store copy`: move a deployment's store to PostgreSQL and back (or to another file),
every row and id kept, with a per-table count check. Needs no config: both ends are named."""

from __future__ import annotations

import click

from syncd.app import copy_stores
from syncd.cli.common import json_option
from syncd.cli.output import echo_json, table
from syncd.storage.transfer import DEFAULT_BATCH

__all__ = ["store"]


@click.group()
def store() -> None:
    """The store as a whole: copy it between SQLite and PostgreSQL."""


@store.command("copy")
@click.option(
    "--from", "source", required=True, metavar="PATH|URL", help="The store to copy (unchanged)."
)
@click.option(
    "--to", "target", required=True, metavar="PATH|URL", help="Where to (created as needed)."
)
@click.option("--replace", is_flag=True, help="Delete every row the destination holds first.")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Rows read and written at a time (memory stays flat however large the store).",
)
@json_option
def copy(source: str, target: str, replace: bool, batch: int, as_json: bool) -> None:
    """Copy every row of the store at --from (a SQLite path or a postgresql:// URL) into the
    store at --to, keeping every id (event seqs, delivery ids, pull API cursors stay valid),
    then check each table's row count. Both ends must be free of a running `syncd run`; the
    destination must be empty unless --replace. Lands whole or not at all."""
    report = copy_stores(source, target, replace=replace, batch=batch)
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(f"copied {report.source} -> {report.target}")
    table(
        ["TABLE", "SOURCE", "DESTINATION"],
        [(t.name, t.source_rows, t.target_rows) for t in report.tables],
    )
    for note in report.notes:
        click.echo(f"not copied: {note}")
    click.echo(
        f"count check passed: {sum(t.target_rows for t in report.tables)} rows"
        f" in {len(report.tables)} tables"
    )
