"""`syncd query`: read-only SQL over the store, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys

import click

from syncd.cli.common import Ctx, pass_ctx, reading
from syncd.cli.output import table

__all__ = ["query"]


@click.command()
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@pass_ctx
def query(ctx: Ctx, sql: str, fmt: str) -> None:
    """Run read-only SQL over the store (the database is opened read-only)."""
    cols, rows = reading(ctx.config(), lambda store: store.query_readonly(sql))
    if fmt == "json":
        click.echo(json.dumps([dict(zip(cols, r, strict=True)) for r in rows], indent=2))
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    else:
        table(cols, rows)
