"""The `syncd deliveries` and `syncd sinks` commands: the operator's view of the outbox and the
levers to fix it (DESIGN §2): list, show, retry, recover, replay; list, enable, disable.

A thin click layer like `syncd.cli`: the outbox holds the SQL, the dispatcher makes attempts. These
commands are safe next to a running daemon: they write through the store's short transactions,
and the daemon notices enable/disable/recover/replay within a second (`sinks.resume_requested_at`).
Nothing here holds business logic or talks to a receiver except `deliveries retry`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from syncd.app import build_dispatcher, system_clock
from syncd.config import Config, SinkConfig, parse_duration
from syncd.outbox import DeliveryInfo
from syncd.store import Store
from syncd.timestamps import parse_timestamp

if TYPE_CHECKING:
    from syncd.cli import Ctx

__all__ = ["deliveries", "parse_since", "sink_status", "sinks"]

STATES = ("pending", "failed", "dead", "delivered")


def _cli() -> Any:
    # syncd.cli imports this module at its end to register the groups; importing it back lazily
    # keeps either import order working.
    import syncd.cli

    return syncd.cli


def _usage(ctx: Ctx, message: str) -> None:
    _cli()._fail(ctx, message, 2)


def _sink_config(ctx: Ctx, config: Config, name: str) -> SinkConfig:
    for s in config.sinks:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in config.sinks) or "none"
    _usage(ctx, f"no sink named {name!r} (configured: {known})")
    raise AssertionError("unreachable")


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration ago ("90m", "2d") or an ISO-8601 instant or date (UTC if no zone)."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    when = parse_timestamp(text)
    if when is None:
        raise ValueError(f"{text!r} is neither a duration (2h, 3d) nor a date (2026-11-28T07:00Z)")
    return when


def _short_time(text: str | None) -> str:
    """ISO text as a table shows it: to the second, in UTC."""
    if not text:
        return "-"
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(text: str | None, width: int) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _open_store(config: Config) -> Store:
    return Store.open(config.store.path)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def sink_status(config: Config, store: Store, now: datetime) -> list[dict[str, Any]]:
    """Per configured sink: its delivery counts and whether it is enabled, paused or disabled;
    then any sink no longer configured that still has deliveries waiting."""
    counts = store.outbox.sink_summaries()
    out = []
    for s in config.sinks:
        row = store.outbox.sink_row(s.name)
        paused = row.paused_until is not None and row.paused_until > now
        out.append(
            {
                "name": s.name,
                "type": s.type,
                "disabled": row.disabled_at is not None,
                "disabled_at": _iso(row.disabled_at),
                "disabled_reason": row.disabled_reason,
                "paused_until": _iso(row.paused_until) if paused else None,
                "pause_reason": row.pause_reason if paused else None,
                **{k: counts.get(s.name, {}).get(k, 0) for k in STATES},
            }
        )
    # A sink removed from the config keeps its queue in the store: show it, so that nothing
    # waits unseen (add it back to deliver, or it stays as history).
    configured = {s.name for s in config.sinks}
    for name in sorted(set(counts) - configured):
        waiting = {k: counts[name].get(k, 0) for k in STATES}
        if waiting["pending"] or waiting["failed"]:
            out.append(
                {
                    "name": name,
                    "type": "not configured",
                    "disabled": False,
                    "disabled_at": None,
                    "disabled_reason": None,
                    "paused_until": None,
                    "pause_reason": None,
                    "unconfigured": True,
                    **waiting,
                }
            )
    return out


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def describe_sink_state(s: Mapping[str, Any]) -> str:
    """One phrase for a sink's state, as `status` and `sinks list` print it."""
    if s.get("unconfigured"):
        return "removed from the config: its queue waits, undelivered"
    if s["disabled"]:
        return f"DISABLED: {s['disabled_reason'] or 'by operator'} (syncd sinks enable {s['name']})"
    if s["paused_until"]:
        return f"paused until {_short_time(s['paused_until'])}: {_short(s['pause_reason'], 80)}"
    return "enabled"


# ---------------------------------------------------------------------- syncd deliveries


@click.group()
def deliveries() -> None:
    """The delivery log: list, inspect and re-send deliveries."""


@deliveries.command("list")
@click.option("--sink", help="Only this sink's deliveries.")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only deliveries in this state (repeatable).",
)
@click.option("--event", help="Only deliveries of events whose id starts with this.")
@click.option("--limit", default=100, show_default=True, help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(
    ctx: Ctx,
    sink: str | None,
    states: tuple[str, ...],
    event: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List deliveries, newest first."""
    cli = _cli()
    config = cli._guard(ctx, ctx.config)
    if sink is not None:
        _sink_config(ctx, config, sink)

    def collect() -> list[DeliveryInfo]:
        store = _open_store(config)
        try:
            return store.outbox.list_deliveries(
                sink=sink, states=states, event=event, limit=limit or None
            )
        finally:
            store.close()

    rows: list[DeliveryInfo] = cli._guard(ctx, collect)
    if as_json:
        _echo_json([dataclasses.asdict(r) for r in rows])
        return
    if not rows:
        click.echo("no deliveries")
        return
    cols = [
        "ID",
        "SINK",
        "SEQ",
        "EVENT",
        "TYPE",
        "STATE",
        "TRIES",
        "STATUS",
        "LAST TRY",
        "NEXT TRY",
    ]
    cells = [
        (
            r.id,
            r.sink,
            r.event_seq,
            _short(r.event_id, 16),
            r.event_type,
            r.state,
            r.attempts,
            r.last_status if r.last_status is not None else "",
            _short_time(r.last_attempt_at),
            _short_time(r.next_attempt_at) if r.state in ("pending", "failed") else "-",
            _short(r.last_error, 60),
        )
        for r in rows
    ]
    cli._table([*cols, "ERROR"], cells)


@deliveries.command()
@click.argument("delivery_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show(ctx: Ctx, delivery_id: int, as_json: bool) -> None:
    """One delivery, its event and every attempt (time, status, latency, error)."""
    cli = _cli()
    config = cli._guard(ctx, ctx.config)

    def collect() -> dict[str, Any] | None:
        store = _open_store(config)
        try:
            info = store.outbox.delivery(delivery_id)
            if info is None:
                return None
            due = store.outbox.load(delivery_id)
            assert due is not None
            return {
                "delivery": dataclasses.asdict(info),
                "attempts": [dataclasses.asdict(a) for a in store.outbox.attempts(delivery_id)],
                "event": json.loads(due.event.body),
            }
        finally:
            store.close()

    data = cli._guard(ctx, collect)
    if data is None:
        cli._fail(ctx, f"no delivery with id {delivery_id}", 1)
    if as_json:
        _echo_json(data)
        return
    d = data["delivery"]
    for key in ("id", "sink", "state", "attempts", "event_seq", "event_id", "event_type"):
        click.echo(f"{key + ':':<17} {d[key]}")
    for key in ("created_at", "last_attempt_at", "next_attempt_at", "delivered_at"):
        if key != "next_attempt_at" or d["state"] in ("pending", "failed"):
            click.echo(f"{key + ':':<17} {_short_time(d[key])}")
    if d["last_error"]:
        click.echo(f"{'last_error:':<17} {d['last_error']}")
    click.echo("")
    if not data["attempts"]:
        click.echo("no attempts yet")
        return
    cli._table(
        ["ATTEMPTED", "RESULT", "STATUS", "MS", "ERROR"],
        [
            (
                _short_time(a["attempted_at"]),
                a["result"] or "",
                a["status"] if a["status"] is not None else "",
                f"{a['latency_ms']:.0f}" if a["latency_ms"] is not None else "",
                _short(a["error"], 100),
            )
            for a in data["attempts"]
        ],
    )


@deliveries.command()
@click.argument("delivery_id", metavar="ID", type=int)
@click.pass_obj
def retry(ctx: Ctx, delivery_id: int) -> None:
    """Send one delivery again now, whatever its state or schedule (exit 1 if it fails)."""
    cli = _cli()
    config = cli._guard(ctx, ctx.config)

    async def attempt() -> tuple[str, bool]:
        async with build_dispatcher(config) as dispatcher:
            due, outcome, state = await dispatcher.send_now(delivery_id)
            row = dispatcher.outbox.sink_row(due.sink)
            where = f"delivery {due.id} (sink {due.sink}, seq {due.event.seq}, {due.event.id})"
            if outcome.ok:
                status = f"HTTP {outcome.status}, " if outcome.status else ""
                line = f"{where}: delivered ({status}{outcome.latency_ms:.0f} ms)"
            else:
                line = f"{where}: {state}: {outcome.error}"
            if row.disabled_at is not None:
                line += f"\nnote: sink {due.sink} is disabled; `syncd sinks enable {due.sink}`"
            return line, outcome.ok

    line, ok = cli._guard(ctx, lambda: cli._run(attempt()))
    click.echo(line)
    if not ok:
        raise SystemExit(1)


@deliveries.command()
@click.argument("sink")
@click.option(
    "--since",
    metavar="TIME",
    help="Only deliveries created since: a duration ago (2h, 3d) or a date/time (UTC).",
)
@click.pass_obj
def recover(ctx: Ctx, sink: str, since: str | None) -> None:
    """Queue every failed or dead delivery of SINK again, due now, with a fresh schedule."""
    cli = _cli()
    config = cli._guard(ctx, ctx.config)
    _sink_config(ctx, config, sink)
    now = system_clock()
    since_dt = None
    if since is not None:
        try:
            since_dt = parse_since(since, now)
        except ValueError as e:
            _usage(ctx, f"--since: {e}")

    def run() -> tuple[int, bool]:
        store = _open_store(config)
        try:
            count = store.outbox.recover(sink, now, since_dt)
            return count, store.outbox.sink_row(sink).disabled_at is not None
        finally:
            store.close()

    count, disabled = cli._guard(ctx, run)
    click.echo(f"recovered {count} deliveries of sink {sink}: due now")
    _hint_delivery(sink, disabled)


@deliveries.command()
@click.argument("sink")
@click.option("--from-seq", type=click.IntRange(min=1), required=True, help="First event seq.")
@click.option("--to-seq", type=click.IntRange(min=1), help="Last event seq (default: the latest).")
@click.pass_obj
def replay(ctx: Ctx, sink: str, from_seq: int, to_seq: int | None) -> None:
    """Send the events from seq N on to SINK again, delivered or not.

    Events the sink never had a delivery for (a first sync's backfill it skipped, events from
    before it was added) are included; its `events` and `feeds` filters still apply.
    """
    cli = _cli()
    config = cli._guard(ctx, ctx.config)
    sc = _sink_config(ctx, config, sink)
    if to_seq is not None and to_seq < from_seq:
        _usage(ctx, f"--to-seq {to_seq} is before --from-seq {from_seq}")

    def run() -> tuple[int, int, bool]:
        store = _open_store(config)
        try:
            counts = store.outbox.replay(
                sink,
                system_clock(),
                from_seq=from_seq,
                to_seq=to_seq,
                types=sc.events,
                feeds=sc.feeds,
            )
            disabled = store.outbox.sink_row(sink).disabled_at is not None
            return counts.created, counts.requeued, disabled
        finally:
            store.close()

    created, requeued, disabled = cli._guard(ctx, run)
    click.echo(
        f"replay: {created + requeued} events queued for sink {sink}"
        f" ({created} new deliveries, {requeued} re-queued)"
    )
    _hint_delivery(sink, disabled)


def _hint_delivery(sink: str, disabled: bool) -> None:
    if disabled:
        click.echo(f"note: sink {sink} is disabled; `syncd sinks enable {sink}` to send them")
    else:
        click.echo("a running `syncd run` sends them now; otherwise the next `syncd sync` does")


# ---------------------------------------------------------------------- syncd sinks


@click.group()
def sinks() -> None:
    """Sink state: list, enable (after a 410 or a pause), disable."""


@sinks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def sinks_list(ctx: Ctx, as_json: bool) -> None:
    """Each configured sink: enabled, paused or disabled, and its delivery counts."""
    cli = _cli()
    config = cli._guard(ctx, ctx.config)

    def collect() -> list[dict[str, Any]]:
        store = _open_store(config)
        try:
            return sink_status(config, store, system_clock())
        finally:
            store.close()

    data = cli._guard(ctx, collect)
    if as_json:
        _echo_json(data)
        return
    cli._table(
        ["SINK", "TYPE", *(s.upper() for s in STATES), "STATE"],
        [(s["name"], s["type"], *(s[k] for k in STATES), describe_sink_state(s)) for s in data],
    )


@sinks.command()
@click.argument("name")
@click.pass_obj
def enable(ctx: Ctx, name: str) -> None:
    """Enable NAME again (after a 410 or `sinks disable`) and end any pause: deliver now."""
    cli = _cli()
    config = cli._guard(ctx, ctx.config)
    _sink_config(ctx, config, name)

    def run() -> tuple[bool, int]:
        store = _open_store(config)
        try:
            was_disabled = store.outbox.sink_row(name).disabled_at is not None
            store.outbox.enable_sink(name, system_clock())
            counts = store.outbox.sink_summaries().get(name, {})
            return was_disabled, counts.get("pending", 0) + counts.get("failed", 0)
        finally:
            store.close()

    was_disabled, waiting = cli._guard(ctx, run)
    verb = "enabled" if was_disabled else "was not disabled; resumed"
    click.echo(f"sink {name} {verb}: {waiting} deliveries waiting")


@sinks.command()
@click.argument("name")
@click.option("--reason", default="disabled by operator", show_default=True)
@click.pass_obj
def disable(ctx: Ctx, name: str, reason: str) -> None:
    """Stop delivering to NAME. Its events keep accumulating; `sinks enable` sends them."""
    cli = _cli()
    config = cli._guard(ctx, ctx.config)
    _sink_config(ctx, config, name)

    def run() -> None:
        store = _open_store(config)
        try:
            store.outbox.disable_sink(name, reason, system_clock())
        finally:
            store.close()

    cli._guard(ctx, run)
    click.echo(f"sink {name} disabled; its deliveries wait until `syncd sinks enable {name}`")
