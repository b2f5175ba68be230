"""`syncd vacuum [--incremental]`: give the space pruned rows left back (SQLite) or make it
reusable and refresh statistics (PostgreSQL).

A full SQLite VACUUM rewrites the file under the write lock, which would stall a running
daemon's writes for the whole rewrite: it is refused (exit 3) while a `syncd run` holds the
store, and holds the daemon lock itself meanwhile, so no daemon starts under it. The
incremental kind works in short steps and runs beside the daemon.
"""

from __future__ import annotations

import click

from syncd.cli.common import Ctx, changing, json_option, pass_ctx
from syncd.cli.errors import StoreBusy
from syncd.cli.output import echo_json
from syncd.daemonlock import DaemonLock
from syncd.errors import StoreError

__all__ = ["vacuum_command"]


@click.command("vacuum")
@click.option(
    "--incremental",
    is_flag=True,
    help="SQLite: hand free pages back in short steps; safe while `syncd run` writes.",
)
@json_option
@pass_ctx
def vacuum_command(ctx: Ctx, incremental: bool, as_json: bool) -> None:
    """Return the space pruned rows left to the file system (SQLite VACUUM), or make it
    reusable and refresh statistics (PostgreSQL VACUUM (ANALYZE), beside running daemons)."""
    config = ctx.config()
    lock = None
    if config.store.url is None and not incremental:
        lock = DaemonLock.for_store(config.store.path)
        try:
            lock.acquire()
        except StoreError as e:
            raise StoreBusy(
                f"{e}; a full VACUUM would block its writes until done: stop it first, or run"
                " `syncd vacuum --incremental` beside it"
            ) from None
    try:
        report = changing(config, lambda store: store.vacuum(incremental=incremental))
    finally:
        if lock is not None:
            lock.release()
    if as_json:
        echo_json({**report.as_dict(), "incremental": incremental})
        return
    mb = 1e6
    click.echo(
        f"store {report.before_bytes / mb:.2f} MB -> {report.after_bytes / mb:.2f} MB"
        f" ({(report.before_bytes - report.after_bytes) / mb:.2f} MB given back)"
    )
    if report.note:
        click.echo(report.note)
