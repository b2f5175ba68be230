"""Benchmark: `syncd run` holding 1k … 1M feeds at a 15-minute interval, nearly every poll a 304.

For each size N the store is seeded directly (feeds already synced once, one page each with its
ETag, next polls spread evenly over the coming interval) instead of cold-syncing N feeds; the
config lists the N feeds. The feeds are served by a minimal keep-alive HTTP server in a process
of its own (its CPU is not counted): a request with the page's ETag gets a 304, any other a small
Atom page. Then `syncd run` starts with a NOTIFY_SOCKET; once it is READY and polling, the
steady state is measured over a window:

* polls/s achieved (requests the server answered in the window) against the required N / 900 s;
* CPU of the main process in % of one core, and of its children (parser workers);
* RSS of the main process (peak sampled in the window) and of the children;
* startup: seconds and CPU seconds until the first poll, and RSS then;
* the feed server's own CPU, to show it is not what limits the rate;
* the main process's run-queue wait in % of the window (runnable, waiting for a CPU): on a
  shared machine a daemon that keeps up with less than the required rate while using less
  than a core may be starved of CPU rather than waiting for I/O.

The window is shorter than the interval (a 15-minute window per size would take an hour); with
next polls spread evenly, any window sees the steady rate. Prints figures, never verdicts.

    .venv/bin/python bench/daemon_scale.py [--sizes 1000,10000,100000,1000000] [--window 60]
    .venv/bin/python bench/daemon_scale.py --serve   # the feed server alone (prints its port)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.measure import TICKS, measured_env, session_processes  # noqa: E402

INTERVAL_S = 900
ETAG = '"v1"'
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# --- the feed server (its own process) ----------------------------------------------------------

FEED = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:f</id><title>f</title>'
    b"<updated>2026-01-01T00:00:00Z</updated>"
    b"<entry><id>urn:e1</id><title>one</title><updated>2026-01-01T00:00:00Z</updated>"
    b"<content>hello</content></entry></feed>"
)


class FeedProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, GET only: 304 for the page's ETag, else the page; /_count: counts."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.answer(head)

    def answer(self, head: bytes) -> None:
        assert self.transport is not None
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1]
        if path == b"/_count":
            body = json.dumps(self.counts).encode()
            status, extra = b"200 OK", b"Content-Type: application/json\r\n"
        elif any(line.lower() == f"if-none-match: {ETAG}".encode() for line in lines[1:]):
            self.counts["304"] += 1
            self.transport.write(
                b"HTTP/1.1 304 Not Modified\r\nETag: " + ETAG.encode() + b"\r\n\r\n"
            )
            return
        else:
            self.counts["200"] += 1
            body = FEED
            status = b"200 OK"
            extra = b"Content-Type: application/atom+xml\r\nETag: " + ETAG.encode() + b"\r\n"
        self.transport.write(
            b"HTTP/1.1 "
            + status
            + b"\r\n"
            + extra
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


async def serve() -> None:
    counts = {"304": 0, "200": 0}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FeedProtocol(counts), "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


@contextlib.asynccontextmanager
async def feed_server() -> AsyncIterator[tuple[int, int]]:
    """(port, pid) of the feed server, a process (and session) of its own."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        yield int(await proc.stdout.readline()), proc.pid
    finally:
        proc.terminate()
        await proc.wait()


async def served(port: int) -> int:
    """Requests the feed server has answered so far."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /_count HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    counts = json.loads(await reader.readexactly(length))
    writer.close()
    return int(counts["304"]) + int(counts["200"])


async def first_poll(port: int) -> None:
    """Return once the server has answered a request beyond those it had answered so far."""
    base = await served(port)
    for _ in itertools.count():  # a poll of another process's counter: nothing to wait on
        await asyncio.sleep(0.2)
        if await served(port) != base:
            return


# --- seeding ------------------------------------------------------------------------------------


def text(dt: datetime) -> str:
    """The store's millisecond instant text (as `syncd.store` writes bookkeeping instants)."""
    from syncd.timestamps import format_timestamp

    return format_timestamp(dt.replace(microsecond=dt.microsecond // 1000 * 1000))


def seed(db: Path, n: int, port: int, now: datetime) -> None:
    """N feeds synced a minute ago, one page each with its ETag, next polls spread over the
    coming interval but the first's (the schema comes from syncd's own migrations)."""
    from syncd.storage.sqlite import SqliteStore

    SqliteStore.open(db).db.close()
    rng = random.Random(7)
    conn = sqlite3.connect(db)
    synced = text(now - timedelta(minutes=1))

    def feeds() -> Iterator[tuple[object, ...]]:
        for i in range(n):
            # Feed 0 is due at once: the first request marks the end of the daemon's start.
            due = text(now + timedelta(seconds=rng.uniform(0, INTERVAL_S) if i else -1))
            yield (i + 1, f"f{i}", url(port, i), synced, synced, synced, "not_modified", due)

    def pages() -> Iterator[tuple[object, ...]]:
        for i in range(n):
            yield (i + 1, url(port, i), ETAG, synced, 1, '["urn:e1"]')

    with conn:
        conn.executemany(
            "INSERT INTO feeds (id, name, url, created_at, first_synced_at, last_fetch_at,"
            " last_outcome, next_due_at, last_full_sync_at, consecutive_errors)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?4, 0)",
            feeds(),
        )
        conn.executemany(
            "INSERT INTO pages (feed_id, url, etag, fetched_at, entry_count, entry_ids)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            pages(),
        )
    conn.close()


def url(port: int, i: int) -> str:
    return f"http://127.0.0.1:{port}/f/{i}"


def write_config(tmp: Path, n: int, port: int) -> Path:
    config = tmp / "syncd.toml"
    with config.open("w") as f:
        f.write(
            f'[store]\npath = "{tmp}/syncd.db"\n'
            "[fetch]\nper_host_rate = 1000000\nallow_private_networks = true\n"
            '[defaults]\ninterval = "15m"\nchanges = "off"\n'
            '[http]\nlisten = ""\n'
            "[websub]\nenabled = false\n"
            f'[[sinks]]\nname = "file"\ntype = "file"\npath = "{tmp}/events.jsonl"\n'
        )
        for i in range(n):
            f.write(f'[[feeds]]\nname = "f{i}"\nurl = "{url(port, i)}"\n')
    return config


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Sample:
    cpu_main: float  # seconds
    cpu_children: float
    rss_main: int  # bytes
    rss_children: int
    wait_main: float = 0.0  # seconds runnable but not running (waiting for a CPU)


def run_queue_wait(pid: int) -> float:
    """Seconds `pid`'s threads have waited on a run queue (/proc/PID/schedstat, 2nd field):
    on a loaded machine a daemon that looks idle may be waiting for a CPU, not for I/O."""
    total = 0.0
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            with open(f"{task.path}/schedstat") as f:
                total += int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return total


def sample(pid: int) -> Sample:
    """CPU and RSS of `pid` and of the other live processes of its session (it leads one)."""
    main = Sample(0.0, 0.0, 0, 0, run_queue_wait(pid))
    for member, fields in session_processes(pid):
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        rss = int(fields[21]) * PAGE_SIZE
        if member == pid:
            main.cpu_main, main.rss_main = cpu, rss
        else:
            main.cpu_children += cpu
            main.rss_children += rss
    return main


@contextlib.contextmanager
def notify_socket(tmp: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp / "notify"))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def wait_ready(sock: socket.socket, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    while True:
        if proc.returncode is not None:
            raise SystemExit(f"syncd run exited with {proc.returncode}")
        try:
            message = await asyncio.wait_for(loop.sock_recv(sock, 4096), 1.0)
        except TimeoutError:
            continue
        if b"READY=1" in message:
            return


async def run_size(n: int, window: float, out: list[dict[str, float]], root: Path | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with feed_server() as (port, server_pid):
            t0 = time.perf_counter()
            seed(tmp / "syncd.db", n, port, datetime.now(UTC))
            config = write_config(tmp, n, port)
            print(f"  {n:,} feeds seeded in {time.perf_counter() - t0:.1f} s", flush=True)
            with notify_socket(tmp) as sock:
                env = {**measured_env(), "NOTIFY_SOCKET": str(tmp / "notify")}
                if root is not None:  # another checkout's syncd, for a before/after
                    env["PYTHONPATH"] = str(root)
                started = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "syncd",
                    "--config",
                    str(config),
                    "run",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=open(tmp / "stderr.log", "wb"),  # noqa: ASYNC230, SIM115
                    env=env,
                    cwd=tmp,  # not this checkout: `-m syncd` would import it before --root's
                    start_new_session=True,
                )
                try:
                    await wait_ready(sock, proc)
                    await first_poll(port)
                    startup = time.perf_counter() - started
                    at_start = sample(proc.pid)
                    await asyncio.sleep(min(10.0, window / 3))  # settle
                    first, c0, w0 = sample(proc.pid), await served(port), time.perf_counter()
                    server0 = sample(server_pid).cpu_main
                    peak = first
                    while time.perf_counter() - w0 < window:
                        await asyncio.sleep(1.0)
                        s = sample(proc.pid)
                        if s.rss_main > peak.rss_main:
                            peak = s
                    last, c1, w1 = sample(proc.pid), await served(port), time.perf_counter()
                    server1 = sample(server_pid).cpu_main
                finally:
                    proc.send_signal(signal.SIGTERM)
                    await proc.wait()
            elapsed = w1 - w0
            row = {
                "feeds": n,
                "required": n / INTERVAL_S,
                "polls_s": (c1 - c0) / elapsed,
                "cpu_main": 100 * (last.cpu_main - first.cpu_main) / elapsed,
                "cpu_children": 100 * (last.cpu_children - first.cpu_children) / elapsed,
                "rss_main": max(peak.rss_main, last.rss_main) / 2**20,
                "rss_children": last.rss_children / 2**20,
                "startup_s": startup,
                "startup_cpu": at_start.cpu_main,
                "startup_rss": at_start.rss_main / 2**20,
                "window": elapsed,
                "cpu_server": 100 * (server1 - server0) / elapsed,
                "wait_main": 100 * (last.wait_main - first.wait_main) / elapsed,
            }
            out.append(row)
            print("  " + json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)


async def main(sizes: list[int], window: float, root: Path | None) -> None:
    rows: list[dict[str, float]] = []
    for n in sizes:
        print(f"{n:,} feeds …", flush=True)
        await run_size(n, window, rows, root)
    print(f"\n`syncd run`, {INTERVAL_S // 60}-min interval, nearly all 304; load {os.getloadavg()}")
    print(
        f"{'feeds':>9} {'required/s':>10} {'polls/s':>8} {'ratio':>6} {'CPU main':>9}"
        f" {'CPU kids':>9} {'RSS main':>9} {'RSS kids':>9} {'startup':>8} {'window':>7}"
        f" {'server CPU':>10} {'run-queue wait':>14}"
    )
    for r in rows:
        print(
            f"{int(r['feeds']):>9,} {r['required']:>10.1f} {r['polls_s']:>8.1f}"
            f" {r['polls_s'] / r['required']:>6.2f}"
            f" {r['cpu_main']:>8.1f}% {r['cpu_children']:>8.1f}%"
            f" {r['rss_main']:>6.0f} MiB {r['rss_children']:>5.0f} MiB"
            f" {r['startup_s']:>7.1f}s {r['window']:>6.0f}s {r['cpu_server']:>9.1f}%"
            f" {r['wait_main']:>13.1f}%"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", action="store_true", help="run the feed server only")
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--window", type=float, default=60.0, help="seconds measured per size")
    ap.add_argument("--root", type=Path, help="run the syncd of this checkout instead")
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve())
    else:
        asyncio.run(main([int(s) for s in args.sizes.split(",")], args.window, args.root))
