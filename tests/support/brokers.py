"""Broker-test support: where the shared NATS and Redis are, why a test must skip, and private
broker processes a test may kill and restart.

Settings come from SYNCD_TEST_NATS_URL / SYNCD_TEST_REDIS_URL (defaults: the machine's NATS
with JetStream on 127.0.0.1:4222 and Redis on 127.0.0.1:6379). Nothing here judges a result.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

NATS_URL = os.environ.get("SYNCD_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("SYNCD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unreachable(url: str, what: str) -> str | None:
    """None if something accepts TCP at the URL's host:port, else a one-line skip reason."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    try:
        with socket.create_connection((host, port or 0), timeout=2):
            return None
    except OSError as exc:
        return f"{what} not reachable at {host}:{port} ({exc.strerror or exc}); set {_env(what)}"


def missing_binary(name: str) -> str | None:
    return None if shutil.which(name) else f"{name} is not installed (needed to kill/restart it)"


def _env(what: str) -> str:
    return "SYNCD_TEST_NATS_URL" if what.startswith("NATS") else "SYNCD_TEST_REDIS_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BrokerProcess:
    """One private broker (`argv` listening on 127.0.0.1:`port`) that can be SIGKILLed and
    started again with the same arguments, so with the same data directory."""

    def __init__(self, argv: Sequence[str], port: int, log: Path) -> None:
        self.argv = list(argv)
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self, wait_s: float = 20.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.argv[0]} did not listen on {self.port} in {wait_s}s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush beyond what the broker already handed to the OS."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def private_nats(tmp: Path) -> BrokerProcess:
    port = free_port()
    store = tmp / "jetstream"
    store.mkdir(parents=True, exist_ok=True)
    argv = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    return BrokerProcess(argv, port, tmp / "nats-server.log")


def private_redis(tmp: Path) -> BrokerProcess:
    """AOF on (fsync always): with `--save ""` alone a killed redis-server forgets every entry
    since its start, acknowledged or not, and no sink could prevent that loss."""
    port = free_port()
    data = tmp / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes", "--appendfsync", "always", "--dir", str(data),
    ]  # fmt: skip
    return BrokerProcess(argv, port, tmp / "redis-server.log")
