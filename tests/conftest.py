"""Shared fixtures: a local Blogger-like feed server, a verifying webhook receiver, config files,
and a way to run the real `syncd` command as a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.sinks.webhook import session_for_webhooks
from syncd.storage import Store
from syncd.storage.sqlite import SqliteStore
from tests.support.feedserver import BloggerFeed, FeedServer, serve_feed
from tests.support.process import start_syncd
from tests.support.receiver import TEST_SECRET, ReceiverServer, serve_receiver


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_children() -> Iterator[None]:
    """The signal tests play a user's Ctrl-C. A shell starts a background job (`make test &`) with
    SIGINT ignored, and an ignored signal stays ignored across exec, so every syncd under test would
    shrug it off. A handled signal is reset to its default at exec: handle it here."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    async with serve_feed(BloggerFeed()) as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[ReceiverServer]:
    async with serve_receiver(TEST_SECRET) as rx:
        yield rx


def toml_value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, bool) else str(v).lower()


def write_config(
    tmp_path: Path,
    feeds: Sequence[dict[str, Any]],
    sinks: Sequence[dict[str, Any]] = (),
    fetch: dict[str, Any] | None = None,
    http: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
) -> Path:
    """A config for tests: fast per-host rate, private networks allowed unless said otherwise,
    and the daemon's HTTP server on a free port (never the default one, which a test run beside
    another, or a real daemon, would fight over)."""
    fetch_table = {"per_host_rate": 1000, "allow_private_networks": True, "timeout": "10s"}
    fetch_table.update(fetch or {})
    store_table = {"path": str(tmp_path / "syncd.db"), **(store or {})}
    lines = ["[store]"] + [f"{k} = {toml_value(v)}" for k, v in store_table.items()]
    lines += ["", "[fetch]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in fetch_table.items()]
    http_table = {"listen": "127.0.0.1:0", **(http or {})}
    lines += ["", "[http]"] + [f"{k} = {toml_value(v)}" for k, v in http_table.items()]
    for table, items in (("feeds", feeds), ("sinks", sinks)):
        for item in items:
            lines += ["", f"[[{table}]]"] + [f"{k} = {toml_value(v)}" for k, v in item.items()]
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def file_sink(tmp_path: Path, name: str = "archive", **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "file", "path": str(tmp_path / f"{name}.jsonl"), **kw}


def webhook_sink(url: str, name: str = "hook", **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url, "secret": TEST_SECRET, **kw}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines syncd wrote to stderr (it is not a TTY here)."""
        out = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


async def syncd(config: Path, *args: str, timeout: float = 120) -> Result:  # noqa: ASYNC109
    """Run the real `syncd` command in a subprocess without blocking this event loop."""
    proc = await start_syncd(config, *args)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def db_rows(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a finished JSON Lines file; a torn line fails the test."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def jsonl_so_far(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a JSON Lines file a running daemon may be writing right now: a last
    line without its newline is still being written, not torn, and is left for the next look."""
    if not path.exists():
        return []
    text = path.read_text()
    whole = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in whole.splitlines()]


def sqlite_store(store: Store) -> SqliteStore:
    """The app's store as the SQLite backend, for tests that look at its file or connection."""
    assert isinstance(store, SqliteStore)
    return store


# The delivery tests' store and webhook session.
@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore.open(tmp_path / "syncd.db")
    yield s
    s.db.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with session_for_webhooks(limit_per_host=0) as s:
        yield s
