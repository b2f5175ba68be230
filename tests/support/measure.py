"""Whole-process measurements for the benchmarks: wall time and the CPU of a process tree.

A command runs in a session of its own; /proc is sampled every 5 ms and each process's last
reading is summed, since a child's own parent (e.g. a forkserver) never reports its usage to us.
Measures only; never judges (benchmarks print figures, tests never assert on time).

Measured commands run with compiled bytecode, as an installed syncd does (pip compiles it):
where the environment sets PYTHONDONTWRITEBYTECODE, every run of syncd would otherwise recompile
its own ~60 modules (about 0.1 s of CPU) while the yardstick's dependencies come compiled.
`measured_env` compiles syncd/ and bench/ into their __pycache__ once.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent.parent


@functools.cache
def measured_env(root: Path = ROOT) -> dict[str, str]:
    """The environment of a measured command: this one with the syncd of checkout `root`
    importable, after compiling its syncd's and benches' bytecode. Measured commands run in
    another directory, so `-m syncd` finds `root`'s package, not the current one."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "syncd"), str(root / "bench")],
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        check=True,
    )
    return {**os.environ, "PYTHONPATH": str(root)}


def session_processes(sid: int) -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) of every live process of
    session `sid`: state ppid pgrp session ... utime [11] stime [12] ... rss [21] (pages)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid:
            yield int(entry.name), fields


def session_cpu(sid: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds (user + system) of every live process in session `sid`."""
    for pid, fields in session_processes(sid):
        seen[pid] = (int(fields[11]) + int(fields[12])) / TICKS


async def measure(argv: Sequence[str], cwd: Path, root: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole session) of one command, in a session of its own,
    with the syncd of checkout `root` importable.

    Raises SystemExit with the command's stderr when it fails.
    """
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env=measured_env(root),
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
