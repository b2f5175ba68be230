"""The daemon's web app over a real SQLite store, without the daemon: for the API tests, which
need the store, the reader and the bell, and nothing of the poller or the sinks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.health import Health, LoopMonitor
from syncd.indexer import Indexer
from syncd.metrics import Metrics
from syncd.overview import take
from syncd.pull import Bell
from syncd.storage.sqlite import SqliteStore
from syncd.web.server import Access, WebServer, build_web_app
from syncd.web.services import Services


async def _no_status() -> dict[str, Any]:
    return {"feeds": [], "sinks": []}


async def _no_summary() -> str:
    return ""


def api_server(db: Path, store: SqliteStore, bell: Bell) -> WebServer:
    """A loopback WebServer (port 0) serving the web app for `store` at `db`."""
    services = Services(
        Health(store.probe, LoopMonitor(), store_open=True, scheduled=asyncio.Event()),
        Metrics(),
        lambda: take(store, datetime.now(UTC), []),
        status=_no_status,
        events=store.latest_events,
        summary=_no_summary,
        reader=store.reads(),
        bell=bell,
        index=Indexer(store).catch_up,  # as the daemon's: a search catches the index up first
    )
    return WebServer(build_web_app(services, Access.of(["127.0.0.0/8"], None)), "127.0.0.1", 0)
