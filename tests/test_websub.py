"""WebSub subscriber (issue 10): discovery, signatures, leases, retries and the push budget (pure),
several Link headers through the real fetcher, then a local hub against the real `syncd run`:
subscribe, verify, a signed push of an edit reaches the webhook sink as entry.updated without a
poll, a tampered push and a push to an unknown callback change nothing, a push that omits entries
deletes nothing, a thin ping fetches page 1; a 10 s lease is renewed, a push lost while syncd was
down is found by the poll after the restart, a feed dropped on reload is unsubscribed; a
safety-net poll that finds what no push delivered marks WebSub unreliable for the feed; the
body cap (413) and the per-callback rate (429); a feed moving to another hub is unsubscribed at
the old one and subscribed at the new one."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from syncd.fetch import Fetcher, FetchLimits, create_feed_session
from syncd.throttle import HostThrottle
from syncd.websub import (
    RETRY_CAP_S,
    RETRY_FIRST_S,
    Discovery,
    discover,
    is_live,
    next_step,
    renew_at,
    retry_at,
    signature_ok,
    take_push,
)
from tests.conftest import syncd
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.hub import keep_entries, serve_hub, websub_config
from tests.support.postgres import backend_store, scratch_schema
from tests.support.process import free_port
from tests.support.receiver import ReceiverServer
from tests.test_daemon_http import daemon, eventually, get

FEED = "https://example.org/feed"


def test_link_header_wins_over_the_document() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="https://doc-hub/"/>'
        b'<link rel="self" href="https://doc-self/"/></feed>'
    )
    headers = {"link": '<https://hdr-hub/>; rel="hub", </feed.xml>; rel="self"'}
    assert discover(headers, body, FEED) == Discovery(
        "https://hdr-hub/", "https://example.org/feed.xml"
    )
    assert discover({}, body, FEED) == Discovery("https://doc-hub/", "https://doc-self/")


def test_document_links_of_the_feed_not_of_an_entry() -> None:
    body = (
        b'<feed xmlns:atom10="http://www.w3.org/2005/Atom">'
        b'<atom10:link rel="hub" href="http://hub.example/" />'
        b'<entry><link rel="self" href="https://entry/"/></entry></feed>'
    )
    assert discover({}, body, FEED) == Discovery("http://hub.example/", FEED)
    entry_only = b'<feed><entry><link rel="hub" href="https://entry-hub/"/></entry></feed>'
    assert discover({}, entry_only, FEED) is None


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signatures(method: str) -> None:
    body = b"<feed/>"
    good = hmac.new(b"s3cret", body, getattr(hashlib, method)).hexdigest()
    assert signature_ok("s3cret", f"{method}={good}", body)
    assert not signature_ok("s3cret", f"{method}={good}", body + b" ")
    assert not signature_ok("other", f"{method}={good}", body)
    assert not signature_ok("s3cret", f"md5={good}", body)
    assert not signature_ok("s3cret", None, body)


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_renewal_falls_between_half_and_four_fifths_of_the_lease() -> None:
    rng = random.Random(7)
    points = [(renew_at(NOW, 1000, rng) - NOW).total_seconds() for _ in range(500)]
    assert min(points) >= 500 and max(points) <= 800
    assert max(points) - min(points) > 250  # spread, not one fixed point


def test_unverified_requests_back_off_to_a_day() -> None:
    rng = random.Random(1)
    delays = [(retry_at(NOW, n, rng) - NOW).total_seconds() for n in (1, 2, 3, 20)]
    assert RETRY_FIRST_S * 0.9 <= delays[0] <= RETRY_FIRST_S * 1.1
    assert delays[0] < delays[1] < delays[2]
    assert delays[3] == pytest.approx(RETRY_CAP_S, rel=0.1) and delays[3] <= RETRY_CAP_S


def test_next_step_of_a_subscription() -> None:
    past, future = NOW - timedelta(seconds=1), NOW + timedelta(hours=1)

    def step(
        state: str,
        attempts: int = 1,
        *,
        retry: datetime | None = None,
        renew: datetime | None = None,
    ) -> str | None:
        return next_step(state, attempts=attempts, retry=retry, renew=renew, now=NOW)

    assert step("subscribing", retry=past) == "subscribe"  # never verified: asked again
    assert step("subscribing", retry=future) is None
    assert step("renewing", retry=past) == "subscribe"
    assert step("active", renew=past) == "renew"
    assert step("active", renew=future) is None
    assert step("unsubscribing", 1, retry=past) == "unsubscribe"
    assert step("unsubscribing", 3, retry=past) == "close"
    assert step("denied", retry=past) is None  # a denial is not asked again
    assert is_live("renewing", future, NOW) and not is_live("active", past, NOW)
    assert not is_live("subscribing", None, NOW)


def test_push_budget_per_callback() -> None:
    budget = None
    for _ in range(3):
        budget = take_push(budget, 3, NOW)
        assert budget is not None
    assert take_push(budget, 3, NOW) is None  # the fourth within the minute: 429
    assert take_push(budget, 3, NOW + timedelta(seconds=20)) is not None  # one refilled


async def test_every_link_header_reaches_discovery() -> None:
    """Two `Link` fields (the hub in the second): the fetcher keeps both."""

    async def feed(_: web.Request) -> web.Response:
        response = web.Response(body=b"<feed/>", content_type="application/atom+xml")
        response.headers.add("Link", '</feed.xml>; rel="self"')
        response.headers.add("Link", '<https://hub.example/>; rel="hub"')
        return response

    app = web.Application()
    app.router.add_get("/feed", feed)
    async with TestServer(app, host="127.0.0.1") as server:
        limits = FetchLimits()
        async with create_feed_session(
            limits, allow_private_networks=True, concurrency=1
        ) as session:
            fetcher = Fetcher(session, HostThrottle(100.0), limits)
            result = await fetcher.fetch(str(server.make_url("/feed")))
        self_url = str(server.make_url("/feed.xml"))
    found = discover(result.headers, result.body, result.final_url)
    assert found == Discovery("https://hub.example/", self_url)


def _events(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT type, entry_id FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


def _page1_reads(model: BloggerFeed) -> int:
    return sum(not r.changes for r in model.log)


async def _status(config: Path) -> dict[str, Any]:
    result = await syncd(config, "status", "--json")
    assert result.code == 0, result.stderr
    feeds: dict[str, Any] = json.loads(result.stdout)["feeds"][0]
    return feeds


async def test_push_through_a_local_hub(tmp_path: Path, receiver: ReceiverServer) -> None:
    port = free_port()
    model = BloggerFeed()
    async with serve_hub() as hub_server, serve_feed(model) as feed_server:
        hub = hub_server.hub
        feed_url = feed_server.url
        model.set_headers({"Link": f'<{hub_server.url}>; rel="hub", <{feed_url}>; rel="self"'})
        feeds: list[dict[str, str | int]] = [
            {"name": "blog", "url": feed_url, "interval": "1h", "max_pages": 1}
        ]
        cap = 1_000_000
        config = websub_config(
            tmp_path, port, feeds, receiver.url, 'lease = "1d"\n', {"max_body_bytes": cap}
        )
        db = tmp_path / "syncd.db"
        async with daemon(config):
            await eventually(lambda: _async(bool(hub.subscriptions)))
            (sub,) = hub.subscriptions.values()
            assert sub.topic == feed_url
            assert sub.secret is not None and len(sub.secret) < 200
            assert sub.lease_seconds == 86400
            assert sub.callback.startswith(f"http://127.0.0.1:{port}/websub/")
            assert len(sub.callback.rsplit("/", 1)[1]) >= 40  # unguessable
            polls = len(model.log)

            # A verification for a subscription not pending (already active): 404.
            status, _ = await hub.verify_as(
                sub.callback,
                **{"hub.mode": "subscribe", "hub.topic": feed_url, "hub.challenge": "x"},
            )
            assert status == 404
            status, _ = await hub.verify_as(
                sub.callback,
                **{"hub.mode": "subscribe", "hub.topic": "https://other/", "hub.challenge": "x"},
            )
            assert status == 404

            before = _events(db)
            first, second = model.ids()[0], model.ids()[1]
            # A tampered push of an edit: answered 2xx, and nothing changes.
            model.edit_entry(second, title="Tampered")
            tampered = await _page1(feed_url)
            assert await hub.publish(feed_url, tampered, tamper=True) == [202]
            assert _events(db) == before
            # A push without a signature: the same.
            unsigned = type(sub)(sub.callback, sub.topic, None, None)
            assert await hub.push(unsigned, tampered) == 202
            assert _events(db) == before

            # A push to a callback the daemon does not know: 410 Gone.
            gone = sub.callback.rsplit("/", 1)[0] + "/not-a-subscription"
            assert await hub.push(sub, tampered, callback=gone) == 410

            # A fat ping of the one edited entry (sha1, as the Google hub signs): the other 24
            # entries are left out, and none of them is deleted.
            model.edit_entry(first, title="Pushed edit")
            body = keep_entries(await _page1(feed_url), 1)
            assert await hub.publish(feed_url, body, method="sha1") == [202]
            events = await receiver.receiver.wait_for(1, timeout=20)
            pushed = [e for e in events if e["type"] == "entry.updated"]
            assert [e["data"]["entry"]["title"] for e in pushed] == ["Pushed edit"]
            assert [t for t, _ in _events(db) if t == "entry.deleted"] == []
            # …and it arrived without a poll: the interval is an hour.
            assert len(model.log) == polls + 2  # the test's own two reads of page 1

            # A tombstone in a signed push is explicit evidence: it deletes (as in a poll).
            tombstone = (
                b'<at:deleted-entry xmlns:at="http://purl.org/atompub/tombstones/1.0" ref="'
                + second.encode()
                + b'" when="2030-01-01T00:00:00Z"/>'
            )
            assert await hub.publish(
                feed_url, keep_entries(body, 0)[:-7] + tombstone + b"</feed>"
            ) == [202]
            events = await receiver.receiver.wait_for(2, timeout=20)
            assert (events[1]["type"], events[1]["data"]["entry"]["id"]) == (
                "entry.deleted",
                second,
            )

            # A thin ping (no entries): page 1 is fetched, once a minute at most.
            reads = _page1_reads(model)
            assert await hub.publish(feed_url, keep_entries(body, 0)) == [202]
            await eventually(lambda: _async(_page1_reads(model) > reads))
            assert await hub.publish(feed_url, keep_entries(body, 0)) == [202]
            await asyncio.sleep(1.5)  # the poll loop looks every second
            assert _page1_reads(model) == reads + 1

            # Over [fetch] max_body_bytes: 413.
            assert len(body) < cap
            assert await hub.publish(feed_url, body + b" " * (cap + 1 - len(body))) == [413]

            shown = (await _status(config))["websub"]
            assert shown["state"] == "active" and shown["hub"] == hub_server.url
            assert shown["pushes"] == 4 and shown["rejected"] == 3
            assert shown["lease_expires_at"] is not None and shown["unreliable_at"] is None
            _, metrics = await get(f"http://127.0.0.1:{port}/metrics")
            assert 'syncd_websub_pushes_rejected_total{reason="signature"} 2.0' in metrics
            assert 'syncd_websub_pushes_rejected_total{reason="unknown_callback"} 1.0' in metrics
            assert "syncd_websub_pushes_accepted_total 4.0" in metrics
            assert 'syncd_websub_pushes_rejected_total{reason="too_large"} 1.0' in metrics
            _, page = await get(f"http://127.0.0.1:{port}/feeds/blog")
            assert f"active at {hub_server.url}, lease until" in page


async def test_lease_renewal_restart_and_reload(tmp_path: Path, receiver: ReceiverServer) -> None:
    """A 10 s lease is renewed before it ends, and the feed is not polled at its 2 s interval
    meanwhile; a push lost while syncd was down is found by the poll after the restart; a feed
    dropped from the config on reload is unsubscribed."""
    port = free_port()
    model = BloggerFeed()
    async with serve_hub() as hub_server, serve_feed(model) as feed_server:
        hub = hub_server.hub
        model.set_headers({"Link": f'<{hub_server.url}>; rel="hub"'})
        feeds: list[dict[str, str | int]] = [
            {"name": "blog", "url": feed_server.url, "interval": "2s", "max_pages": 1}
        ]
        config = websub_config(tmp_path, port, feeds, receiver.url, 'lease = "10s"\n')
        async with daemon(config):
            await eventually(lambda: _async(bool(hub.subscriptions)))
            (sub,) = hub.subscriptions.values()
            asked = hub.received[0]
            polls = len(model.log)
            renewals = lambda: _async(len(hub.requests) >= 2)  # noqa: E731
            await eventually(renewals, timeout=15)
            assert hub.requests[1]["hub.mode"] == "subscribe"
            assert hub.requests[1]["hub.callback"] == sub.callback
            assert hub.received[1] - asked < 10  # before the lease ended
            assert len(model.log) == polls  # the safety net's 24 h, not the 2 s interval

        first = model.ids()[0]
        model.edit_entry(first, title="Edited while syncd was down")
        with pytest.raises(aiohttp.ClientConnectionError):
            await hub.publish(feed_server.url, await _page1(feed_server.url))
        async with daemon(config) as proc:
            events = await receiver.receiver.wait_for(1, timeout=20)
            assert [e["data"]["entry"]["title"] for e in events] == ["Edited while syncd was down"]
            # Dropped on reload: unsubscribed at the hub, which verifies it.
            callback = (await eventually(lambda: _async(list(hub.subscriptions))))[0][0]
            other: list[dict[str, str | int]] = [
                {"name": "other", "url": "http://127.0.0.1:9/feed", "interval": "1h"}
            ]
            websub_config(tmp_path, port, other, receiver.url, 'lease = "10s"\n')
            proc.send_signal(signal.SIGHUP)
            unsubscribed = lambda: _async(  # noqa: E731
                any(
                    r["hub.mode"] == "unsubscribe" and r["hub.callback"] == callback
                    for r in hub.requests
                )
            )
            await eventually(unsubscribed)
            await eventually(lambda: _async(not hub.subscriptions))


async def test_poll_that_finds_a_missed_change_marks_websub_unreliable(
    tmp_path: Path, receiver: ReceiverServer
) -> None:
    port = free_port()
    model = BloggerFeed()
    async with serve_hub() as hub_server, serve_feed(model) as feed_server:
        model.set_headers({"Link": f'<{hub_server.url}>; rel="hub"'})
        feeds: list[dict[str, str | int]] = [
            {"name": "blog", "url": feed_server.url, "interval": "1h", "max_pages": 1}
        ]
        limits = 'websub_poll_interval = "1s"\nmax_pushes_per_minute = 2\n'
        config = websub_config(tmp_path, port, feeds, receiver.url, limits)
        async with daemon(config):
            await eventually(lambda: _async(bool(hub_server.hub.subscriptions)))
            # The callback's budget: two pushes a minute, the third is refused. The pushes carry
            # an unchanged entry: a thin ping (no entries) would make the next poll the ping's
            # fetch, which is not judged, and racing the edit below it could hide the miss.
            same = keep_entries(await _page1(feed_server.url), 1)
            pushes = [await hub_server.hub.publish(feed_server.url, same) for _ in range(3)]
            assert pushes == [[202], [202], [429]]
            # One safety-net poll under the subscription, then an edit no push delivers.
            before = _page1_reads(model)
            await eventually(lambda: _async(_page1_reads(model) > before))
            model.edit_entry(model.ids()[0], title="Never pushed")
            await receiver.receiver.wait_for(1, timeout=20)

            async def unreliable() -> dict[str, Any] | None:
                shown = await _status(config)
                return shown if shown["websub"]["unreliable_at"] else None

            shown = await eventually(unreliable)
            assert "no push delivered" in shown["websub"]["unreliable_reason"]
            assert "WebSub" not in shown["next_due_reason"]  # its own interval is back


async def _async(value: Any) -> Any:
    return value


async def _page1(url: str) -> bytes:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.read()


async def test_denied_subscription_is_recorded(tmp_path: Path, receiver: ReceiverServer) -> None:
    port = free_port()
    model = BloggerFeed()
    async with serve_hub() as hub_server, serve_feed(model) as feed_server:
        hub_server.hub.deny = "not on this hub"
        model.set_headers({"Link": f'<{hub_server.url}>; rel="hub"'})
        feeds: list[dict[str, str | int]] = [
            {"name": "blog", "url": feed_server.url, "interval": "1h", "max_pages": 1}
        ]
        config = websub_config(tmp_path, port, feeds, receiver.url)
        db = tmp_path / "syncd.db"

        async def denied() -> list[tuple[str, str]]:
            conn = sqlite3.connect(db)
            try:
                return conn.execute(
                    "SELECT state, reason FROM websub_subscriptions WHERE state = 'denied'"
                ).fetchall()
            except sqlite3.OperationalError:
                return []
            finally:
                conn.close()

        async with daemon(config):
            rows = await eventually(denied)
            assert rows == [("denied", "not on this hub")]
            assert hub_server.hub.subscriptions == {}
            # Without a self link the topic is the feed's URL.
            assert hub_server.hub.requests[0]["hub.topic"] == feed_server.url


async def test_a_hub_change_moves_the_subscription(
    tmp_path: Path, receiver: ReceiverServer
) -> None:
    """The feed starts advertising another hub: a poll sees it, syncd unsubscribes at the old hub
    (which verifies that) and subscribes at the new one, and the new hub's pushes are taken."""
    port = free_port()
    model = BloggerFeed()
    async with (
        serve_hub() as old_server,
        serve_hub() as new_server,
        serve_feed(model) as feed_server,
    ):
        old, new = old_server.hub, new_server.hub
        model.set_headers({"Link": f'<{old_server.url}>; rel="hub"'})
        feeds: list[dict[str, str | int]] = [
            {"name": "blog", "url": feed_server.url, "interval": "1h", "max_pages": 1}
        ]
        # the subscribed feed's safety-net poll every second: it is the poll that sees the change
        config = websub_config(tmp_path, port, feeds, receiver.url, 'websub_poll_interval = "1s"\n')
        async with daemon(config):
            (old_sub,) = await eventually(lambda: _async(list(old.subscriptions.values())))
            old_callback = old_sub.callback
            assert new.requests == []

            # the feed moves hubs in an update (an unchanged page is a 304, which says nothing)
            model.set_headers({"Link": f'<{new_server.url}>; rel="hub"'})
            model.edit_entry(model.ids()[1], title="Published after the move")
            moved = await receiver.receiver.wait_for(1, timeout=20)
            assert moved[0]["data"]["entry"]["title"] == "Published after the move"
            await eventually(lambda: _async(bool(new.subscriptions)), timeout=15)
            await eventually(lambda: _async(not old.subscriptions), timeout=15)
            assert [r["hub.mode"] for r in old.requests] == ["subscribe", "unsubscribe"]
            assert old.requests[1]["hub.callback"] == old_callback
            (sub,) = new.subscriptions.values()
            assert sub.callback != old_callback  # a fresh capability and secret per hub

            # the new hub's push is taken (and the old hub's callback is gone)
            model.edit_entry(model.ids()[0], title="Pushed by the new hub")
            body = keep_entries(await _page1(feed_server.url), 1)
            assert await new.publish(feed_server.url, body) == [202]
            events = await receiver.receiver.wait_for(2, timeout=20)
            assert events[1]["type"] == "entry.updated"
            assert events[1]["data"]["entry"]["title"] == "Pushed by the new hub"
            shown = (await _status(config))["websub"]
            assert shown["hub"] == new_server.url and shown["state"] == "active"
            assert shown["pushes"] == 1  # taken as a push (the 1 s poll may also have seen it)
            # the old hub's callback is no longer a subscription: 410 tells a hub to stop
            assert await old.push(old_sub, body) == 410


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_subscription_request_is_recorded_only_over_the_row_as_read(
    tmp_path: Path, backend: str
) -> None:
    """Two workers that read the same due subscription both try to record its request; only
    the first finds the row as it read it, so only one sends it to the hub."""
    t0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
    async with backend_store(backend, tmp_path) as store:
        feed_id = (await store.ensure_feed("blog", "http://blog.test/feed", t0)).id
        await store.websub.add_subscription(
            "cb1", feed_id=feed_id, hub="http://hub.test/", topic="http://blog.test/feed",
            secret="s", callback="http://me.test/websub/cb1", lease_s=600, now=t0,
            retry_at=t0,
        )  # fmt: skip
        read = await store.websub.subscription("cb1")
        assert read is not None and (read.requested_at, read.reason) == (t0, None)
        Values = dict[str, str | int | datetime | None]
        # What both workers read: an instant, and a NULL (None matches it).
        expect: Values = {"state": read.state, "requested_at": t0, "reason": None}
        t1 = t0 + timedelta(seconds=1)
        first: Values = {"state": "subscribing", "attempts": 2, "requested_at": t1}
        second: Values = {"state": "subscribing", "attempts": 9, "requested_at": t1}
        assert await store.websub.update_subscription("cb1", first, expect=expect) is True
        assert await store.websub.update_subscription("cb1", second, expect=expect) is False
        row = await store.websub.subscription("cb1")
        assert row is not None and (row.attempts, row.requested_at) == (2, t1)
        assert await store.websub.update_subscription("cb1", {"attempts": 3}) is True


async def test_a_starting_worker_leaves_renewal_to_the_live_one(
    tmp_path: Path, receiver: ReceiverServer
) -> None:
    """Two `syncd run` on one PostgreSQL store, behind one public URL: the second to start does
    not renew the subscription the first keeps (a hub would see one request per worker start);
    with no other worker alive, a start renews it (the hub may have lost it meanwhile)."""
    model = BloggerFeed()
    async with (
        serve_hub() as hub_server,
        serve_feed(model) as feed_server,
        scratch_schema() as url,
    ):
        hub = hub_server.hub
        model.set_headers({"Link": f'<{hub_server.url}>; rel="hub"'})
        feeds: list[dict[str, str | int]] = [
            {"name": "blog", "url": feed_server.url, "interval": "1h", "max_pages": 1}
        ]
        port = free_port()
        first = websub_config(tmp_path, port, feeds, receiver.url, store={"url": url})
        (tmp_path / "b").mkdir()
        second = tmp_path / "b" / "syncd.toml"
        # The same public_url (a load balancer in front of both), its own listening port.
        second.write_text(
            first.read_text().replace(
                f'listen = "127.0.0.1:{port}"', f'listen = "127.0.0.1:{free_port()}"'
            )
        )
        async with daemon(first):
            await eventually(lambda: _async(bool(hub.subscriptions)))
            assert [r["hub.mode"] for r in hub.requests] == ["subscribe"]
            async with daemon(second):
                b_port = second.read_text().split('listen = "127.0.0.1:')[1].split('"')[0]
                await eventually(lambda: _ready(int(b_port)))
                await asyncio.sleep(1.0)  # the start's renewals are sent before it is ready
                assert [r["hub.mode"] for r in hub.requests] == ["subscribe"]
        async with daemon(first):  # alone now: its start renews
            await eventually(lambda: _async(len(hub.requests) == 2))
            assert hub.requests[1]["hub.mode"] == "subscribe"


async def _ready(port: int) -> bool:
    status, _ = await get(f"http://127.0.0.1:{port}/healthz")
    return status == 200
