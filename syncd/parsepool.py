"""Parse pages: well-formed ones in-process on the fast path, the rest in worker processes.

Most feeds are well-formed Atom or RSS, which `syncd.parse.parse_page_fast` (lxml) reads in a few
milliseconds: that runs here, in the daemon's process, where a process hop would cost as much as
the parse (DESIGN §8; docs/design.md, "Where pages are parsed"); a body over a megabyte takes it
in a thread, so the event loop keeps its turns. It is bounded like the rest of the
process: bodies are capped by the fetcher, no entity is ever expanded, libxml2 keeps its default
limits (no text node over 10 MB, no nesting over 256 levels; larger documents are declined).

Everything the fast path declines goes to feedparser, which holds the GIL for ~100 ms per page
and can allocate without bound on hostile documents (DESIGN §7): that runs in a process pool
whose workers have their address space capped. A worker that dies or runs out of memory costs
one page (a ParseError for its URL), never the daemon: the pool is replaced and the next parse
gets fresh workers. The pool starts on the first page that needs it, never before: a pass that
meets only 304s or well-formed feeds starts no process and never imports feedparser. Nor does
one that meets only 304s import the parsers or the process machinery (multiprocessing,
concurrent.futures' process pool): they are imported by the first parse.

This module owns processes, nothing else: no parsing rules (those are in `syncd.parse`), no
network, no store. Workers are started with "forkserver" (or "spawn"), never "fork": forking a
process that runs an event loop and threads copies their locks in whatever state they were in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import select
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Self, TypeVar

from syncd.errors import ParseError
from syncd.model import ParsedPage

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from syncd.parse import Declined, Reuse

__all__ = ["DEFAULT_MEMORY_LIMIT_BYTES", "INLINE_PARSE_BYTES", "ParserPool"]

DEFAULT_MEMORY_LIMIT_BYTES: Final = 1 << 30  # 1 GiB of address space per worker
INLINE_PARSE_BYTES: Final = 1 << 20  # larger bodies take the fast path in a thread

StartMethod = Literal["forkserver", "spawn"]
_T = TypeVar("_T")

# Blocked in the forkserver and the workers from birth (they inherit the mask): only the daemon
# decides how to stop. The forkserver exits when the daemon does; so do the workers.
_STOP_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT})


class ParserPool:
    """An async context manager: the fast path in-process, else a ProcessPoolExecutor.

    Usage::

        async with ParserPool(workers=2) as pool:
            page = await pool.parse(result.body, url=result.final_url, headers=result.headers)
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
        max_entries: int | None = None,
        start_method: StartMethod = "forkserver",
        fast_in_process: bool = True,
    ) -> None:
        """`fast_in_process=False` sends every page to the workers (both paths run there).
        `max_entries` None: `syncd.parse.DEFAULT_MAX_ENTRIES`."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if memory_limit_bytes is not None and memory_limit_bytes <= 0:
            raise ValueError(f"memory_limit_bytes must be positive, got {memory_limit_bytes}")
        self._workers = workers
        self._memory_limit_bytes = memory_limit_bytes
        self._max_entries = max_entries
        self._start_method: StartMethod = start_method
        self._fast_in_process = fast_in_process
        self._running = False
        self._executor: ProcessPoolExecutor | None = None  # started on first use
        # Pools replaced after a failure; still shut down (and waited for) on exit.
        self._retired: list[ProcessPoolExecutor] = []

    async def __aenter__(self) -> Self:
        if self._running:
            raise RuntimeError("ParserPool is already running")
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        executors = [*self._retired, *([self._executor] if self._executor else [])]
        self._executor = None
        self._retired = []
        self._running = False
        for executor in executors:
            # shutdown(wait=True) blocks until the workers exit: keep it off the event loop.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    async def parse(
        self,
        body: bytes,
        *,
        url: str,
        headers: Mapping[str, str],
        ignore_fields: frozenset[str] = frozenset(),
        reuse: Reuse | None = None,
    ) -> ParsedPage:
        """Parse one page. Raises ParseError for a bad page or a worker lost on it.

        With `reuse`, a page the fast path reads is keyed (`ParsedPage.entry_keys`) and the
        entries `reuse` returns for its keys are taken as they are instead of read again."""
        if not self._running:
            raise RuntimeError("ParserPool.parse called outside 'async with'")
        from syncd.parse import DEFAULT_MAX_ENTRIES  # a pass of 304s needs none

        max_entries = DEFAULT_MAX_ENTRIES if self._max_entries is None else self._max_entries
        if self._fast_in_process:
            page = await self._parse_fast(body, url, headers, ignore_fields, max_entries, reuse)
            if isinstance(page, ParsedPage):
                return page
        from concurrent.futures.process import BrokenProcessPool  # only for the workers

        executor = self._executor
        if executor is None:
            executor = self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        try:
            # Submitting may start the forkserver and workers (synchronously, in this thread).
            # A stop sent to the whole process group while they start would kill them half-born
            # (EOFError here); with the stop signals blocked, they are born with them blocked
            # and never see a group stop. The daemon gets its own signal as soon as this returns.
            with _stop_signals_blocked():
                future = loop.run_in_executor(
                    executor,
                    _parse_in_worker,
                    body,
                    url,
                    dict(headers),  # a plain dict pickles whatever Mapping the caller holds
                    ignore_fields,
                    max_entries,
                    self._fast_in_process,  # the fast path already declined it: skip it there
                )
            outcome = await future
        except BrokenProcessPool as exc:
            # A worker died (killed by the kernel, crashed in C, or failed to allocate where
            # Python cannot raise). Every page in flight on this pool is lost with it.
            self._replace(executor)
            raise ParseError(f"parser worker died: {exc}", url=url) from exc
        except MemoryError as exc:
            # The worker survived, but its heap may stay bloated: start afresh.
            self._replace(executor)
            raise ParseError("parser worker ran out of memory", url=url) from exc
        if isinstance(outcome, _WorkerParseError):
            raise ParseError(outcome.message, url=outcome.url)
        return outcome

    async def _parse_fast(
        self,
        body: bytes,
        url: str,
        headers: Mapping[str, str],
        ignore_fields: frozenset[str],
        max_entries: int,
        reuse: Reuse | None,
    ) -> ParsedPage | Declined:
        from syncd.parse import Declined, open_page_fast

        # A typical page parses in a few milliseconds: on the loop, cheaper than a thread hop.
        # A big one would hold the loop for longer, so it runs in a thread, which lets the loop
        # take its turns between the walk's GIL switches.
        inline = len(body) <= INLINE_PARSE_BYTES

        async def run(work: Callable[[], _T]) -> _T:
            return work() if inline else await asyncio.to_thread(work)

        opened = await run(
            functools.partial(
                open_page_fast,
                body,
                url=url,
                headers=headers,
                ignore_fields=ignore_fields,
                max_entries=max_entries,
            )
        )
        if isinstance(opened, Declined):
            return opened
        if reuse is None:
            return await run(functools.partial(opened.page, None))
        known = await reuse(await run(opened.keys))  # the store, between the two halves
        return await run(functools.partial(opened.page, known))

    def _new_executor(self) -> ProcessPoolExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context(self._start_method),
            initializer=_init_worker,
            initargs=(self._memory_limit_bytes, os.getpid()),
        )

    def _replace(self, failed: ProcessPoolExecutor) -> None:
        # Several parses fail together when a pool breaks; only the first one replaces it, or a
        # late one would throw away the fresh pool and the work already running there.
        if self._executor is not failed:
            return
        self._executor = self._new_executor()
        # Pages still running on the old pool (a MemoryError leaves it working) may finish.
        failed.shutdown(wait=False, cancel_futures=False)
        self._retired.append(failed)


@dataclass(frozen=True, slots=True)
class _WorkerParseError:
    """A ParseError on its way back from a worker.

    syncd.errors.ParseError cannot be unpickled (its `url` is keyword-only and Exception pickles
    positional args only), and a result that fails to unpickle marks the whole pool broken.
    """

    message: str
    url: str


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _init_worker(memory_limit_bytes: int | None, owner_pid: int) -> None:
    # Ctrl-C, and systemd's stop of the whole control group, reach every process; the daemon
    # decides how to stop, and shuts the pool down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM from anyone but the daemon is ignored. The daemon's own SIGTERM must still work:
    # the executor terminates the surviving workers of a broken pool and then waits for them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(
        target=_exit_on_sigterm_from, args=(owner_pid,), name="sigterm", daemon=True
    ).start()
    # A worker's parent is the forkserver, not the daemon, and its task queue holds both ends of
    # its pipe, so nothing tells it when the daemon is gone (SIGKILLed, or exited after a group
    # stop killed the forkserver and made the pool's join() return early). Watch the daemon
    # itself: a worker never outlives it, so it never holds the daemon's stdout/stderr open.
    try:
        owner = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        os._exit(0)  # the daemon is already gone
    threading.Thread(target=_exit_with_owner, args=(owner,), name="owner", daemon=True).start()
    if memory_limit_bytes is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_limit_bytes if hard == resource.RLIM_INFINITY else min(memory_limit_bytes, hard)
    # Lower the hard limit too: nothing running in a worker may raise it again.
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _exit_on_sigterm_from(owner_pid: int) -> None:
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == owner_pid:
            os._exit(128 + signal.SIGTERM)


def _exit_with_owner(owner_pidfd: int) -> None:
    select.select([owner_pidfd], [], [])  # a pidfd turns readable when its process exits
    os._exit(0)


def _parse_in_worker(
    body: bytes,
    url: str,
    headers: dict[str, str],
    ignore_fields: frozenset[str],
    max_entries: int,
    feedparser_only: bool,
) -> ParsedPage | _WorkerParseError:
    from syncd.parse import parse_page, parse_page_feedparser

    parse = parse_page_feedparser if feedparser_only else parse_page
    try:
        return parse(
            body, url=url, headers=headers, ignore_fields=ignore_fields, max_entries=max_entries
        )
    except ParseError as exc:
        return _WorkerParseError(message=str(exc), url=exc.url)
