"""Starting the real `syncd` command as a subprocess, for tests and benchmarks.

The child runs from this checkout (PYTHONPATH), in the config's folder, without blocking the
caller's event loop. Nothing here waits on or judges the process: callers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent.parent

Stream = int | IO[Any] | None


async def start_syncd(
    config: Path,
    *args: str,
    stdout: Stream = asyncio.subprocess.PIPE,
    stderr: Stream = asyncio.subprocess.PIPE,
    new_session: bool = False,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """`python -m syncd --config CONFIG ARGS…`. `new_session` gives it its own process group, so
    a kill of the group takes its parser workers too (as systemd's would). `env` adds to (or
    overrides) this process's environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "--config",
        str(config),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=str(config.parent),
        start_new_session=new_session,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a daemon's http.listen)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_syncd(config: Path) -> AsyncIterator[Daemon]:
    """`syncd run` for the block; SIGTERM at its end (the caller may have stopped it already),
    a kill if the block failed. `Daemon.stop()` returns its stderr."""
    proc = await start_syncd(config, "run", stdout=asyncio.subprocess.DEVNULL)
    daemon = Daemon(proc)
    try:
        yield daemon
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class Daemon:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def stop(self, timeout: float = 30) -> str:  # noqa: ASYNC109
        """SIGTERM, wait; asserts a clean exit and returns what it logged."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        assert self.proc.returncode == 0, err.decode()
        return err.decode()
