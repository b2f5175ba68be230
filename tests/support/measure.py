"""Whole-process measurements for the benchmarks: wall time and the CPU of a process tree.

A command runs in a session of its own; /proc is sampled every 5 ms and each process's last
reading is summed, since a child's own parent (e.g. a forkserver) never reports its usage to us.
Measures only; never judges (benchmarks print figures, tests never assert on time).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent.parent


def session_cpu(sid: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds (user + system) of every live process in session `sid`."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # After the command name: state ppid pgrp session ... utime(12) stime(13)
        if int(fields[3]) == sid:
            seen[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS


async def measure(argv: Sequence[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole session) of one command, in a session of its own.

    Raises SystemExit with the command's stderr when it fails.
    """
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    seen: dict[int, float] = {}
    waiting = asyncio.ensure_future(proc.communicate())
    while not waiting.done():
        session_cpu(proc.pid, seen)
        await asyncio.wait({waiting}, timeout=0.005)
    _, err = waiting.result()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err.decode()}")
    return wall, sum(seen.values())
