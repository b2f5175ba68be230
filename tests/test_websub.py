"""WebSub subscriber (issue 10): discovery and signatures (pure), then a local hub against the real
`syncd run`: subscribe, verify, a signed push of an edit reaches the webhook sink as
entry.updated, a tampered push and a push to an unknown callback change nothing."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from syncd.websub import Discovery, discover, signature_ok
from tests.conftest import webhook_sink, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.hub import serve_hub
from tests.support.process import free_port
from tests.support.receiver import ReceiverServer
from tests.test_daemon_http import daemon, eventually

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


def _events(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT type, entry_id FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


async def test_push_through_a_local_hub(tmp_path: Path, receiver: ReceiverServer) -> None:
    port = free_port()
    model = BloggerFeed()
    async with serve_hub() as hub_server, serve_feed(model) as feed_server:
        hub = hub_server.hub
        feed_url = feed_server.url
        model.set_headers({"Link": f'<{hub_server.url}>; rel="hub", <{feed_url}>; rel="self"'})
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": feed_url, "interval": "1h", "max_pages": 1}],
            sinks=[webhook_sink(receiver.url, initial="skip")],
            http={"listen": f"127.0.0.1:{port}"},
        )
        with config.open("a") as f:
            f.write(
                f'\n[websub]\npublic_url = "http://127.0.0.1:{port}"\n'
                'lease = "1d"\nallow_insecure_hubs = true\n'
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

            model.edit_entry(first, title="Pushed edit")
            body = await _page1(feed_url)
            assert await hub.publish(feed_url, body, method="sha1") == [202]
            events = await receiver.receiver.wait_for(1, timeout=20)
            pushed = [e for e in events if e["type"] == "entry.updated"]
            assert {e["data"]["entry"]["id"] for e in pushed} >= {first}
            # The first entry's update arrived without a poll (the interval is an hour).
            assert any(e["data"]["entry"]["title"] == "Pushed edit" for e in pushed)


async def _async(value: bool) -> bool:
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
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": feed_server.url, "interval": "1h", "max_pages": 1}],
            sinks=[webhook_sink(receiver.url, initial="skip")],
            http={"listen": f"127.0.0.1:{port}"},
        )
        with config.open("a") as f:
            f.write(
                f'\n[websub]\npublic_url = "http://127.0.0.1:{port}"\nallow_insecure_hubs = true\n'
            )
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
