"""The composition root: builds the store, HTTP sessions, parser pool, sinks and clock, wires them
into the syncer, the dispatcher and the scheduler, and closes them all. Nothing else in syncd
constructs a collaborator; everything below receives what it needs from here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import structlog

from syncd.config import Config, FeedConfig, SinkConfig
from syncd.daemonlock import DaemonLock
from syncd.delivery import BoundSink, Dispatcher, OwnerLock, SinkReport
from syncd.errors import ConfigError, SyncdError
from syncd.fetch import Fetcher, FetchLimits, create_feed_session, user_agent
from syncd.housekeeping import Housekeeping, retention_policy
from syncd.indexer import Indexer
from syncd.model import EventDraft
from syncd.parsepool import ParserPool
from syncd.pull import Bell
from syncd.schedule import spread_first_poll
from syncd.sinks import Sink, SinkContext, default_registry
from syncd.sinks.file import FileSink
from syncd.storage import Store
from syncd.storage.sqlite import SqliteStore
from syncd.storage.values import FeedLease, FeedState
from syncd.subscriber import Subscriber
from syncd.sync import FeedSyncer, PageFetcher, PageParser, Progress, SyncReport
from syncd.throttle import ClusterThrottle, HostThrottle, Throttle
from syncd.workers import Worker, new_worker_id

if TYPE_CHECKING:
    from syncd.metrics import Metrics  # prometheus_client: imported only by the daemon
    from syncd.storage.transfer import CopyReport  # `syncd store copy` only

log = structlog.get_logger("syncd.app")

# How often the daemon looks for due feeds. Feeds are due on minute scales; a second of lateness
# is nothing, and a wake-up per second costs one indexed query.
POLL_TICK_S = 1.0
UNRECORDED_HOLD_S = 60.0  # how long a feed whose outcome could not be stored waits

Clock = Callable[[], datetime]
DispatcherFactory = Callable[[list[BoundSink]], Dispatcher]


def system_clock() -> datetime:
    return datetime.now(UTC)


async def open_store(config: Config) -> Store:
    """The configured store for reading and writing, created and migrated as needed: the
    PostgreSQL database at `[store] url`, else the SQLite file at `[store] path`. The one place
    that picks a storage backend."""
    if config.store.url is not None:
        # psycopg costs ~0.1 s of CPU to import: only a PostgreSQL store pays for it.
        from syncd.storage.postgres.store import PostgresStore

        return await PostgresStore.open(config.store.url)
    return SqliteStore.open(config.store.path)


async def open_store_readonly(config: Config) -> Store:
    """The configured store for commands that only look: never created, never migrated (a
    missing or outdated store is a StoreError saying so); on SQLite a write through it fails."""
    if config.store.url is not None:
        from syncd.storage.postgres.store import PostgresStore

        return await PostgresStore.open(config.store.url, migrate=False)
    return SqliteStore.open_existing(config.store.path)


def is_store_url(location: str) -> bool:
    """Whether a `--from`/`--to` names a PostgreSQL database rather than a SQLite file."""
    return location.startswith(("postgresql://", "postgres://"))


def copy_stores(source: str, target: str, *, replace: bool, batch: int) -> CopyReport:
    """`syncd store copy`: the store at `source` (a SQLite path or a PostgreSQL URL) into
    `target`, each end opened by its backend (syncd.storage.transfer runs the copy), in an
    event loop of its own."""
    if is_store_url(source) == is_store_url(target) and (
        source == target
        if is_store_url(source)
        else Path(source).resolve() == Path(target).resolve()
    ):
        raise SyncdError("--from and --to name the same store")
    return asyncio.run(_copy_stores(source, target, replace=replace, batch=batch))


async def _copy_stores(source: str, target: str, *, replace: bool, batch: int) -> CopyReport:
    # Imported here: only this command needs them (psycopg, sqlite-utils).
    from syncd.storage.postgres.tables import PostgresTables
    from syncd.storage.sqlite.tables import SqliteTables
    from syncd.storage.transfer import TableSource, TableTarget, copy_store

    async with AsyncExitStack() as stack:
        if is_store_url(source):
            reader: TableSource = await PostgresTables.source(source)
        else:
            reader = SqliteTables.source(Path(source))
        stack.push_async_callback(reader.close)
        if is_store_url(target):
            writer: TableTarget = await PostgresTables.target(target)
        else:
            writer = SqliteTables.target(Path(target))
        stack.push_async_callback(writer.close)
        return await copy_store(reader, writer, replace=replace, batch=batch)


@dataclass
class App:
    """A running syncd: its config, store, syncer and sinks' dispatcher, and what the daemon
    runs beside them (WebSub, housekeeping, the search indexer, its worker lease)."""

    config: Config
    store: Store
    syncer: FeedSyncer
    dispatcher: Dispatcher
    clock: Clock
    # Set once the daemon's first look at the schedule is done (readiness, /readyz).
    scheduled: asyncio.Event = field(default_factory=asyncio.Event)
    # What a reload needs: the stack holding the current sinks open, and how to build a
    # dispatcher for new ones. None: this app cannot change its sinks.
    sinks: AsyncExitStack | None = None
    new_dispatcher: DispatcherFactory | None = None
    _halt: asyncio.Event = field(default_factory=asyncio.Event)
    _delivering: asyncio.Task[None] | None = None
    _stop: asyncio.Event | None = None
    bell: Bell = field(default_factory=Bell)
    websub: Subscriber | None = None  # the WebSub subscriber (the daemon's callback routes)
    housekeeping: Housekeeping | None = None  # the daemon's periodic prune
    indexer: Indexer | None = None  # the daemon's search index catch-up
    worker: Worker | None = None  # this process as a worker of the store: its feed leases

    def committed(self) -> None:
        """Events were committed: wake the sinks, and the pull API's waiting readers."""
        self.dispatcher.notify()
        self.bell.ring()

    async def skip_reason(self, feed: FeedConfig, now: datetime) -> str | None:
        """Why `feed` must not be fetched now even on request (registering it if new)."""
        return skip_reason(await self.store.ensure_feed(feed.name, feed.url, now), now)

    async def sync_feeds(
        self, feeds: Sequence[FeedConfig], *, full: bool, force: bool
    ) -> list[SyncReport]:
        """Sync `feeds` now (a `syncd sync`): each one's row read (registered if new) and its
        skip reason checked, then every feed to poll leased in one transaction (as a worker of
        the store: another worker's crawl is skipped), then the polls, `concurrency` at a time.
        Reports in `feeds`' order; skipped feeds have none."""
        limit = asyncio.Semaphore(self.config.fetch.concurrency)
        results: dict[str, SyncReport] = {}

        async def check(feed: FeedConfig) -> FeedState | None:
            try:
                state = await self.store.ensure_feed(feed.name, feed.url, self.clock())
            except SyncdError as e:  # the store is unwritable: as the syncer reports it
                not_started(feed, e)
                return None
            reason = None if force else skip_reason(state, self.clock())
            if reason:
                log.warning("feed skipped", feed=feed.name, reason=reason, hint="use --force")
                return None
            return state

        def not_started(feed: FeedConfig, e: SyncdError) -> None:
            log.error("feed sync not started", feed=feed.name, error=str(e))
            results[feed.name] = SyncReport(
                feed.name, outcome="error", error=str(e), recorded=False
            )

        states = await asyncio.gather(*(check(f) for f in feeds))
        polled = [(f, s) for f, s in zip(feeds, states, strict=True) if s is not None]
        leases: dict[int, FeedLease] = {}
        if self.worker is not None and polled:
            try:
                leases = await self.worker.lease_many([s.id for _, s in polled])
            except SyncdError as e:
                for feed, _ in polled:
                    not_started(feed, e)
                polled = []
            for feed, state in polled:
                if state.id not in leases:
                    log.warning("feed skipped", feed=feed.name, reason="a worker is crawling it")
            polled = [(f, s) for f, s in polled if s.id in leases]

        async def one(feed: FeedConfig, lease: FeedLease | None) -> None:
            report: SyncReport | None = None
            try:
                async with limit:
                    report = await self.syncer.sync(feed, full=full, lease=lease, hand_back=True)
            finally:
                released = report is not None and report.released  # ended with its record
                if lease is not None and self.worker is not None and not released:
                    await self.worker.release(lease)
            if report.seqs:
                self.committed()
            results[feed.name] = report

        await asyncio.gather(*(one(f, leases.get(s.id)) for f, s in polled))
        return [results[f.name] for f in feeds if f.name in results]

    async def deliver_due(self) -> list[SinkReport]:
        return await self.dispatcher.deliver_due()

    async def run(self, stop: asyncio.Event) -> None:
        """The daemon: poll due feeds and deliver continuously until `stop` is set."""
        self._stop = stop
        self._deliver()
        polling = asyncio.create_task(self._poll_loop(stop))
        tasks = [polling]
        if self.housekeeping is not None:
            tasks.append(asyncio.create_task(self.housekeeping.run(stop)))
        if self.indexer is not None:
            tasks.append(asyncio.create_task(self.indexer.run(stop)))
        await stop.wait()
        # Crawls are abandoned safely: every committed page is whole, the rest is refetched.
        polling.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._stop_delivering()

    def _deliver(self) -> None:
        self._halt = asyncio.Event()
        self._delivering = asyncio.create_task(self.dispatcher.run(self._halt))

    async def _stop_delivering(self) -> None:
        """In-flight attempts finish (within the dispatcher's grace); the queue stays in the
        store, so nothing waiting is lost."""
        self._halt.set()
        if self._delivering is not None:
            await self._delivering
            self._delivering = None

    async def reconfigure(self, new: Config) -> None:
        """Take the feeds and sinks of `new` without a restart: feeds added are due at once,
        feeds removed are no longer polled, sinks are rebuilt (deliveries waiting for them stay
        queued and go out through the new ones). Raises ConfigError, having changed nothing, if
        `new` cannot be taken. Fetch, HTTP and store settings apply at the next start."""
        if self.sinks is None or self.new_dispatcher is None:
            raise SyncdError("this app cannot change its sinks")
        if (new.store.path, new.store.url) != (self.config.store.path, self.config.store.url):
            raise ConfigError(
                "cannot change while syncd runs (restart it)", path=new.source, key="store.path"
            )
        await validate_sinks(new)  # a bad sink option (an unknown type…) changes nothing
        self.config = new  # the poll loop and the router read it from here on
        running = self._delivering is not None
        await self._stop_delivering()
        await self.sinks.aclose()  # file sinks are closed before their successors open them
        self.sinks = AsyncExitStack()
        self.dispatcher = self.new_dispatcher(await _bind_sinks(self.sinks, new, self.clock))
        if running and not (self._stop is not None and self._stop.is_set()):
            self._deliver()

    async def _register(
        self, config: Config, known: Mapping[str, FeedConfig]
    ) -> dict[str, FeedConfig]:
        """The configured feeds by name; those new or changed since `known` are put in the
        store (a new one is due at once, a new URL replaces the stored one)."""
        changed = [feed for feed in config.feeds if known.get(feed.name) != feed]
        if changed:
            try:
                await self.spread_start(changed)
            except SyncdError as e:
                log.error("feeds not registered", feeds=len(changed), error=str(e))
        return {f.name: f for f in config.feeds}

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        worker = self.worker
        if worker is None:
            raise SyncdError("this app has no worker to lease feeds with")
        in_flight: dict[str, asyncio.Task[SyncReport | None]] = {}
        limit = asyncio.Semaphore(self.config.fetch.concurrency)
        # Feeds whose outcome could not be written (the store failing): their next due time in
        # the store did not move, so hold them here, leased, instead of re-crawling them every
        # tick; the lease is dropped when the hold ends.
        held: dict[str, tuple[datetime, FeedLease]] = {}

        async def one(feed: FeedConfig, lease: FeedLease) -> SyncReport | None:
            kept = False
            report: SyncReport | None = None
            try:
                async with limit:
                    report = await self.syncer.sync(feed, lease=lease, hand_back=True)
                if not report.recorded:
                    held[feed.name] = (
                        self.clock() + timedelta(seconds=UNRECORDED_HOLD_S),
                        lease,
                    )
                    kept = True
            finally:
                if not kept and (report is None or not report.released):
                    await worker.release(lease)
            if report.seqs:
                self.committed()
            if self.websub is not None:
                try:
                    await self.websub.polled(feed, report)
                except SyncdError as e:
                    log.error("websub subscription not recorded", feed=feed.name, error=str(e))
            return report

        seen: Config | None = None
        by_name: dict[str, FeedConfig] = {}
        removed = 0  # due feeds of the store that the config no longer lists
        rushes = 0  # asks in a row without a pause
        # Polls started and not finished: up to twice the fetch concurrency (half of them wait
        # for the semaphore), so a slot freed is taken at once; refilled when half are done.
        target = 2 * self.config.fetch.concurrency
        low = asyncio.Event()  # in flight dropped to half the target: time to refill

        def done(name: str, _task: object) -> None:
            in_flight.pop(name, None)
            if len(in_flight) <= target // 2:
                low.set()

        try:
            while not stop.is_set():
                if self.config is not seen:  # at start, and after a reload
                    starting = seen is None
                    seen = self.config
                    by_name = await self._register(seen, known=by_name)
                    await self._websub(
                        Subscriber.configured(self.websub, seen, starting=starting)
                        if self.websub
                        else None
                    )
                await self._websub(Subscriber.tick(self.websub) if self.websub else None)
                now = self.clock()
                for name, (until, lease) in list(held.items()):
                    if until <= now:
                        del held[name]
                        await worker.release(lease)
                room = target - len(in_flight)
                started, cut = 0, False
                if room > 0:
                    # One claim for what is due, not one per feed, and bounded: a backlog (the
                    # daemon was down) stays a queue in the store, not a task per feed here.
                    # Feeds this worker crawls or holds are leased, so never claimed again; feeds
                    # removed from the config may be, and are handed back: the limit leaves room.
                    ask = room + 2 * removed
                    try:
                        leases = await worker.claim(ask)
                    except SyncdError as e:
                        log.error("cannot read the schedule; retrying", error=str(e))
                        leases = []
                    cut = len(leases) >= ask
                    removed = sum(1 for lease in leases if lease.name not in by_name)
                    for lease in leases:
                        due = by_name.get(lease.name)
                        if started >= room or due is None or lease.name in in_flight:
                            await worker.release(lease)
                            continue
                        task = asyncio.create_task(one(due, lease))
                        in_flight[lease.name] = task
                        task.add_done_callback(functools.partial(done, lease.name))
                        started += 1
                self.scheduled.set()
                low.clear()
                if cut and started < room and rushes < 32:
                    # Removed feeds took the places: ask again at once, for twice as many more
                    # (`removed` grows each time, so this ends within a few asks).
                    rushes += 1
                    continue
                rushes = 0
                # More are due than were started: refill as soon as half are done.
                await _sleep_or_stop(stop, POLL_TICK_S, wake=low if room <= 0 or cut else None)
        finally:
            for task in list(in_flight.values()):
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
            for _, lease in held.values():
                await worker.release(lease)

    async def _websub(self, step: Awaitable[None] | None) -> None:
        """One step of the WebSub subscriber's upkeep; a store failure is logged and retried."""
        if step is None:
            return
        try:
            await step
        except SyncdError as e:
            log.error("websub upkeep failed; retrying", error=str(e))

    async def spread_start(self, feeds: Sequence[FeedConfig]) -> None:
        """Register the feeds; those synced before and overdue (the daemon was down) are polled
        at a random point of their interval rather than all at once. A new feed (its backfill)
        and an interrupted crawl stay due now. In bulk: a read and at most two transactions,
        however many feeds."""
        now = self.clock()
        await self.store.ensure_feeds([(f.name, f.url) for f in feeds], now)
        overdue = {name: feed_id for feed_id, name in await self.store.overdue_since_synced(now)}
        spread = []
        for feed in feeds:  # in config order: the same draws as one feed at a time
            feed_id = overdue.get(feed.name)
            if feed_id is not None:
                due = spread_first_poll(now, feed.interval_s, self.syncer.rng)
                spread.append((feed_id, due.at, due.reason))
        if spread:
            await self.store.reschedule_many(spread)


def skip_reason(state: FeedState, now: datetime) -> str | None:
    """Why a feed must not be fetched now even on request: the publisher asked us to wait."""
    if state.gone_at is not None:
        return "the publisher answered 410 Gone"
    if state.retry_after_until is not None and state.retry_after_until > now:
        return f"the publisher asked to wait until {state.retry_after_until.isoformat()}"
    return None


async def _sleep_or_stop(
    stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None
) -> None:
    """Return after `seconds`, or as soon as `stop` (or `wake`, if given) is set."""
    events = [stop] if wake is None else [stop, wake]
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _router(current: Callable[[], Config]) -> Callable[[str, EventDraft], list[str]]:
    """Routes by the current config: after a reload, events go to the sinks configured now."""

    def route(feed_name: str, event: EventDraft) -> list[str]:
        return [
            s.name for s in current().sinks if s.wants(str(event.type), feed_name, event.initial)
        ]

    return route


# Sink types that use no webhook session: with only these, none is made (nor the webhook module,
# with its options model, imported).
_SESSIONLESS = frozenset({"file", "exec"})


async def _bind_sinks(
    stack: AsyncExitStack, config: Config, clock: Clock, *, open_files: bool = True
) -> list[BoundSink]:
    """Build every configured sink through the registry; closed by `stack`. `open_files`: open
    file sinks now (the daemon: a torn tail is cut at start, not at the next event); otherwise
    each opens on its first write, so a pass with nothing to deliver never touches the file."""
    # Each sink's own dispatcher loop bounds its requests (max_in_flight), so the shared pool
    # must not add a cross-sink bottleneck: room for all of them, and no per-host cap (two sinks
    # on one receiver host must not queue behind each other's hanging requests).
    in_flight = sum(s.max_in_flight for s in config.sinks if s.type == "webhook")
    hook_session = None
    if any(s.type not in _SESSIONLESS for s in config.sinks):  # a plugin may borrow it too
        from syncd.sinks.webhook import session_for_webhooks

        hook_session = await stack.enter_async_context(
            session_for_webhooks(limit=max(16, in_flight + 8), limit_per_host=0)
        )
    context = SinkContext(webhook_session=hook_session, base_dir=config.base_dir, clock=clock)
    bound: list[BoundSink] = []
    for sc, sink in _create_sinks(config, context):
        if isinstance(sink, FileSink):
            said = await _open_file_sink(sink) if open_files else 0
            stack.push_async_callback(_close_file_sink, sink, said)
        else:
            stack.push_async_callback(sink.aclose)
        bound.append(BoundSink(sink, sc))
    return bound


def _create_sinks(config: Config, context: SinkContext) -> list[tuple[SinkConfig, Sink]]:
    """Every configured sink, built through a fresh registry from the options the config loader
    validated. Building opens nothing; a webhook reads its secret here."""
    registry = default_registry()
    built: list[tuple[SinkConfig, Sink]] = []
    for sc in config.sinks:
        own = dataclasses.replace(context, timeout_s=sc.timeout_s)
        try:
            sink = registry.create(sc.type, name=sc.name, options=sc.options, context=own)
        except ConfigError as e:
            raise ConfigError(str(e), path=config.source) from None
        built.append((sc, sink))
    return built


async def validate_sinks(config: Config) -> None:
    """Build and close every sink, so that `check-config` reports a bad sink option (an unknown
    type, a bad command) without opening the store, a file or a connection."""
    from syncd.sinks.webhook import session_for_webhooks

    async with session_for_webhooks() as session:
        context = SinkContext(webhook_session=session, base_dir=config.base_dir)
        for _, sink in _create_sinks(config, context):
            await sink.aclose()


async def _open_file_sink(sink: FileSink) -> int:
    """Open a file sink at start, so a tail torn by a crash is cut back before anyone reads on,
    and say so; return the bytes said to be cut. A file that cannot be opened is not fatal: its
    deliveries fail and are retried."""
    try:
        dropped = await sink.open()
    except OSError as e:
        log.warning("file sink not writable", sink=sink.name, error=f"{e.strerror}: {e.filename}")
        return 0
    _say_torn(sink, dropped)
    return dropped


async def _close_file_sink(sink: FileSink, said: int) -> None:
    """Close a file sink; a torn tail its first write cut (it was not opened at start) is
    said now."""
    await sink.aclose()
    _say_torn(sink, sink.torn_bytes_dropped - said)


def _say_torn(sink: FileSink, dropped: int) -> None:
    if dropped:
        log.warning(
            "torn tail cut from file sink", sink=sink.name, bytes=dropped, path=str(sink.path)
        )


@asynccontextmanager
async def build_dispatcher(
    config: Config, *, clock: Clock = system_clock, rng: random.Random | None = None
) -> AsyncIterator[Dispatcher]:
    """The store and the sinks only: for commands that deliver without syncing feeds."""
    async with AsyncExitStack() as stack:
        store = await open_store(config)
        stack.push_async_callback(store.close)
        worker = Worker(store, clock, config.store.lease_s, new_worker_id())
        await worker.start()
        stack.push_async_callback(worker.stop)
        sinks = await _bind_sinks(stack, config, clock)
        yield Dispatcher(
            store=store, sinks=sinks, clock=clock, rng=rng or random.Random(), worker=worker.id
        )


async def _fetch_and_parse(
    stack: AsyncExitStack, config: Config, store: Store | None = None
) -> tuple[Fetcher, ParserPool, aiohttp.ClientSession]:
    """The feed session (address guard, caps, User-Agent), the fetcher over it and the parser
    pool, closed by `stack`. Given a shared store (PostgreSQL), per-host pacing holds across
    all its workers; otherwise (SQLite: one daemon) within this process, without a write per
    request."""
    fc = config.fetch
    limits = FetchLimits(
        timeout_s=fc.timeout_s,
        max_body_bytes=fc.max_body_bytes,
        max_redirects=fc.max_redirects,
        user_agent=user_agent(fc.contact_url),
    )
    session = await stack.enter_async_context(
        create_feed_session(
            limits,
            allow_private_networks=fc.allow_private_networks,
            concurrency=fc.concurrency,
        )
    )
    throttle: Throttle = (
        ClusterThrottle(fc.per_host_rate, store.reserve_host_slot)
        if store is not None and config.store.url is not None
        else HostThrottle(fc.per_host_rate)
    )
    fetcher = Fetcher(session, throttle, limits)
    parser = await stack.enter_async_context(ParserPool(workers=fc.parse_workers))
    return fetcher, parser, session


@dataclass(frozen=True)
class FeedReader:
    """Fetch and parse, nothing else: no store, no sinks."""

    fetcher: PageFetcher
    parser: PageParser
    clock: Clock


@asynccontextmanager
async def build_reader(config: Config, *, clock: Clock = system_clock) -> AsyncIterator[FeedReader]:
    """The fetcher and parser a sync uses, without the store (`syncd preview`, which must
    write nothing)."""
    async with AsyncExitStack() as stack:
        fetcher, parser, _ = await _fetch_and_parse(stack, config)
        yield FeedReader(fetcher, parser, clock)


def _owner_lock(stack: AsyncExitStack, config: Config) -> OwnerLock:
    lock = OwnerLock.for_store(config.store.path)
    stack.callback(lock.release)
    return lock


@asynccontextmanager
async def build_app(
    config: Config,
    *,
    clock: Clock = system_clock,
    rng: random.Random | None = None,
    progress: Progress | None = None,
    metrics: Metrics | None = None,
    exclusive: bool = False,
) -> AsyncIterator[App]:
    """Everything syncd needs for one command, opened in order and closed in reverse.
    With `metrics`, the fetcher, parser, syncer and dispatcher report to it. `exclusive` (the
    daemon): on SQLite, refuse to start if another daemon holds this store; on PostgreSQL any
    number of daemons share it, each a worker leasing the feeds it crawls; and file sinks are
    opened at start. Otherwise (`syncd sync`) a sink opens nothing until it has an event to
    send: a pass of 304s opens no sink file."""
    rng = rng or random.Random()
    shared = config.store.url is not None
    async with AsyncExitStack() as stack:
        if exclusive and not shared:
            lock = DaemonLock.for_store(config.store.path)
            lock.acquire()
            stack.callback(lock.release)
        if exclusive and config.store.url is not None:
            # Shared by every daemon on the store; `syncd store copy` takes it exclusively, so
            # neither runs beside the other.
            from syncd.storage.postgres.daemonlock import DaemonPresence

            presence = await DaemonPresence.hold(config.store.url)
            stack.push_async_callback(presence.release)
        store = await open_store(config)
        stack.push_async_callback(store.close)
        worker = Worker(store, clock, config.store.lease_s, new_worker_id())
        await worker.start()
        stack.push_async_callback(worker.stop)
        fetcher: PageFetcher
        parser: PageParser
        fetcher, parser, session = await _fetch_and_parse(stack, config, store)
        if metrics is not None:
            from syncd.metrics import ObservedFetcher, ObservedParser

            fetcher, parser = ObservedFetcher(fetcher, metrics), ObservedParser(parser, metrics)
        # The sinks live in a stack of their own, which a reload replaces.
        sinks = AsyncExitStack()
        app: App | None = None
        stack.push_async_callback(lambda: (app.sinks if app and app.sinks else sinks).aclose())
        bound = await _bind_sinks(sinks, config, clock, open_files=exclusive)
        syncer = FeedSyncer(
            store=store,
            fetcher=fetcher,
            parser=parser,
            clock=clock,
            router=_router(lambda: app.config if app is not None else config),
            rng=rng,
            progress=progress,
            observer=metrics,
        )
        dispatcher = Dispatcher(
            store=store,
            sinks=bound,
            clock=clock,
            rng=rng,
            # On a shared store, the leases of gone workers are reclaimed instead.
            owner_lock=None if shared else _owner_lock(stack, config),
            observer=metrics,
            worker=worker.id,
        )

        def new_dispatcher(bound: list[BoundSink]) -> Dispatcher:
            # The first dispatcher reclaimed stale leases already (and holds the owner lock).
            return Dispatcher(
                store=store, sinks=bound, clock=clock, rng=rng, observer=metrics, worker=worker.id
            )

        app = App(
            config=config,
            store=store,
            syncer=syncer,
            dispatcher=dispatcher,
            clock=clock,
            sinks=sinks,
            new_dispatcher=new_dispatcher,
            worker=worker,
            housekeeping=Housekeeping(
                store=store,
                policy=lambda: retention_policy(
                    app.config.store if app is not None else config.store
                ),
                interval_s=config.store.prune_interval_s,
                clock=clock,
                observer=metrics,
            ),
            indexer=Indexer(store, observer=metrics),
        )
        app.websub = Subscriber(
            store=store,
            syncer=syncer,
            session=session,
            clock=clock,
            config=lambda: app.config if app is not None else config,
            committed=app.committed,
            rng=rng,
            observer=metrics,
            worker=worker,
        )
        stack.push_async_callback(app.websub.aclose)
        yield app
