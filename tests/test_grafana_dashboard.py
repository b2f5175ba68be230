"""The shipped Grafana dashboard queries only metrics syncd exports: every `syncd_…` series in
its expressions appears in a real exposition (a Metrics over a real store, after a crawl, a
fetch, a parse and a delivery were observed)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from syncd.metrics import Metrics
from syncd.model import DeliveryState
from syncd.overview import take
from syncd.storage.sqlite import SqliteStore
from syncd.sync import SyncReport

DASHBOARD = Path(__file__).resolve().parent.parent / "contrib" / "grafana" / "syncd-dashboard.json"


async def exported_series(tmp_path: Path) -> set[str]:
    store = SqliteStore.open(tmp_path / "syncd.db")
    try:
        now = datetime.now(UTC)
        await store.ensure_feed("blog", "http://127.0.0.1:1/feed", now)
        metrics = Metrics()
        metrics.read_store(lambda: take(store, now, ["archive"]))
        metrics.crawled(SyncReport(feed="blog", pages=2, created=3, completed=True, ms=40.0))
        metrics.fetched(200, 1234)
        metrics.parse_seconds.observe(0.01)
        metrics.delivered("archive", DeliveryState.DELIVERED)
        metrics.pushed("accepted")
        metrics.pushed("signature")
        text = (await metrics.render()).decode()
    finally:
        await store.close()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


async def test_every_dashboard_query_names_an_exported_series(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {name for e in exprs for name in re.findall(r"\bsyncd_[a-z_]+", e)}
    exported = await exported_series(tmp_path)
    assert len(queried) >= 15
    assert sorted(queried - exported) == []
    # and the dashboard shows every family syncd exports, bar the created-timestamps
    families = {
        re.sub(r"_(bucket|count|sum)$", "", n) for n in exported if not n.endswith("_created")
    }
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in queried}
    assert sorted(families - shown) == []


async def test_metrics_values_from_the_observers(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "syncd.db")
    try:
        now = datetime.now(UTC)
        await store.ensure_feed("blog", "http://127.0.0.1:1/feed", now)
        metrics = Metrics(per_feed_limit=1)  # one feed is not below 1: no per-feed series
        metrics.read_store(lambda: take(store, now, ["archive"]))
        metrics.crawled(SyncReport(feed="blog", pages=3, created=2, deleted=1, completed=True))
        metrics.crawled(SyncReport(feed="blog", outcome="error", completed=False))
        metrics.fetched(None, 0)
        metrics.delivered("archive", DeliveryState.DEAD)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families((await metrics.render()).decode())
            for s in f.samples
        }
    finally:
        await store.close()
    assert samples[("syncd_crawls_total", (("outcome", "ok"),))] == 1
    assert samples[("syncd_crawls_total", (("outcome", "error"),))] == 1
    assert samples[("syncd_events_total", (("type", "entry.created"),))] == 2
    assert samples[("syncd_events_total", (("type", "entry.deleted"),))] == 1
    assert samples[("syncd_crawl_pages_sum", ())] == 3
    assert samples[("syncd_fetches_total", (("status_code", "none"),))] == 1
    assert samples[("syncd_deliveries_total", (("outcome", "dead"), ("sink", "archive")))] == 1
    assert samples[("syncd_feeds", ())] == 1
    assert samples[("syncd_feeds_due", ())] == 1  # registered, never polled: due now
    assert samples[("syncd_deliveries_pending", (("sink", "archive"),))] == 0
    assert not any(name == "syncd_feed_last_success_timestamp_seconds" for name, _ in samples)


def test_last_success_is_kept_only_while_per_feed_series_can_show_it() -> None:
    # A daemon of a million feeds must not hold a million timestamps nobody exports.
    metrics = Metrics(per_feed_limit=2)
    for name in ("a", "b", "c", "a"):
        metrics.crawled(SyncReport(feed=name, completed=True))
    assert set(metrics.last_success) == {"a", "b"}
