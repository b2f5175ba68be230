"""Tests of the end-to-end test fixtures: the Blogger-style feed server and the webhook receiver.

Every product end-to-end test relies on these behaving exactly as documented, so each control is
checked to change exactly what it claims and nothing else.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import itertools
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from standardwebhooks import Webhook

from tests.support.feedserver import (
    ID_PREFIX,
    SEED_PATH,
    BloggerFeed,
    FeedServer,
    RemoteFeed,
    format_time,
    parse_time,
    serve_feed,
    spawn_feed_server,
)
from tests.support.receiver import (
    HANG_SECONDS,
    TEST_SECRET,
    Receiver,
    ReceiverServer,
    Reply,
    parse_script,
    serve_receiver,
    spawn_receiver,
)

NS = {
    "a": "http://www.w3.org/2005/Atom",
    "os": "http://a9.com/-/spec/opensearchrss/1.0/",
    "thr": "http://purl.org/syndication/thread/1.0",
    "fb": "http://rssnamespace.org/feedburner/ext/1.0",
}
IDENTITY = {"Accept-Encoding": "identity"}
UPDATED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-07:00$")


# --------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class Page:
    total: int
    start: int
    per_page: int
    self_href: str | None
    next_href: str | None
    previous_href: str | None
    ids: list[str]
    updated: list[str]
    published: list[str]
    feed_updated: str


def parse_page(body: bytes) -> Page:
    root = ET.fromstring(body)

    def link(rel: str) -> str | None:
        for element in root.findall("a:link", NS):
            if element.get("rel") == rel:
                return element.get("href")
        return None

    entries = root.findall("a:entry", NS)
    return Page(
        total=int(root.findtext("os:totalResults", "", NS)),
        start=int(root.findtext("os:startIndex", "", NS)),
        per_page=int(root.findtext("os:itemsPerPage", "", NS)),
        self_href=link("self"),
        next_href=link("next"),
        previous_href=link("previous"),
        ids=[e.findtext("a:id", "", NS) for e in entries],
        updated=[e.findtext("a:updated", "", NS) for e in entries],
        published=[e.findtext("a:published", "", NS) for e in entries],
        feed_updated=root.findtext("a:updated", "", NS),
    )


async def get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with session.get(url, headers={**IDENTITY, **(headers or {})}) as response:
        return response.status, response.headers, await response.read()


async def walk(session: aiohttp.ClientSession, url: str) -> list[tuple[str, Page]]:
    pages: list[tuple[str, Page]] = []
    next_url: str | None = url
    while next_url is not None:
        status, _, body = await get(session, next_url)
        assert status == 200
        page = parse_page(body)
        pages.append((next_url, page))
        next_url = page.next_href
        assert len(pages) <= 100
    return pages


def page_url(server: FeedServer, page: int) -> str:
    return server.page_url(page)


@pytest.fixture
def feed() -> BloggerFeed:
    return BloggerFeed()


@pytest.fixture
async def server(feed: BloggerFeed) -> AsyncIterator[FeedServer]:
    async with serve_feed(feed) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as client:
        yield client


# --------------------------------------------------------------------------------------------
# the model


def test_time_helpers_round_trip() -> None:
    ms = parse_time("2017-07-21T12:45:12.144-07:00")
    assert format_time(ms) == "2017-07-21T12:45:12.144-07:00"
    assert parse_time("2017-07-21T19:45:12.144Z") == ms
    assert format_time(ms + 1) == "2017-07-21T12:45:12.145-07:00"


def test_synthesised_feed_shape(feed: BloggerFeed) -> None:
    entries = feed.entries()
    assert len(feed) == len(entries) == 515
    ids = [e.id for e in entries]
    assert len(set(ids)) == 515
    assert all(re.fullmatch(r"tag:blogger\.com,1999:blog-21224994\.post-\d{15,19}", i) for i in ids)
    assert len({e.link for e in entries}) == 515
    assert all(e.link.startswith("http://feedproxy.google.com/") for e in entries)
    published = [parse_time(e.published) for e in entries]
    assert all(a > b for a, b in itertools.pairwise(published)), "newest first"
    assert all(UPDATED_RE.match(e.updated) and UPDATED_RE.match(e.published) for e in entries)
    assert len({e.updated_ms % 1000 for e in entries}) > 200, "milliseconds vary"
    assert all(e.updated_ms >= parse_time(e.published) for e in entries)
    assert [e.position for e in entries] == list(range(515))
    assert feed.page_count() == 21


def test_page_one_reproduces_the_seed_byte_for_byte(feed: BloggerFeed) -> None:
    # with the seed's own self link and next-link host, page 1 is exactly the seed document
    page = feed.render_page(
        1,
        25,
        self_url="http://feeds.feedburner.com/blogspot/gJZg",
        nav_base="http://www.blogger.com",
    )
    assert page == SEED_PATH.read_bytes()
    assert feed.ids()[:25] == parse_page(SEED_PATH.read_bytes()).ids


def test_generation_is_deterministic() -> None:
    a, b = BloggerFeed(), BloggerFeed()
    assert a.ids() == b.ids()
    for start in (1, 251, 501):
        assert a.render_page(start, 25, self_url="x", nav_base="http://h") == b.render_page(
            start, 25, self_url="x", nav_base="http://h"
        )
    assert a.add_entry("Same") == b.add_entry("Same")


def test_small_and_empty_feeds() -> None:
    assert len(BloggerFeed(3)) == 3
    empty = BloggerFeed(0)
    page = parse_page(empty.render_page(1, 25))
    assert (page.total, page.ids, page.next_href) == (0, [], None)
    assert empty.page_count() == 1


def test_controls_reject_unknown_ids(feed: BloggerFeed) -> None:
    for call in (
        lambda: feed.touch(ID_PREFIX + "1", 5),
        lambda: feed.edit_entry(ID_PREFIX + "1"),
        lambda: feed.set_comment_count(ID_PREFIX + "1", 1),
        lambda: feed.delete_entry(ID_PREFIX + "1"),
        lambda: feed.page_of(ID_PREFIX + "1"),
    ):
        with pytest.raises(KeyError):
            call()


# --------------------------------------------------------------------------------------------
# paging over HTTP


async def test_walk_serves_515_entries_over_21_pages_switching_hosts(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    pages = await walk(session, server.url)
    assert len(pages) == 21
    assert [len(p.ids) for _, p in pages] == [25] * 20 + [15]
    assert [i for _, p in pages for i in p.ids] == feed.ids()
    for number, (url, page) in enumerate(pages, start=1):
        assert page.total == 515
        assert page.start == (number - 1) * 25 + 1
        assert page.per_page == 25
        assert page.self_href == url
        assert (page.previous_href is None) == (number == 1)
        if number == 21:
            assert page.next_href is None
            continue
        assert page.next_href is not None
        # the next link names the other host than the one this page was fetched from
        this_host, next_host = urlsplit(url).hostname, urlsplit(page.next_href).hostname
        assert {this_host, next_host} == {"127.0.0.1", "localhost"}
        assert next_host == ("localhost" if number % 2 else "127.0.0.1")
        query = f"start-index={number * 25 + 1}&max-results=25&redirect=false"
        assert page.next_href.endswith(f"/feeds/21224994/posts/default?{query}")
    assert all(UPDATED_RE.match(u) for _, p in pages for u in p.updated)
    hosts = [r.host.split(":")[0] for r in feed.log]
    assert hosts == ["127.0.0.1", "localhost"] * 10 + ["127.0.0.1"]
    assert feed.count(200) == 21


async def test_next_host_alternate_mode_always_names_localhost(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_feed(BloggerFeed(60), next_host="alternate") as server:
        pages = await walk(session, server.url)
    assert [len(p.ids) for _, p in pages] == [25, 25, 10]
    assert [urlsplit(p.next_href or "").hostname for _, p in pages[:-1]] == ["localhost"] * 2
    assert urlsplit(pages[1][0]).hostname == urlsplit(pages[2][0]).hostname == "localhost"


async def test_page_query_handling(server: FeedServer, session: aiohttp.ClientSession) -> None:
    status, _, body = await get(session, server.url + "?start-index=511&max-results=10")
    page = parse_page(body)
    assert status == 200 and len(page.ids) == 5 and page.next_href is None
    status, _, body = await get(session, server.url + "?start-index=600")
    assert status == 200 and parse_page(body).ids == []
    for query in ("?start-index=0", "?max-results=abc", "?max-results=0"):
        assert (await get(session, server.url + query))[0] == 400
    assert (await get(session, server.base + "/nowhere"))[0] == 404


async def test_etag_is_a_strong_hash_of_the_body_and_304s(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    status, headers, body = await get(session, server.url)
    etag = headers["ETag"]
    assert status == 200 and etag == '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    assert headers["Content-Type"].startswith("application/atom+xml")
    last_modified = headers["Last-Modified"]

    status, headers, body = await get(session, server.url, {"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    assert (await get(session, server.url, {"If-None-Match": f'"nope", W/{etag}'}))[0] == 304
    assert (await get(session, server.url, {"If-None-Match": '"nope"'}))[0] == 200
    assert (await get(session, server.url, {"If-Modified-Since": last_modified}))[0] == 304
    stale = "Thu, 01 Jan 2015 00:00:00 GMT"
    assert (await get(session, server.url, {"If-Modified-Since": stale}))[0] == 200
    # If-None-Match wins over If-Modified-Since
    both = {"If-None-Match": '"nope"', "If-Modified-Since": last_modified}
    assert (await get(session, server.url, both))[0] == 200

    feed.set_comment_count(feed.ids()[0], 3)
    status, headers, _ = await get(session, server.url, {"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag
    lm_after = aiohttp.helpers.parse_http_date(headers["Last-Modified"])
    lm_before = aiohttp.helpers.parse_http_date(last_modified)
    assert lm_after is not None and lm_before is not None and lm_after > lm_before
    assert (await get(session, server.url, {"If-Modified-Since": last_modified}))[0] == 200

    conditional = [r.conditional for r in feed.log]
    assert conditional == [False, True, True, True, True, True, True, True, True]
    assert feed.count(304) == 3 and feed.count(conditional=True) == 8


async def test_gzip_when_accepted(server: FeedServer, session: aiohttp.ClientSession) -> None:
    _, plain_headers, plain = await get(session, server.url)
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        async with raw.get(server.url, headers={"Accept-Encoding": "gzip"}) as response:
            packed = await response.read()
            assert response.headers["Content-Encoding"] == "gzip"
            gz_etag = response.headers["ETag"]
        assert gzip.decompress(packed) == plain
        assert gz_etag == plain_headers["ETag"][:-1] + '-gz"'
        for tag in (gz_etag, plain_headers["ETag"]):
            headers = {"Accept-Encoding": "gzip", "If-None-Match": tag}
            async with raw.get(server.url, headers=headers) as response:
                assert response.status == 304


async def test_unchanged_pages_stay_304_after_a_deep_comment_change(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    _, headers, _ = await get(session, server.url)
    feed.set_comment_count(feed.ids()[300], 2)
    assert (await get(session, server.url, {"If-None-Match": headers["ETag"]}))[0] == 304


# --------------------------------------------------------------------------------------------
# every control changes exactly what it claims


async def test_set_comment_count_changes_only_thr_total_and_replies_title(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    target = feed.ids()[300]
    number = feed.page_of(target)
    assert number == 13
    url = page_url(server, number)
    before = (await get(session, url))[2]
    untouched = [(await get(session, page_url(server, n)))[2] for n in (1, 12, 14, 21)]
    old_xml = feed.entry(target).xml

    feed.set_comment_count(target, 7)

    new_xml = old_xml.replace("<thr:total>0</thr:total>", "<thr:total>7</thr:total>").replace(
        'title="0 Comments"', 'title="7 Comments"'
    )
    assert new_xml != old_xml and feed.entry(target).xml == new_xml
    after = (await get(session, url))[2]
    assert after == before.replace(old_xml.encode(), new_xml.encode())
    assert [(await get(session, page_url(server, n)))[2] for n in (1, 12, 14, 21)] == untouched
    assert feed.entry(target).comments == 7


async def test_touch_moves_updated_by_exactly_delta_ms(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    target = feed.ids()[130]
    url = page_url(server, feed.page_of(target))
    before = (await get(session, url))[2]
    old = feed.entry(target)
    for delta in (1, 1234, -500, -86_400_000):
        feed.touch(target, delta)
        after = (await get(session, url))[2]
        page = parse_page(after)
        updated = page.updated[page.ids.index(target)]
        assert UPDATED_RE.match(updated)
        assert parse_time(updated) - old.updated_ms == delta
        # nothing else in the page changes: same bytes once the updated text is put back
        assert after.replace(updated.encode(), old.updated.encode(), 1) == before
        feed.touch(target, -delta)
    assert feed.entry(target) == old


async def test_edit_entry_changes_title_content_and_updated(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    target = feed.ids()[40]
    old = feed.entry(target)
    new_updated = feed.edit_entry(target, title="Edited & improved", content="<p>New text</p>")
    new = feed.entry(target)
    assert new.updated == new_updated and new.updated_ms == old.updated_ms + 1000
    assert new.title == "Edited & improved"
    assert '<title type="text">Edited &amp; improved</title>' in new.xml
    assert 'title="Edited &amp; improved"' in new.xml  # the alternate link's title attribute
    assert "&lt;p&gt;New text&lt;/p&gt;</content>" in new.xml
    assert (new.id, new.link, new.published, new.position) == (
        old.id,
        old.link,
        old.published,
        old.position,
    )

    before = feed.entry(target)
    feed.edit_entry(target, bump_updated_ms=0)  # a silent edit: content only
    silent = feed.entry(target)
    assert silent.updated == before.updated and silent.xml != before.xml
    assert silent.title == before.title and "Edit 1." in silent.xml

    feed.edit_entry(target, bump_updated_ms=250)  # two edits within one second differ
    assert feed.entry(target).updated_ms == silent.updated_ms + 250

    _, _, body = await get(session, page_url(server, feed.page_of(target)))
    page = parse_page(body)
    assert page.updated[page.ids.index(target)] == feed.entry(target).updated


async def test_feed_level_updated_follows_newest_entry_update(feed: BloggerFeed) -> None:
    start = parse_page(feed.render_page()).feed_updated
    assert start == "2017-07-21T12:45:12.106-07:00"  # the seed's
    deep = feed.ids()[400]
    feed.set_comment_count(deep, 5)
    assert parse_page(feed.render_page()).feed_updated == start
    feed.touch(deep, 10**12)  # far in the future: the feed's <updated> follows
    assert parse_page(feed.render_page()).feed_updated == feed.entry(deep).updated

    frozen = BloggerFeed(30, track_feed_updated=False)
    frozen.touch(frozen.ids()[5], 10**12)
    assert parse_page(frozen.render_page()).feed_updated == start


async def test_add_entry_goes_on_top_and_shifts_every_entry_by_one(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    before = feed.entries()
    new_id = feed.add_entry(title="Brand new")
    assert new_id.startswith(ID_PREFIX) and new_id not in {e.id for e in before}
    after = feed.entries()
    assert after[0].id == new_id and after[0].title == "Brand new"
    assert parse_time(after[0].published) > parse_time(before[0].published)
    assert [e.id for e in after[1:]] == [e.id for e in before]
    assert all(feed.entry(e.id).position == e.position + 1 for e in before)
    assert feed.page_of(before[24].id) == 2 and feed.page_of(before[23].id) == 1
    assert feed.page_of(new_id) == 1
    assert len({e.link for e in after}) == 516

    pages = await walk(session, server.url)
    assert [len(p.ids) for _, p in pages] == [25] * 20 + [16]
    assert pages[0][1].total == 516 and pages[0][1].ids[0] == new_id

    older = feed.add_entry("Back-dated", published_ms=parse_time(before[10].published) - 1)
    assert feed.entry(older).position == 12  # after the new one and the 11 newer seed entries


async def test_delete_entry_shifts_later_entries_up(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    before = feed.entries()
    gone = before[3].id
    feed.delete_entry(gone)
    assert gone not in feed.ids() and len(feed) == 514
    assert feed.entry(before[25].id).position == 24 and feed.page_of(before[25].id) == 1
    assert feed.entry(before[2].id).position == 2
    pages = await walk(session, server.url)
    assert [len(p.ids) for _, p in pages] == [25] * 20 + [14]
    assert gone not in {i for _, p in pages for i in p.ids}
    with pytest.raises(KeyError):
        feed.delete_entry(gone)


# --------------------------------------------------------------------------------------------
# faults


async def test_malformed_pages(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    url = page_url(server, 2)
    good = (await get(session, url))[2]
    feed.set_malformed(2)
    status, headers, body = await get(session, url)
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    assert good.startswith(body) and len(body) < len(good)
    assert body.rfind(b"<entry>") > body.rfind(b"</entry>"), "cut inside the last entry"
    with pytest.raises(ET.ParseError):
        ET.fromstring(body)
    assert (await get(session, page_url(server, 1)))[0] == 200
    parse_page((await get(session, page_url(server, 3)))[2])

    feed.set_malformed(2, "empty")
    assert (await get(session, url))[2] == b""
    feed.set_malformed(2, "broken")
    broken = (await get(session, url))[2]
    assert len(broken) == len(good)
    with pytest.raises(ET.ParseError):
        ET.fromstring(broken)
    feed.set_malformed(None)
    assert (await get(session, url))[2] == good
    assert [r.fault for r in feed.log] == [None, "truncated", None, None, "empty", "broken", None]
    with pytest.raises(ValueError):
        feed.set_malformed(2, "weird")  # type: ignore[arg-type]


async def test_html_error_page_with_200(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    feed.set_html_error(1)
    status, headers, body = await get(session, server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>") and b"<feed" not in body
    assert (await get(session, page_url(server, 2)))[0] == 200
    feed.set_html_error(None)
    assert parse_page((await get(session, server.url))[2]).total == 515


async def test_set_status_with_headers_and_times(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    feed.set_status(2, 503, {"Retry-After": "120"})
    status, headers, _ = await get(session, page_url(server, 2))
    assert status == 503 and headers["Retry-After"] == "120"
    assert (await get(session, page_url(server, 2)))[0] == 503
    assert (await get(session, server.url))[0] == 200
    feed.set_status(2, None)
    assert (await get(session, page_url(server, 2)))[0] == 200

    feed.set_status(None, 429, {"Retry-After": "1"}, times=2)
    feed.set_status(3, 410)
    statuses = [(await get(session, page_url(server, n)))[0] for n in (1, 3, 2, 1, 3)]
    assert statuses == [429, 410, 429, 200, 410]
    feed.clear_faults()
    assert (await get(session, page_url(server, 3)))[0] == 200
    assert feed.count(429) == 2 and feed.count(410) == 2 and feed.count(503) == 2


async def test_set_delay_makes_clients_time_out(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    feed.set_delay(1.0, page=1)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(server.url, timeout=aiohttp.ClientTimeout(total=0.1)) as response:
            await response.read()
    assert time.monotonic() - started < 0.9
    for _ in range(100):  # the server notices the client left and logs an unanswered request
        if feed.log:
            break
        await asyncio.sleep(0.01)
    assert feed.log[0].status is None

    started = time.monotonic()
    assert (await get(session, page_url(server, 2)))[0] == 200
    assert time.monotonic() - started < 0.9, "the delay is for page 1 only"
    feed.set_delay(0.2)
    started = time.monotonic()
    assert (await get(session, page_url(server, 2)))[0] == 200
    assert time.monotonic() - started >= 0.2
    feed.set_delay(0)
    feed.set_delay(0, page=1)
    started = time.monotonic()
    assert (await get(session, server.url))[0] == 200
    assert time.monotonic() - started < 0.9


async def test_trickle_and_extra_headers(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    url = page_url(server, 21)
    good = (await get(session, url))[2]
    feed.set_trickle(0.05, chunk=100_000, page=21)
    feed.set_headers({"Cache-Control": "max-age=600"}, page=21)
    started = time.monotonic()
    status, headers, body = await get(session, url, {"Accept-Encoding": "gzip"})
    assert (status, body) == (200, good) and "Content-Encoding" not in headers
    assert time.monotonic() - started >= 0.1
    assert headers["Cache-Control"] == "max-age=600"
    assert "Cache-Control" not in (await get(session, server.url))[1]
    assert feed.log[1].fault == "trickle"


async def test_request_log_records_path_host_conditional_and_status(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    await get(session, server.url)
    await get(session, server.page_url(2, alternate=True), {"If-None-Match": '"x"'})
    feed.set_status(3, 503)
    await get(session, server.page_url(3))
    log = feed.log
    assert [r.path for r in log] == [
        "/feeds/posts/default",
        "/feeds/21224994/posts/default?start-index=26&max-results=25&redirect=false",
        "/feeds/21224994/posts/default?start-index=51&max-results=25&redirect=false",
    ]
    assert [r.host for r in log] == [
        f"127.0.0.1:{server.port}",
        f"localhost:{server.port}",
        f"127.0.0.1:{server.port}",
    ]
    assert [r.page for r in log] == [1, 2, 3]
    assert [r.conditional for r in log] == [False, True, False]
    assert [r.status for r in log] == [200, 200, 503]
    assert log[0].finished >= log[0].started
    assert feed.count() == 3 and feed.count(200) == 2 and feed.count(host="localhost") == 1
    assert feed.count(page=3, status=503) == 1
    feed.reset_log()
    assert feed.log == [] and feed.count() == 0


# --------------------------------------------------------------------------------------------
# control API and subprocess


async def test_control_api_over_http(server: FeedServer, feed: BloggerFeed) -> None:
    async with RemoteFeed(server.control_url) as remote:
        new_id = await remote.add_entry("Remote post")
        assert feed.ids()[0] == new_id and await remote.page_of(new_id) == 1
        target = feed.ids()[100]
        old_ms = feed.entry(target).updated_ms
        assert parse_time(await remote.touch(target, 42)) == old_ms + 42
        await remote.set_comment_count(target, 4)
        assert feed.entry(target).comments == 4
        await remote.edit_entry(target, title="Via HTTP")
        assert feed.entry(target).title == "Via HTTP"
        await remote.set_status(2, 503, {"Retry-After": "9"}, times=1)
        await remote.set_delay(0.01)
        await remote.set_malformed(4)
        await remote.set_html_error(5)
        await remote.delete_entry(new_id)
        assert new_id not in await remote.ids()
        await remote.clear_faults()
        assert await remote.count() == 0
        with pytest.raises(KeyError):
            await remote.touch(new_id, 1)
        with pytest.raises(ValueError):
            await remote.call("touch", entry_id=target, bogus=1)
        with pytest.raises(KeyError):
            await remote.call("no_such_op")
        assert await remote.log() == []
        state = await remote.call("state")
        assert state["entries"] == 515


async def test_feed_server_subprocess(session: aiohttp.ClientSession) -> None:
    async with spawn_feed_server(entries=30) as spawned:
        pages = await walk(session, spawned.url)
        assert [len(p.ids) for _, p in pages] == [25, 5]
        new_id = await spawned.control.add_entry("Out of process")
        assert parse_page((await get(session, spawned.url))[2]).ids[0] == new_id
        records = await spawned.control.log()
        assert [r.status for r in records] == [200, 200, 200]
        assert records[1].host == f"localhost:{spawned.server.port}"
        process = spawned.process
    assert process.returncode == 0  # SIGTERM is a clean shutdown


# --------------------------------------------------------------------------------------------
# the webhook receiver


def signed(payload: dict[str, Any], secret: str = TEST_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    now = datetime.now(tz=UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": str(payload["id"]),
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(str(payload["id"]), now, body.decode()),
    }
    return body, headers


@pytest.fixture
async def rx() -> AsyncIterator[ReceiverServer]:
    async with serve_receiver(TEST_SECRET) as running:
        yield running


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, CIMultiDictProxy[str]]:
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status, response.headers


async def test_receiver_verifies_a_signed_request(
    rx: ReceiverServer, session: aiohttp.ClientSession
) -> None:
    payload = {"id": "evt_1", "type": "entry.created", "data": {"seq": 1}}
    body, headers = signed(payload)
    assert (await post(session, rx.url, body, headers))[0] == 200
    [request] = rx.receiver.requests
    assert request.verified and request.verify_error is None
    assert request.body == body and request.webhook_id == "evt_1"
    assert request.headers["content-type"] == "application/json"
    assert request.method == "POST" and request.path == "/hook"
    assert abs(request.received_at - time.time()) < 5
    assert rx.events() == [payload] and rx.ids() == ["evt_1"]


async def test_receiver_flags_bad_signatures(
    rx: ReceiverServer, session: aiohttp.ClientSession
) -> None:
    body, headers = signed({"id": "evt_2"}, secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQQ==")
    await post(session, rx.url, body, headers)
    good_body, good_headers = signed({"id": "evt_3"})
    await post(session, rx.url, good_body + b" ", good_headers)  # body altered after signing
    await post(session, rx.url, good_body, {"content-type": "application/json"})  # unsigned
    stale = {**good_headers, "webhook-timestamp": str(int(time.time()) - 600)}
    await post(session, rx.url, good_body, stale)
    requests = rx.receiver.requests
    assert [r.verified for r in requests] == [False] * 4
    assert all(r.verify_error for r in requests)
    assert rx.receiver.count(verified=False) == 4
    assert len(rx.events()) == 4  # answered 200 by default all the same


async def test_receiver_script_then_default(session: aiohttp.ClientSession) -> None:
    script: list[Reply | int] = [Reply(503, {"Retry-After": "7"}), 500, Reply(410)]
    async with serve_receiver(script=script, default=204) as rx:
        answers = []
        for n in range(5):
            body, headers = signed({"id": f"evt_{n}"})
            answers.append(await post(session, rx.url, body, headers))
        assert [status for status, _ in answers] == [503, 500, 410, 204, 204]
        assert answers[0][1]["Retry-After"] == "7"
        assert rx.ids() == ["evt_3", "evt_4"]
        rx.receiver.push(502)
        body, headers = signed({"id": "evt_5"})
        assert (await post(session, rx.url, body, headers))[0] == 502
        assert rx.receiver.count(502) == 1 and rx.receiver.count() == 6
        assert rx.receiver.pending_script == []


async def test_receiver_delay_hang_and_wait_for(session: aiohttp.ClientSession) -> None:
    async with serve_receiver(script=[Reply(delay=0.2), Reply.hang()]) as rx:
        body, headers = signed({"id": "evt_slow"})
        started = time.monotonic()
        assert (await post(session, rx.url, body, headers))[0] == 200
        assert time.monotonic() - started >= 0.2

        body, headers = signed({"id": "evt_hung"})
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                rx.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=0.2)
            ) as response:
                await response.read()
        hung = (await rx.receiver.wait_for_requests(2))[1]
        assert hung.reply.delay == HANG_SECONDS and not hung.answered and not hung.accepted
        assert rx.ids() == ["evt_slow"]

        waiter = asyncio.create_task(rx.wait_for(2, timeout=5))
        await asyncio.sleep(0.05)
        body, headers = signed({"id": "evt_late"})
        await post(session, rx.url, body, headers)
        assert [e["id"] for e in await waiter] == ["evt_slow", "evt_late"]
        with pytest.raises(TimeoutError, match="2 of 3 events"):
            await rx.wait_for(3, timeout=0.05)


def test_parse_script() -> None:
    assert parse_script("") == []
    assert parse_script("500, 503@0.5,hang,200") == [
        Reply(500),
        Reply(503, delay=0.5),
        Reply.hang(),
        Reply(200),
    ]
    assert parse_script('[429, {"status": 503, "headers": {"Retry-After": "3"}}]') == [
        Reply(429),
        Reply(503, {"Retry-After": "3"}),
    ]
    with pytest.raises(ValueError):
        parse_script("abc")


def test_receiver_defaults() -> None:
    receiver = Receiver()
    assert receiver.default == Reply(200)
    receiver.hang()
    assert receiver.default.delay == HANG_SECONDS
    receiver.hang(False)
    receiver.set_default(503)
    assert receiver.default == Reply(503)


async def test_receiver_subprocess_logs_requests(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    log_path = tmp_path / "received.jsonl"
    async with spawn_receiver(log_path, status_script="500") as spawned:
        for n in range(2):
            body, headers = signed({"id": f"evt_{n}"})
            status = (await post(session, spawned.url, body, headers))[0]
            assert status == (500 if n == 0 else 200)
        body, headers = signed({"id": "evt_bad"}, secret="whsec_QkJCQkJCQkJCQkJCQkJCQg==")
        await post(session, spawned.url, body, headers)
        process = spawned.process
        records = spawned.records()
        assert [r["status"] for r in records] == [500, 200, 200]
        assert [r["verified"] for r in records] == [True, True, False]
        assert [json.loads(r["body"])["id"] for r in records] == ["evt_0", "evt_1", "evt_bad"]
        assert [e["id"] for e in spawned.events()] == ["evt_1", "evt_bad"]
        assert records[0]["headers"]["webhook-id"] == "evt_0"
    assert process.returncode == 0


# --------------------------------------------------------------------------------------------
# freshness: the changes query, misstated totals, bot shields


async def test_changes_query_lists_by_updated_since_an_instant_with_paging(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    newest = feed.newest_updated_ms
    deep = feed.ids()[430]
    feed.edit_entry(deep, updated_ms=newest + 5000)
    url = f"{server.url}?orderby=updated&updated-min={format_time(newest - 1)}"
    status, _, body = await get(session, url)
    page = parse_page(body)
    assert status == 200 and page.ids[0] == deep
    assert page.total == len(page.ids) == sum(e.updated_ms >= newest - 1 for e in feed.entries())
    # Every entry updated since the instant, newest first, paged, next links keep the query.
    all_since = await walk(session, f"{server.url}?orderby=updated&updated-min=2000-01-01T00:00Z")
    assert len(all_since) == 21
    assert all("orderby=updated" in u and "updated-min=" in u for u, _ in all_since[1:])
    stamps = [parse_time(t) for _, p in all_since for t in p.updated]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 515
    assert feed.count() == 22 and sum(r.changes for r in feed.log) == 22

    feed.set_changes("ignore")  # FeedBurner: the plain listing
    assert parse_page((await get(session, url))[2]).total == 515
    feed.set_changes("refuse")
    assert (await get(session, url))[0] == 400
    assert (await get(session, server.url))[0] == 200
    feed.clear_faults()
    assert (await get(session, f"{server.url}?orderby=updated&updated-min=soon"))[0] == 400


async def test_misstated_totals_and_shield_pages(
    server: FeedServer, feed: BloggerFeed, session: aiohttp.ClientSession
) -> None:
    feed.set_total_results(600, page=2)
    assert parse_page((await get(session, page_url(server, 2)))[2]).total == 600
    assert parse_page((await get(session, server.url))[2]).total == 515
    feed.set_total_results(None, page=2)
    assert parse_page((await get(session, page_url(server, 2)))[2]).total == 515

    feed.set_shield(503)
    status, headers, body = await get(session, server.url)
    assert status == 503 and headers["cf-mitigated"] == "challenge"
    assert headers["Content-Type"].startswith("text/html") and b"challenge-platform" in body
    feed.set_shield(403, page=2)
    assert (await get(session, page_url(server, 2)))[0] == 403
    feed.clear_faults()
    assert (await get(session, server.url))[0] == 200
    assert feed.log[-2].fault == "shield" and feed.log[-1].fault is None
