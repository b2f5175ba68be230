"""The JSON Lines file sink: appends each event body as one line to a local file.

Guarantees a reader can rely on: every line in the file is one complete event (U+2028/U+2029
escaped, so no line reader splits one). Lines go out in a
single write() on an O_APPEND descriptor while holding an exclusive flock, so lines from concurrent
tasks (or another syncd process, e.g. a `deliveries retry` next to the daemon) never interleave. A
tail torn by a crash is cut back to the last newline when the file is opened, and a write that
fails halfway is truncated back, so no reader sees half an event. The dispatcher hands this sink
batches (`send_batch`): one write and, with `fsync=True`, one fsync per batch before any of its
events counts as delivered.

Blocking file calls run in the sink's own writer thread, because fsync and a slow disk can take
milliseconds. It takes them first in, first out, so batches go into the file in the order they were
handed over, and back to back: the next write does not wait for the event loop (which may be busy
recording the previous batches). This module does not log (it reports bytes dropped for the
caller to log), and does not retry: a failure is a `SendOutcome(ok=False)` like any other sink's.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from syncd.model import OutboundEvent, SendOutcome

__all__ = ["FileSink", "repair_torn_tail"]

_SCAN_CHUNK = 64 * 1024
_T = TypeVar("_T")


def repair_torn_tail(fd: int) -> int:
    """Truncate an fd's file back to just after its last newline; return the bytes dropped.

    A file that does not end with "\\n" was cut mid-line (a crash during a write). The caller
    holds the file's lock.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    # Scan backwards chunk by chunk: one event can be large (full post content).
    end = size
    keep = 0
    while end > 0:
        start = max(0, end - _SCAN_CHUNK)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline != -1:
            keep = start + newline + 1
            break
        end = start
    os.ftruncate(fd, keep)
    return size - keep


class FileSink:
    """Appends events to a JSON Lines file. Satisfies `syncd.sinks.base.BatchSink`.

    The file is opened (and created, with its parent directory) on `open()` or the first `send`.
    `torn_bytes_dropped` counts the bytes cut from torn tails so far, for the caller to log.
    """

    def __init__(self, name: str, path: Path, fsync: bool = False) -> None:
        self._name = name
        self._path = Path(path)
        self._fsync = fsync
        self._fd: int | None = None
        self._closed = False
        self.torn_bytes_dropped = 0
        # One writer thread per sink, created on first use: file calls queue on it in order. The
        # thread lock guards the fd itself (a close racing a write from another thread).
        self._writer: ThreadPoolExecutor | None = None
        self._fd_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"FileSink(name={self._name!r}, path={str(self._path)!r}, fsync={self._fsync})"

    async def open(self) -> int:
        """Open the file now (idempotent); return the bytes cut from a torn tail when it was opened.

        Raises OSError if the file cannot be opened (`send` reports that as a failed outcome
        instead) and RuntimeError after `aclose`.
        """
        return await self._in_writer(self._open_sync)

    async def send(self, event: OutboundEvent) -> SendOutcome:
        return (await self.send_batch([event]))[0]

    async def send_batch(self, events: Sequence[OutboundEvent]) -> list[SendOutcome]:
        """Append the events as lines in one write (and one fsync); one outcome per event.

        The batch is all or nothing: a failed write is cut back and every event in it fails.
        """
        started = time.perf_counter()
        outcomes: list[SendOutcome | None] | None = None  # None: not one refused
        # A raw newline would split one event over two lines; the envelope is compact. Looked
        # for once over the batch (one memchr), event by event only when there is one.
        whole = [e.body for e in events]
        if b"\n" in b"".join(whole):
            whole = [body for body in whole if b"\n" not in body]
            outcomes = [_NEWLINE_REFUSED if b"\n" in e.body else None for e in events]
        if whole:
            whole.append(b"")  # so the join ends the last line too
            # Escaped once over the joined lines: a separator's three bytes never contain "\n",
            # so none can span a join, and the result is each line escaped on its own.
            lines = _line_safe(b"\n".join(whole))
            try:
                await self._in_writer(self._append_sync, lines)
            except OSError as exc:
                written = SendOutcome(
                    ok=False, error=_describe(exc, self._path), latency_ms=_ms(started)
                )
            except _SinkClosed:
                written = SendOutcome(
                    ok=False, error="file sink is closed", latency_ms=_ms(started)
                )
            else:
                written = SendOutcome(ok=True, latency_ms=_ms(started))
            if outcomes is None:
                return [written] * len(events)  # one outcome object: one record for the batch
            return [o if o is not None else written for o in outcomes]
        return [o if o is not None else _NEWLINE_REFUSED for o in outcomes or ()]  # all refused

    async def aclose(self) -> None:
        if self._writer is None:
            # Never used (a `syncd sync` with nothing to send): only the writer thread opens
            # the file, so there is none to close and no thread to start for it.
            self._closed = True
            return
        await self._in_writer(self._close_sync)  # after every write queued before it
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=False)

    def _in_writer(self, call: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Run `call` on the writer thread, after everything queued there before it. A caller
        cancelled while its call still waits in the queue takes the call out of it."""
        loop = asyncio.get_running_loop()
        if self._writer is None and self._closed:
            # Closed for good: the call only reports that (no I/O), and no thread is started.
            done: asyncio.Future[_T] = loop.create_future()
            try:
                done.set_result(call(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"file-sink-{self._name}")
        return loop.run_in_executor(self._writer, call, *args)

    # --- worker-thread side -------------------------------------------------------------------

    def _open_sync(self) -> int:
        with self._fd_lock:
            if self._closed:
                raise _SinkClosed()
            if self._fd is None:
                self._fd = self._open_file()
            return self.torn_bytes_dropped

    def _open_file(self) -> int:
        """Open (creating if needed), repair a torn tail under the lock, count what was dropped."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        existed = self._path.exists()
        fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                dropped = repair_torn_tail(fd)
                if self._fsync and dropped:
                    os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if self._fsync and not existed:
                # Make the new directory entry durable too, or a crash could lose the whole file.
                _fsync_dir(self._path.parent)
        except BaseException:
            os.close(fd)
            raise
        self.torn_bytes_dropped += dropped
        return fd

    def _append_sync(self, data: bytes) -> None:
        with self._fd_lock:
            if self._closed:
                raise _SinkClosed()
            if self._fd is None:
                self._fd = self._open_file()
            fd = self._fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                # Another process may have appended since; its lines are whole (it held the lock).
                before = os.fstat(fd).st_size
                try:
                    written = os.write(fd, data)
                    # A regular file only writes short on an error condition (disk full, quota);
                    # finish the lines, and if that fails too, cut them back below.
                    while written < len(data):
                        more = os.write(fd, data[written:])
                        if more == 0:  # no error and no progress: do not spin
                            raise OSError(errno.EIO, "write made no progress")
                        written += more
                    if self._fsync:
                        os.fsync(fd)
                except OSError:
                    _truncate_quietly(fd, before)
                    raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _close_sync(self) -> None:
        with self._fd_lock:
            self._closed = True
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)


# U+2028 and U+2029 are legal raw in a JSON string, but Python's str.splitlines(), JavaScript
# before ES2019 and other line readers end a line there; written as \u escapes they are the same
# JSON value, and every line splits on "\n" only, whatever reads it. (Their UTF-8 bytes cannot
# occur inside another character's encoding, so the byte replace is exact.)
_LINE_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))
_SEPARATOR = re.compile(b"\xe2\x80[\xa8\xa9]")


def _line_safe(body: bytes) -> bytes:
    # Each separator ends in a byte that a single-byte search (memchr) finds fast: without
    # either, there is nothing to escape. Otherwise (é is \xc3\xa9, say) one regex pass decides;
    # two three-byte `in` searches took 1.7 us per 450-byte event, most of a batch's preparation.
    if (b"\xa8" not in body and b"\xa9" not in body) or _SEPARATOR.search(body) is None:
        return body
    for raw, escaped in _LINE_SEPARATORS:
        body = body.replace(raw, escaped)
    return body


_NEWLINE_REFUSED = SendOutcome(ok=False, error="event body contains a newline", retryable=False)


class _SinkClosed(RuntimeError):
    """Use after `aclose`: `send` reports it as a failed outcome, `open` raises it."""

    def __init__(self) -> None:
        super().__init__("file sink is closed")


def _truncate_quietly(fd: int, size: int) -> None:
    # Best effort: if even the truncate fails, the next open repairs the torn tail.
    try:
        if os.fstat(fd).st_size > size:
            os.ftruncate(fd, size)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _describe(exc: OSError, path: Path) -> str:
    reason = exc.strerror or type(exc).__name__
    where = exc.filename if exc.filename is not None else path
    return f"cannot write {where}: {reason}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
