"""Every Prometheus metric syncd exports, in one place (served at /metrics by `syncd.web`).

Two kinds: counters and histograms fed as things happen (the fetcher and parser are wrapped
here; the syncer and the dispatcher tell an observer), and gauges read from the store at scrape
time (`syncd.overview`), so they are right even for work another process did. Names start with
`syncd_` and carry their unit. The registry is this object's own, never prometheus-client's
global one: two daemons in one test process do not share figures.

Per-feed labels are given only while the feed count is below `per_feed_limit`, so that 100k
feeds do not become 100k series. This module observes; it never changes what it observes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd.errors import FetchError, SyncdError
from syncd.model import DeliveryState, FetchResult, ParsedPage, Validators
from syncd.overview import Overview
from syncd.storage.reports import PruneReport
from syncd.sync import PageFetcher, PageParser, SyncReport

if TYPE_CHECKING:
    from syncd.parse import Reuse

log = structlog.get_logger("syncd.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PAGES_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
PRUNED_KINDS = ("versions", "events", "deliveries", "attempts")
PARSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, *, per_feed_limit: int = 1000) -> None:
        self.per_feed_limit = per_feed_limit
        self.registry = CollectorRegistry(auto_describe=True)
        self.store: StoreCollector | None = None  # the store gauges, once `read_store` is called
        r = self.registry
        self.fetches = Counter(
            "syncd_fetches",
            "HTTP requests for feed pages, by response status ('none': no response).",
            ["status_code"],
            registry=r,
        )
        self.fetched_bytes = Counter(
            "syncd_fetched_bytes", "Feed page bodies received (decompressed).", registry=r
        )
        self.parse_seconds = Histogram(
            "syncd_parse_duration_seconds",
            "Time to parse one page in the parser pool, waiting for a worker included.",
            buckets=PARSE_BUCKETS,
            registry=r,
        )
        self.crawls = Counter(
            "syncd_crawls",
            "Feed polls (crawls) by recorded outcome: ok, not_modified, error, gone, throttled.",
            ["outcome"],
            registry=r,
        )
        self.crawl_pages = Histogram(
            "syncd_crawl_pages", "Pages fetched per crawl.", buckets=PAGES_BUCKETS, registry=r
        )
        self.crawl_seconds = Histogram(
            "syncd_crawl_duration_seconds", "Time per crawl, all its pages.", registry=r
        )
        self.events = Counter(
            "syncd_events", "Change events committed, by type.", ["type"], registry=r
        )
        self.deliveries = Counter(
            "syncd_deliveries",
            "Delivery attempts by sink and result: delivered, failed (will retry), dead.",
            ["sink", "outcome"],
            registry=r,
        )
        self.pruned_rows = Counter(
            "syncd_pruned_rows",
            "Rows the periodic prune deleted, by kind: versions, events, deliveries, attempts.",
            ["kind"],
            registry=r,
        )
        for kind in PRUNED_KINDS:  # each kind shows 0 until the first prune, not nothing
            self.pruned_rows.labels(kind)
        self.prune_seconds = Histogram(
            "syncd_prune_duration_seconds", "Time per periodic prune run.", registry=r
        )
        self.search_indexed = Counter(
            "syncd_search_indexed_entries",
            "Entries the background indexer brought into the search index (or out of it).",
            registry=r,
        )
        self.websub_accepted = Counter(
            "syncd_websub_pushes_accepted",
            "WebSub content distributions taken (thin pings included).",
            registry=r,
        )
        self.websub_rejected = Counter(
            "syncd_websub_pushes_rejected",
            "WebSub content distributions refused or ignored, by reason: signature,"
            " rate_limited, too_large, unparsable, unknown_callback.",
            ["reason"],
            registry=r,
        )
        # Last success observed by this process, beside the store's (which only knows the last
        # crawl): a feed whose latest crawl failed still shows when it last succeeded here.
        self.last_success: dict[str, float] = {}

    # ------------------------------------------------------------------ observers

    def crawled(self, report: SyncReport) -> None:
        self.crawls.labels(report.outcome).inc()
        self.crawl_pages.observe(report.pages)
        self.crawl_seconds.observe(report.ms / 1000)
        for kind, n in (
            ("entry.created", report.created),
            ("entry.updated", report.updated),
            ("entry.deleted", report.deleted),
        ):
            if n:
                self.events.labels(kind).inc(n)
        # Kept only while the per-feed gauges can be exported (below per_feed_limit feeds): a
        # daemon of a million feeds would otherwise hold a million entries nobody reads.
        kept = report.feed in self.last_success or len(self.last_success) < self.per_feed_limit
        if report.completed and report.recorded and kept:
            self.last_success[report.feed] = time.time()

    def pruned(self, report: PruneReport, seconds: float) -> None:
        self.prune_seconds.observe(seconds)
        for kind in PRUNED_KINDS:
            self.pruned_rows.labels(kind).inc(getattr(report, kind))

    def indexed(self, entries: int, seconds: float) -> None:
        self.search_indexed.inc(entries)

    def delivered(self, sink: str, state: DeliveryState) -> None:
        self.deliveries.labels(sink, str(state)).inc()

    def pushed(self, outcome: str) -> None:
        if outcome == "accepted":
            self.websub_accepted.inc()
        else:
            self.websub_rejected.labels(outcome).inc()

    def fetched(self, status: int | None, body_bytes: int) -> None:
        self.fetches.labels(str(status) if status is not None else "none").inc()
        if body_bytes:
            self.fetched_bytes.inc(body_bytes)

    # ------------------------------------------------------------------ scrape time

    def read_store(self, source: Callable[[], Awaitable[Overview]]) -> None:
        """Export the store's gauges, taken from `source()` at every scrape."""
        self.store = StoreCollector(source, self)
        self.registry.register(self.store)

    async def render(self) -> bytes:
        if self.store is not None:
            await self.store.take()
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """Gauges computed from a store snapshot, taken (`take`) when Prometheus scrapes."""

    def __init__(self, source: Callable[[], Awaitable[Overview]], metrics: Metrics) -> None:
        self.source = source
        self.metrics = metrics
        self.snapshot: Overview | None = None  # None: the store did not answer the last scrape

    async def take(self) -> None:
        try:
            self.snapshot = await self.source()
        except SyncdError as e:
            log.warning("metrics: store not readable", error=str(e))
            self.snapshot = None

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("syncd_store_up", "1 if the store answered this scrape.")
        o = self.snapshot
        if o is None:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = o.taken_at
        yield _gauge("syncd_feeds", "Feeds in the store.", len(o.feeds))
        yield _gauge("syncd_feeds_due", "Feeds due for a poll now.", o.due)
        yield _gauge(
            "syncd_feeds_backing_off", "Feeds whose last crawl failed (in back-off).", o.backing_off
        )
        yield _gauge(
            "syncd_schedule_lag_seconds",
            "How late the most overdue feed is (0: every feed polled on time).",
            o.schedule_lag_s,
        )
        yield _gauge(
            "syncd_search_pending_entries",
            "Entries waiting for the search index (it lags the store by this many).",
            o.search_pending,
        )
        sinks = o.sinks.values()
        yield _per_sink(
            "syncd_deliveries_pending",
            "Deliveries waiting (new or failed and scheduled again).",
            {s.name: s.pending for s in sinks},
        )
        yield _per_sink(
            "syncd_deliveries_dead", "Deliveries given up on.", {s.name: s.dead for s in sinks}
        )
        yield _per_sink(
            "syncd_delivery_lag_seconds",
            "Age of the oldest waiting delivery (0: nothing waits).",
            {s.name: s.lag_s(now) for s in sinks},
        )
        yield _per_sink(
            "syncd_sink_paused",
            "1 while the sink backs off from an unavailable receiver.",
            {s.name: int(s.paused(now)) for s in sinks},
        )
        yield _per_sink(
            "syncd_sink_disabled",
            "1 while the sink is disabled (410 Gone, or by the operator).",
            {s.name: int(s.disabled) for s in sinks},
        )
        if len(o.feeds) < self.metrics.per_feed_limit:
            last = GaugeMetricFamily(
                "syncd_feed_last_success_timestamp_seconds",
                "When the feed was last synced successfully (Unix time).",
                labels=["feed"],
            )
            seen = self.metrics.last_success
            for f in o.feeds:
                stored = f.last_success_at.timestamp() if f.last_success_at else None
                value = max(filter(None, (stored, seen.get(f.name))), default=None)
                if value is not None:
                    last.add_metric([f.name], value)
            yield last


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _per_sink(name: str, doc: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=["sink"])
    for sink, v in values.items():
        g.add_metric([sink], v)
    return g


class ObservedFetcher:
    """A PageFetcher that counts requests by status and the bytes they brought."""

    def __init__(self, inner: PageFetcher, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def fetch(
        self, url: str, validators: Validators | None = None, *, trusted_host: str | None = None
    ) -> FetchResult:
        try:
            result = await self.inner.fetch(url, validators, trusted_host=trusted_host)
        except FetchError as e:
            self.metrics.fetched(e.status, 0)
            raise
        self.metrics.fetched(result.status, len(result.body))
        return result


class ObservedParser:
    """A PageParser that times every parse."""

    def __init__(self, inner: PageParser, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def parse(
        self,
        body: bytes,
        *,
        url: str,
        headers: Mapping[str, str],
        ignore_fields: frozenset[str] = frozenset(),
        reuse: Reuse | None = None,
    ) -> ParsedPage:
        started = time.perf_counter()
        try:
            return await self.inner.parse(
                body, url=url, headers=headers, ignore_fields=ignore_fields, reuse=reuse
            )
        finally:
            self.metrics.parse_seconds.observe(time.perf_counter() - started)
