"""`syncd deliveries`: the operator's view of the outbox and the levers to fix it (DESIGN §2):
list, show (read-only: no secret needed, no database created), retry, recover, replay.

Safe next to a running daemon: these write through the store's short transactions, and the
daemon notices recover/replay within a second (`sinks.resume_requested_at`). Only `retry` talks
to a receiver; the outbox holds the SQL, the dispatcher makes attempts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import click

from syncd.app import build_dispatcher, system_clock
from syncd.cli.common import Ctx, changing, configured_sink, json_option, pass_ctx, reading
from syncd.cli.errors import CliError, UsageFailure
from syncd.cli.output import echo_json, short, short_time, table
from syncd.since import parse_since
from syncd.status import DELIVERY_STATES
from syncd.storage import Store
from syncd.storage.reports import ReplayCounts

__all__ = ["deliveries"]


@click.group()
def deliveries() -> None:
    """The delivery log: list, inspect and re-send deliveries."""


@deliveries.command("list")
@click.option("--sink", help="Only this sink's deliveries.")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(DELIVERY_STATES),
    help="Only deliveries in this state (repeatable).",
)
@click.option("--event", help="Only deliveries of events whose id starts with this.")
@click.option("--limit", default=100, show_default=True, help="At most this many (0: all).")
@json_option
@pass_ctx
def list_(
    ctx: Ctx,
    sink: str | None,
    states: tuple[str, ...],
    event: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List deliveries, newest first."""
    config = ctx.config()
    if sink is not None:
        configured_sink(config, sink)
    rows = reading(
        config,
        lambda store: store.outbox.list_deliveries(
            sink=sink, states=states, event=event, limit=limit or None
        ),
    )
    if as_json:
        echo_json([dataclasses.asdict(r) for r in rows])
        return
    if not rows:
        click.echo("no deliveries")
        return
    cols = ["ID", "SINK", "SEQ", "EVENT", "TYPE", "STATE", "TRIES", "STATUS", "LAST TRY"]
    cells = [
        (
            r.id,
            r.sink,
            r.event_seq,
            short(r.event_id, 16),
            r.event_type,
            r.state,
            r.attempts,
            r.last_status if r.last_status is not None else "",
            short_time(r.last_attempt_at),
            short_time(r.next_attempt_at) if r.state in ("pending", "failed") else "-",
            short(r.last_error, 60),
        )
        for r in rows
    ]
    table([*cols, "NEXT TRY", "ERROR"], cells)


@deliveries.command()
@click.argument("delivery_id", metavar="ID", type=int)
@json_option
@pass_ctx
def show(ctx: Ctx, delivery_id: int, as_json: bool) -> None:
    """One delivery, its event and every attempt (time, status, latency, error)."""

    async def look(store: Store) -> dict[str, Any]:
        info = await store.outbox.delivery(delivery_id)
        if info is None:
            raise CliError(f"no delivery with id {delivery_id}")
        due = await store.outbox.load(delivery_id)
        assert due is not None
        attempts = await store.outbox.attempts(delivery_id)
        return {
            "delivery": dataclasses.asdict(info),
            "attempts": [dataclasses.asdict(a) for a in attempts],
            "event": json.loads(due.event.body),
        }

    data = reading(ctx.config(), look)
    if as_json:
        echo_json(data)
        return
    d = data["delivery"]
    for key in ("id", "sink", "state", "attempts", "event_seq", "event_id", "event_type"):
        click.echo(f"{key + ':':<17} {d[key]}")
    for key in ("created_at", "last_attempt_at", "next_attempt_at", "delivered_at"):
        if key != "next_attempt_at" or d["state"] in ("pending", "failed"):
            click.echo(f"{key + ':':<17} {short_time(d[key])}")
    if d["last_error"]:
        click.echo(f"{'last_error:':<17} {d['last_error']}")
    click.echo("")
    if not data["attempts"]:
        click.echo("no attempts yet")
        return
    table(
        ["ATTEMPTED", "RESULT", "STATUS", "MS", "ERROR"],
        [
            (
                short_time(a["attempted_at"]),
                a["result"] or "",
                a["status"] if a["status"] is not None else "",
                f"{a['latency_ms']:.0f}" if a["latency_ms"] is not None else "",
                short(a["error"], 100),
            )
            for a in data["attempts"]
        ],
    )


@deliveries.command()
@click.argument("delivery_id", metavar="ID", type=int)
@pass_ctx
def retry(ctx: Ctx, delivery_id: int) -> None:
    """Send one delivery again now, whatever its state or schedule (exit 1 if it fails)."""
    config = ctx.config()

    async def attempt() -> tuple[str, bool]:
        async with build_dispatcher(config) as dispatcher:
            due, outcome, state = await dispatcher.send_now(delivery_id)
            row = await dispatcher.outbox.sink_row(due.sink)
            where = f"delivery {due.id} (sink {due.sink}, seq {due.event.seq}, {due.event.id})"
            if outcome.ok:
                status = f"HTTP {outcome.status}, " if outcome.status else ""
                line = f"{where}: delivered ({status}{outcome.latency_ms:.0f} ms)"
            else:
                line = f"{where}: {state}: {outcome.error}"
            if row.disabled_at is not None:
                line += f"\nnote: sink {due.sink} is disabled; `syncd sinks enable {due.sink}`"
            return line, outcome.ok

    line, ok = asyncio.run(attempt())
    click.echo(line)
    if not ok:
        raise click.exceptions.Exit(1)


@deliveries.command()
@click.argument("sink")
@click.option(
    "--since",
    metavar="TIME",
    help="Only deliveries created since: a duration ago (2h, 3d) or a date/time (UTC).",
)
@pass_ctx
def recover(ctx: Ctx, sink: str, since: str | None) -> None:
    """Queue every failed or dead delivery of SINK again, due now, with a fresh schedule."""
    config = ctx.config()
    configured_sink(config, sink)
    now = system_clock()
    since_dt = None
    if since is not None:
        try:
            since_dt = parse_since(since, now)
        except ValueError as e:
            raise UsageFailure(f"--since: {e}") from None

    async def recover(store: Store) -> tuple[int, bool]:
        count = await store.outbox.recover(sink, now, since_dt)
        return count, (await store.outbox.sink_row(sink)).disabled_at is not None

    count, disabled = changing(config, recover)
    click.echo(f"recovered {count} deliveries of sink {sink}: due now")
    _hint_delivery(sink, disabled)


@deliveries.command()
@click.argument("sink")
@click.option("--from-seq", type=click.IntRange(min=1), required=True, help="First event seq.")
@click.option("--to-seq", type=click.IntRange(min=1), help="Last event seq (default: the latest).")
@pass_ctx
def replay(ctx: Ctx, sink: str, from_seq: int, to_seq: int | None) -> None:
    """Send the events from seq N on to SINK again, delivered or not.

    Events the sink never had a delivery for (a first sync's backfill it skipped, events from
    before it was added) are included; its `events` and `feeds` filters still apply.
    """
    config = ctx.config()
    sc = configured_sink(config, sink)
    if to_seq is not None and to_seq < from_seq:
        raise UsageFailure(f"--to-seq {to_seq} is before --from-seq {from_seq}")

    async def replay(store: Store) -> tuple[ReplayCounts, bool]:
        counts = await store.outbox.replay(
            sink, system_clock(), from_seq=from_seq, to_seq=to_seq, types=sc.events, feeds=sc.feeds
        )
        return counts, (await store.outbox.sink_row(sink)).disabled_at is not None

    counts, disabled = changing(config, replay)
    click.echo(
        f"replay: {counts.created + counts.requeued} events queued for sink {sink}"
        f" ({counts.created} new deliveries, {counts.requeued} re-queued)"
    )
    _hint_delivery(sink, disabled)


def _hint_delivery(sink: str, disabled: bool) -> None:
    if disabled:
        click.echo(f"note: sink {sink} is disabled; `syncd sinks enable {sink}` to send them")
    else:
        click.echo("a running `syncd run` sends them now; otherwise the next `syncd sync` does")
