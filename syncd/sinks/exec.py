"""The exec sink: runs a command once per event with the event's JSON envelope on stdin.

For feed2exec-style set-ups (`command = ["notify-send-entry"]`, a mail script, a git commit).
The command is an argv list from the operator's config; no shell is involved, so nothing in an
event can add arguments or run anything else. The environment is syncd's own, plus the sink's
`env` table, plus the event's identity: `SYNCD_EVENT_ID`, `SYNCD_EVENT_TYPE`, `SYNCD_EVENT_SEQ`,
`SYNCD_SINK`, `SYNCD_FEED`, `SYNCD_ENTRY_ID`, `SYNCD_ENTRY_LINK`.

Exit status 0 is delivered. A non-zero status, death by a signal, a command that cannot start, or
the sink's timeout (the whole process group is killed, so a script's children go too) is a failed
attempt that the dispatcher retries on the sink's schedule; the same event may therefore run
again and scripts should deduplicate on `SYNCD_EVENT_ID`. The command's stdout is discarded; the
tail of its stderr goes into the attempt's error for `syncd deliveries show`.

This module makes one attempt per `send`. It does not retry, log, or decide what a failure means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from syncd.errors import ConfigError
from syncd.model import OutboundEvent, SendOutcome
from syncd.sinks.options import NonEmptyText, SinkOptions, resolve_path

__all__ = ["ExecOptions", "ExecSink", "event_environment", "parse_command"]

_STDERR_TAIL = 500  # bytes of the command's stderr kept for the error message
_READ_CHUNK = 64 * 1024


class ExecOptions(SinkOptions):
    """An exec sink's keys: the command (an argv list, or one string split shell-style), extra
    environment variables, and the working directory (relative to the config file's)."""

    command: list[str] | NonEmptyText
    env: dict[str, str] = Field(default_factory=dict)
    cwd: NonEmptyText | None = None

    @field_validator("command")
    @classmethod
    def _splittable(cls, value: list[str] | str) -> list[str] | str:
        try:
            argv = parse_command(value)
        except ConfigError as e:
            raise ValueError(str(e).removeprefix("command: ")) from None
        if not argv or not all(argv):
            raise ValueError("must be a non-empty list of non-empty strings")
        return value

    @field_validator("env")
    @classmethod
    def _no_nul(cls, value: dict[str, str]) -> dict[str, str]:
        if any("\0" in v for v in value.values()):
            raise ValueError("an environment value must not contain a NUL character")
        return value

    def argv(self) -> list[str]:
        return parse_command(self.command)

    def target(self) -> str:
        return " ".join(self.argv())

    def resolved_cwd(self, base_dir: Path | None) -> Path | None:
        return None if self.cwd is None else resolve_path(self.cwd, base_dir)


def event_environment(sink: str, event: OutboundEvent) -> dict[str, str]:
    """The SYNCD_* variables a command sees for `event`."""
    env = {
        "SYNCD_EVENT_ID": event.id,
        "SYNCD_EVENT_TYPE": event.type,
        "SYNCD_EVENT_SEQ": str(event.seq),
        "SYNCD_SINK": sink,
    }
    try:
        envelope = json.loads(event.body)
    except ValueError:
        return env
    data = envelope.get("data") if isinstance(envelope, dict) else None
    if not isinstance(data, dict):
        return env
    feed, entry = data.get("feed"), data.get("entry")
    feed = feed if isinstance(feed, dict) else {}
    entry = entry if isinstance(entry, dict) else {}
    for key, value in (
        ("SYNCD_FEED", feed.get("name")),
        ("SYNCD_ENTRY_ID", entry.get("id")),
        ("SYNCD_ENTRY_LINK", entry.get("link")),
    ):
        if isinstance(value, str):
            # An environment value cannot hold NUL; feed text is untrusted and might.
            env[key] = value.replace("\0", "")
    return env


class ExecSink:
    """Pipes each event to a command. Satisfies `syncd.sinks.base.Sink`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        timeout_s: float = 15.0,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise ConfigError("must be a non-empty list of non-empty strings", key="command")
        if not timeout_s > 0:
            raise ConfigError(f"must be > 0 seconds (got {timeout_s})", key="timeout")
        self._name = name
        self._argv = tuple(argv)
        self._timeout_s = float(timeout_s)
        self._env = dict(env or {})
        self._cwd = cwd
        self._base_env = dict(os.environ if base_env is None else base_env)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        # The arguments may carry tokens; the program name is enough to recognise the sink.
        return (
            f"ExecSink(name={self._name!r}, program={self._argv[0]!r}, "
            f"args=<{len(self._argv) - 1}>, timeout_s={self._timeout_s:g})"
        )

    async def aclose(self) -> None:
        return None  # every process is reaped by the `send` that started it

    async def send(self, event: OutboundEvent) -> SendOutcome:
        started = time.perf_counter()
        env = {**self._base_env, **self._env, **event_environment(self._name, event)}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self._cwd,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return SendOutcome(
                ok=False, error=f"cannot run {self._argv[0]}: {reason}", latency_ms=_ms(started)
            )
        try:
            async with asyncio.timeout(self._timeout_s):
                tail = await _talk(proc, event.body)
                code = await proc.wait()
        except TimeoutError:
            await _kill(proc)
            return SendOutcome(
                ok=False,
                error=f"timed out after {self._timeout_s:g}s (process group killed)",
                latency_ms=_ms(started),
            )
        except BaseException:
            # Cancelled (a shutdown): leave no process behind, then let the cancellation go on.
            await _kill(proc)
            raise
        if code == 0:
            return SendOutcome(ok=True, latency_ms=_ms(started))
        what = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
        text = _one_line(tail.decode("utf-8", "replace"))
        return SendOutcome(
            ok=False, error=f"{what}: {text}" if text else what, latency_ms=_ms(started)
        )


async def _talk(proc: asyncio.subprocess.Process, body: bytes) -> bytes:
    """Write `body` to stdin and read stderr to EOF, keeping its tail; both at once, so a
    command that writes a lot before reading cannot deadlock against us."""
    assert proc.stdin is not None and proc.stderr is not None
    stdin, stderr = proc.stdin, proc.stderr

    async def feed() -> None:
        # A command is free not to read its stdin; a closed pipe is not our failure.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(body)
            await stdin.drain()
        stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.wait_closed()

    async def drain() -> bytes:
        tail = b""
        while chunk := await stderr.read(_READ_CHUNK):
            tail = (tail + chunk)[-_STDERR_TAIL:]
        return tail

    _, tail = await asyncio.gather(feed(), drain())
    return tail


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


def _one_line(text: str) -> str:
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= _STDERR_TAIL else "…" + flat[-(_STDERR_TAIL - 1) :]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def parse_command(value: Any) -> list[str]:
    """A `command` option: a list of strings, or one string split shell-style (no shell runs)."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"cannot split {value!r}: {exc}", key="command") from None
    if isinstance(value, list | tuple) and all(isinstance(a, str) for a in value):
        return list(value)
    raise ConfigError("must be a list of strings or a string", key="command")
