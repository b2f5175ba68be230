"""The daemon's lifecycle (`syncd run`): signals, systemd notifications, the HTTP server, and the
app's poll-and-deliver loop between a start and a stop log line.

Order at start: the store is opened (migrations run), the sinks are bound, the HTTP server is
bound, then READY=1; the watchdog is fed from this event loop from then on, so a blocked loop
stops feeding it. SIGTERM/SIGINT: STOPPING=1, then the app stops (deliveries in flight finish
within their grace) and the server closes. What to sync and deliver is the app's business; this
module only starts, watches and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from syncd import __version__
from syncd.app import App, build_app
from syncd.config import Config, HttpConfig
from syncd.errors import ConfigError, SyncdError
from syncd.health import Health, LoopMonitor
from syncd.metrics import Metrics
from syncd.notify import Notifier
from syncd.overview import Overview, take
from syncd.status import status_report
from syncd.web.server import Access, WebServer, build_web_app
from syncd.web.services import Services

log = structlog.get_logger("syncd.daemon")

STATUS_EVERY_S = 10.0  # how often systemd's STATUS= line is refreshed


async def run_daemon(
    config: Config,
    *,
    load: Callable[[], Config] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT; on SIGHUP, take the config `load()` returns (if given).
    Raises SyncdError (one line) if it cannot start."""
    env = os.environ if environ is None else environ
    notifier = Notifier(env)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_stop(sig: signal.Signals) -> None:
        if not stop.is_set():
            notifier.stopping()
            log.info("stopping", signal=sig.name)
            stop.set()

    reload = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    try:
        await _serve(config, notifier, stop, Reloads(reload, load), env)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        notifier.close()
    log.info("syncd stopped")


@dataclass
class Reloads:
    requested: asyncio.Event  # set by SIGHUP
    load: Callable[[], Config] | None  # None: SIGHUP only says that reloading is not possible


async def _serve(
    config: Config,
    notifier: Notifier,
    stop: asyncio.Event,
    reloads: Reloads,
    env: Mapping[str, str],
) -> None:
    token = read_token(config.http, config.source, env)
    metrics = Metrics(per_feed_limit=config.http.per_feed_metrics)
    monitor = LoopMonitor()
    async with build_app(config, metrics=metrics, exclusive=True) as app, _tasks() as start:

        async def overview() -> Overview:
            return await take(app.store, app.clock(), [s.name for s in app.config.sinks])

        metrics.read_store(overview)
        health = Health(app.store.probe, monitor, store_open=True, scheduled=app.scheduled)
        start(monitor.run())
        summary = functools.partial(_summary, app)

        async def status() -> dict[str, Any]:
            return await status_report(app.config, app.store, app.clock())

        services = Services(
            health,
            metrics,
            overview,
            status,
            app.store.latest_events,
            summary,
            reader=app.store.reads(),
            bell=app.bell,
            websub=app.websub,
            index=app.indexer.catch_up if app.indexer is not None else None,
        )
        server = _start_server(config.http, services, token)
        address = await server.start() if server is not None else None
        try:
            log.info(
                "syncd started",
                version=__version__,
                pid=os.getpid(),
                store=config.store.where,
                feeds=len(config.feeds),
                sinks=len(config.sinks),
                http=f"http://{address}" if address else "off",
                systemd=notifier.enabled,
            )
            notifier.ready(await summary())
            if notifier.watchdog_s is not None:
                start(_watchdog(notifier, notifier.watchdog_s))
            if notifier.enabled:
                start(_report_status(notifier, summary))
            start(_reload_on_request(app, reloads, notifier, summary))
            await app.run(stop)
        finally:
            if server is not None:
                await server.stop()


def _start_server(http: HttpConfig, services: Services, token: str | None) -> WebServer | None:
    if not http.listen:
        return None
    host, port = http.host_port
    return WebServer(build_web_app(services, Access.of(http.allowed_networks, token)), host, port)


def read_token(http: HttpConfig, source: str, env: Mapping[str, str]) -> str | None:
    """The bearer token from `http.token_file`; one ConfigError line if it cannot be read."""
    try:
        path = http.token_path(env)
    except ConfigError as e:
        raise ConfigError(str(e).removeprefix(f"{e.key}: "), path=source, key=e.key) from None
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as e:
        raise ConfigError(
            f"cannot read {str(path)!r}: {e.strerror}", path=source, key="http.token_file"
        ) from None
    if not token:
        raise ConfigError(f"{str(path)!r} is empty", path=source, key="http.token_file")
    return token


async def _summary(app: App) -> str:
    """systemd's one-line STATUS=: what `systemctl status syncd` shows. Refreshed every 10 s:
    from aggregates, not the overview's row per feed (which costs seconds at a million feeds)."""
    now = app.clock()
    try:
        schedule = await app.store.schedule_summary(now)
        queues = await app.store.queue_figures([s.name for s in app.config.sinks])
    except SyncdError as e:
        return f"store not readable: {e}"
    pending = sum(int(r["pending"] or 0) for r in queues)
    return (
        f"{len(app.config.feeds)} feeds, {schedule.due} due, {schedule.backing_off} backing off;"
        f" {pending} deliveries pending; schedule lag {schedule.lag_s(now):.0f}s"
    )


async def _reload_on_request(
    app: App, reloads: Reloads, notifier: Notifier, summary: Callable[[], Awaitable[str]]
) -> None:
    while True:
        await reloads.requested.wait()
        reloads.requested.clear()
        notifier.reloading()
        await reload_config(app, reloads.load)
        notifier.ready(await summary())


async def reload_config(app: App, load: Callable[[], Config] | None) -> bool:
    """Re-read the config and apply it; on any problem, log one line and keep the old one."""
    if load is None:
        log.error("config reload not possible here; restart syncd to apply a new config")
        return False
    old = app.config
    try:
        new = load()
        await app.reconfigure(new)
    except SyncdError as e:  # ConfigError names the file and the key
        log.error("config reload refused; the running config stays", error=str(e))
        return False
    feeds = _changes({f.name: f for f in old.feeds}, {f.name: f for f in new.feeds})
    sinks = _changes({s.name: s for s in old.sinks}, {s.name: s for s in new.sinks})
    log.info("config reloaded", feeds=feeds, sinks=sinks)
    later = [k for k in ("fetch", "http") if getattr(old, k) != getattr(new, k)]
    if later:
        log.warning("changed settings apply at the next start", tables=later)
    return True


def _changes(old: Mapping[str, object], new: Mapping[str, object]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(n for n in set(old) & set(new) if old[n] != new[n]),
    }


async def _watchdog(notifier: Notifier, every_s: float) -> None:
    while True:
        notifier.watchdog()
        await asyncio.sleep(every_s)


async def _report_status(notifier: Notifier, summary: Callable[[], Awaitable[str]]) -> None:
    while True:
        await asyncio.sleep(STATUS_EVERY_S)
        notifier.status(await summary())


Starter = Callable[[Coroutine[Any, Any, None]], None]


@contextlib.asynccontextmanager
async def _tasks() -> AsyncIterator[Starter]:
    """Background tasks that live as long as the block: started by the yielded function,
    cancelled (and awaited) when the block ends."""
    tasks: list[asyncio.Task[None]] = []

    def start(coro: Coroutine[Any, Any, None]) -> None:
        tasks.append(asyncio.create_task(coro))

    try:
        yield start
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
