"""`syncd sinks`: each sink's state (list, read-only) and the levers enable and disable."""

from __future__ import annotations

import click

from syncd.app import system_clock
from syncd.cli.common import Ctx, changing, configured_sink, json_option, pass_ctx, reading
from syncd.cli.output import echo_json, table
from syncd.cli.status import describe_sink_state
from syncd.status import DELIVERY_STATES, sink_status
from syncd.storage import Store

__all__ = ["sinks"]


@click.group()
def sinks() -> None:
    """Sink state: list, enable (after a 410 or a pause), disable."""


@sinks.command("list")
@json_option
@pass_ctx
def sinks_list(ctx: Ctx, as_json: bool) -> None:
    """Each configured sink: enabled, paused or disabled, and its delivery counts."""
    config = ctx.config()
    data = reading(config, lambda store: sink_status(config, store, system_clock()))
    if as_json:
        echo_json(data)
        return
    table(
        ["SINK", "TYPE", *(s.upper() for s in DELIVERY_STATES), "STATE"],
        [
            (s["name"], s["type"], *(s[k] for k in DELIVERY_STATES), describe_sink_state(s))
            for s in data
        ],
    )


@sinks.command()
@click.argument("name")
@pass_ctx
def enable(ctx: Ctx, name: str) -> None:
    """Enable NAME again (after a 410 or `sinks disable`) and end any pause: deliver now."""
    config = ctx.config()
    configured_sink(config, name)

    async def enable(store: Store) -> tuple[bool, int]:
        was_disabled = (await store.outbox.sink_row(name)).disabled_at is not None
        await store.outbox.enable_sink(name, system_clock())
        counts = (await store.outbox.sink_summaries()).get(name, {})
        return was_disabled, counts.get("pending", 0) + counts.get("failed", 0)

    was_disabled, waiting = changing(config, enable)
    verb = "enabled" if was_disabled else "was not disabled; resumed"
    click.echo(f"sink {name} {verb}: {waiting} deliveries waiting")


@sinks.command()
@click.argument("name")
@click.option("--reason", default="disabled by operator", show_default=True)
@pass_ctx
def disable(ctx: Ctx, name: str, reason: str) -> None:
    """Stop delivering to NAME. Its events keep accumulating; `sinks enable` sends them."""
    config = ctx.config()
    configured_sink(config, name)
    changing(config, lambda store: store.outbox.disable_sink(name, reason, system_clock()))
    click.echo(f"sink {name} disabled; its deliveries wait until `syncd sinks enable {name}`")
