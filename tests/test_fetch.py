"""The fetch stage against a real aiohttp server on 127.0.0.1 (random port), started in the test."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from syncd.errors import BlockedAddressError, FetchError, GoneError
from syncd.fetch import Fetcher, FetchLimits, create_feed_session, parse_retry_after
from syncd.model import FetchResult, Validators
from syncd.throttle import HostThrottle

FEED = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>'
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
Seen = tuple[str, str, dict[str, str]]  # (Host header, path, request headers)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
APP_SEEN: web.AppKey[list[Seen]] = web.AppKey("seen")


async def _feed(request: web.Request) -> web.Response:
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304, headers={"ETag": ETAG})
    return web.Response(
        body=FEED,
        content_type="application/atom+xml",
        headers={"ETag": ETAG, "Last-Modified": LAST_MODIFIED},
    )


async def _gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(FEED),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/atom+xml"},
    )


async def _bomb(request: web.Request) -> web.Response:
    # ~5 KB on the wire, 5 MB once decompressed.
    return web.Response(
        body=gzip.compress(b"\0" * 5_000_000),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/atom+xml"},
    )


async def _padded(request: web.Request) -> web.StreamResponse:
    # 2 KB of empty deflate blocks, then the feed: tiny once decompressed, big on the wire.
    response = web.StreamResponse(
        headers={"Content-Encoding": "gzip", "Content-Type": "application/atom+xml"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    deflate = zlib.compressobj(wbits=31)
    for _ in range(400):
        await response.write(deflate.compress(b"") + deflate.flush(zlib.Z_FULL_FLUSH))
    await response.write(deflate.compress(FEED) + deflate.flush())
    await response.write_eof()
    return response


async def _bad_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("ftp://127.0.0.1/feed")


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 2000, content_type="application/atom+xml")


async def _big_chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/atom+xml"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(10):
        await response.write(b"x" * 200)
    await response.write_eof()
    return response


async def _drip(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/atom+xml"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for _ in range(50):  # 10 s in all, far past the client's 1 s total timeout
            await response.write(b"<")
            await asyncio.sleep(0.2)
    except (ConnectionError, aiohttp.ClientConnectionResetError):
        pass  # the client gave up, as it should
    return response


def _status(status: int, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers or {})

    return handler


async def _hop(request: web.Request) -> web.Response:
    remaining = int(request.match_info["n"])
    if remaining == 0:
        return await _feed(request)
    raise web.HTTPFound(f"/hop/{remaining - 1}")


async def _to_localhost(request: web.Request) -> web.Response:
    raise web.HTTPFound(str(request.url.with_host("localhost").with_path("/feed")))


async def _to_ip(request: web.Request) -> web.Response:
    raise web.HTTPFound(str(request.url.with_host("127.0.0.1").with_path("/feed")))


@web.middleware
async def _record(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[APP_SEEN].append((request.host, request.path, dict(request.headers)))
    return await handler(request)


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application(middlewares=[_record])
    app[APP_SEEN] = []
    app.router.add_get("/feed", _feed)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/bomb", _bomb)
    app.router.add_get("/big", _big)
    app.router.add_get("/padded", _padded)
    app.router.add_get("/bad-redirect", _bad_redirect)
    app.router.add_get("/big-chunked", _big_chunked)
    app.router.add_get("/drip", _drip)
    app.router.add_get("/gone", _status(410))
    app.router.add_get("/busy", _status(503, {"Retry-After": "7"}))
    app.router.add_get("/missing", _status(404))
    app.router.add_get("/slow-client", _status(408))
    app.router.add_get("/broken", _status(500))
    app.router.add_get("/found-nowhere", _status(302))
    app.router.add_get("/hop/{n}", _hop)
    app.router.add_get("/to-localhost", _to_localhost)
    app.router.add_get("/to-ip", _to_ip)

    async def _limited(request: web.Request) -> web.Response:
        later = datetime.now(UTC) + timedelta(seconds=120)
        return web.Response(status=429, headers={"Retry-After": format_datetime(later, True)})

    app.router.add_get("/limited", _limited)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


def _seen(server: TestServer) -> list[Seen]:
    assert server.app is not None
    return server.app[APP_SEEN]


def _url(server: TestServer, path: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.port}{path}"


async def _fetch(
    url: str,
    validators: Validators | None = None,
    *,
    limits: FetchLimits | None = None,
    trusted: str | None = "127.0.0.1",
    allow_private: bool = False,
    resolver: AbstractResolver | None = None,
) -> FetchResult:
    limits = limits or FetchLimits()
    async with create_feed_session(
        limits, allow_private_networks=allow_private, concurrency=4, resolver=resolver
    ) as session:
        fetcher = Fetcher(session, HostThrottle(100.0), limits)
        return await fetcher.fetch(url, validators, trusted_host=trusted)


async def _fetch_error(
    url: str,
    *,
    limits: FetchLimits | None = None,
    trusted: str | None = "127.0.0.1",
    resolver: AbstractResolver | None = None,
) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await _fetch(url, limits=limits, trusted=trusted, resolver=resolver)
    assert caught.value.url == url
    return caught.value


# --- success, conditional GET, decompression --------------------------------------------------


async def test_200_then_304_with_validators(server: TestServer) -> None:
    limits = FetchLimits()
    url = _url(server, "/feed")
    async with create_feed_session(limits, allow_private_networks=False, concurrency=4) as session:
        fetcher = Fetcher(session, HostThrottle(100.0), limits)
        first = await fetcher.fetch(url, trusted_host="127.0.0.1")
        assert first.status == 200
        assert first.body == FEED
        assert first.etag == ETAG
        assert first.last_modified == LAST_MODIFIED
        assert first.headers["etag"] == ETAG  # names lower-cased
        assert first.headers["content-type"].startswith("application/atom+xml")
        assert first.body_hash is not None and len(first.body_hash) == 64
        assert first.final_url == url
        assert first.elapsed_ms >= 0

        validators = Validators(etag=first.etag, last_modified=first.last_modified)
        second = await fetcher.fetch(url, validators, trusted_host="127.0.0.1")
    assert second.not_modified
    assert second.body == b""
    assert second.body_hash is None
    assert second.etag == ETAG
    assert second.last_modified == LAST_MODIFIED  # carried over: the 304 did not send one
    sent = _seen(server)[-1][2]
    assert sent["If-None-Match"] == ETAG
    assert sent["If-Modified-Since"] == LAST_MODIFIED
    assert "If-None-Match" not in _seen(server)[0][2]
    assert sent["User-Agent"].startswith("syncd/")


async def test_gzip_body_is_decompressed(server: TestServer) -> None:
    result = await _fetch(_url(server, "/gzip"))
    assert result.body == FEED
    assert "gzip" in _seen(server)[-1][2]["Accept-Encoding"]


# --- bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_body_over_cap_is_refused(server: TestServer, path: str) -> None:
    error = await _fetch_error(_url(server, path), limits=FetchLimits(max_body_bytes=1000))
    assert not error.retryable
    assert "1000" in str(error)


async def test_cap_counts_decompressed_bytes(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/bomb"), limits=FetchLimits(max_body_bytes=1_000_000))
    assert not error.retryable
    assert "1000000" in str(error)


async def test_cap_counts_compressed_bytes(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/padded"), limits=FetchLimits(max_body_bytes=1000))
    assert "compressed body exceeds" in str(error)
    assert _url(server, "/padded") in str(error)
    result = await _fetch(_url(server, "/padded"), limits=FetchLimits(max_body_bytes=10_000))
    assert result.body == FEED


async def test_dripping_server_is_cut_by_total_timeout(server: TestServer) -> None:
    started = time.monotonic()
    error = await _fetch_error(_url(server, "/drip"), limits=FetchLimits(timeout_s=1.0))
    elapsed = time.monotonic() - started
    assert error.retryable
    assert "timed out after 1s" in str(error)
    assert elapsed < 8  # the drip would last 10 s; generous for a loaded machine


# --- statuses ----------------------------------------------------------------------------------


async def test_410_is_gone(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/gone"))
    assert isinstance(error, GoneError)
    assert error.status == 410
    assert not error.retryable


async def test_503_retry_after_seconds(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/busy"))
    assert error.status == 503
    assert error.retry_after_s == 7
    assert error.retryable


async def test_429_retry_after_http_date(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/limited"))
    assert error.status == 429
    assert error.retry_after_s is not None
    assert 60 < error.retry_after_s <= 121  # HTTP-dates have 1 s resolution


@pytest.mark.parametrize(
    ("path", "status", "retryable"),
    [("/missing", 404, False), ("/slow-client", 408, True), ("/broken", 500, True)],
)
async def test_error_statuses(server: TestServer, path: str, status: int, retryable: bool) -> None:
    error = await _fetch_error(_url(server, path))
    assert not isinstance(error, GoneError)
    assert error.status == status
    assert error.retryable is retryable
    assert _url(server, path) in str(error)


# --- redirects ---------------------------------------------------------------------------------


async def test_redirects_are_followed_up_to_the_limit(server: TestServer) -> None:
    result = await _fetch(_url(server, "/hop/5"), limits=FetchLimits(max_redirects=5))
    assert result.status == 200
    assert result.final_url == _url(server, "/hop/0")
    assert result.url == _url(server, "/hop/5")


async def test_too_many_redirects(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/hop/6"), limits=FetchLimits(max_redirects=5))
    assert "too many redirects" in str(error)
    assert len(_seen(server)) == 6  # the original request and five redirects, no more


async def test_redirects_disabled(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/hop/1"), limits=FetchLimits(max_redirects=0))
    assert error.status == 302


async def test_redirect_to_non_http_url(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/bad-redirect"))
    assert not error.retryable
    assert "redirected to an invalid or non-HTTP URL" in str(error)


async def test_redirect_without_location(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/found-nowhere"))
    assert error.status == 302


# --- transport failures ------------------------------------------------------------------------


async def test_connection_refused() -> None:
    # A bound but never listening socket: the port is ours and connecting to it is refused.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{holder.getsockname()[1]}/feed"
        error = await _fetch_error(url)
    assert error.retryable
    assert "cannot connect" in str(error)
    assert url in str(error)


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/feed", "http:///feed"])
async def test_invalid_urls(url: str) -> None:
    error = await _fetch_error(url)
    assert not error.retryable
    assert "invalid" in str(error)


class _NoSuchHost(AbstractResolver):
    """DNS answering NXDOMAIN. Real DNS is not used: on an offline machine a lookup may hang
    until the timeout instead of failing, which would make the test depend on the network."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_unresolvable_host() -> None:
    error = await _fetch_error("http://no-such-host.invalid/feed", resolver=_NoSuchHost())
    assert error.retryable
    assert not isinstance(error, BlockedAddressError)
    assert "cannot resolve no-such-host.invalid: Name or service not known" in str(error)
    assert error.kind == "dns"  # a distinct state in status and logs (issue 9)


# --- address policy at connect time ------------------------------------------------------------


async def test_untrusted_localhost_is_blocked(server: TestServer) -> None:
    url = _url(server, "/feed", host="localhost")
    error = await _fetch_error(url)
    assert isinstance(error, BlockedAddressError)
    assert not error.retryable
    assert _seen(server) == []


async def test_untrusted_localhost_allowed_with_private_networks(server: TestServer) -> None:
    result = await _fetch(_url(server, "/feed", host="localhost"), allow_private=True)
    assert result.status == 200


async def test_trusted_localhost_name_is_allowed(server: TestServer) -> None:
    result = await _fetch(_url(server, "/feed", host="localhost"), trusted="LOCALHOST")
    assert result.status == 200


async def test_untrusted_ip_literal_is_blocked(server: TestServer) -> None:
    # aiohttp does not call the resolver for IP literals: the connector's own check must catch it.
    error = await _fetch_error(_url(server, "/feed"), trusted="feeds.example.org")
    assert isinstance(error, BlockedAddressError)
    assert _seen(server) == []


async def test_redirect_to_untrusted_private_host_is_blocked(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/to-localhost"))
    assert isinstance(error, BlockedAddressError)
    assert [path for _, path, _ in _seen(server)] == ["/to-localhost"]


class _Rebinding(AbstractResolver):
    """DNS that answers a public-looking name with a loopback address (a rebinding attack)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        assert host == self.name
        self.calls += 1
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


async def test_dns_answer_with_private_address_is_blocked(server: TestServer) -> None:
    resolver = _Rebinding("feeds.example.com")
    url = f"http://feeds.example.com:{server.port}/feed"
    error = await _fetch_error(url, resolver=resolver)
    assert isinstance(error, BlockedAddressError)
    assert "127.0.0.1" in str(error)
    assert resolver.calls == 1
    assert _seen(server) == []


async def test_dns_answer_used_for_connecting_when_allowed(server: TestServer) -> None:
    resolver = _Rebinding("feeds.example.com")
    url = f"http://feeds.example.com:{server.port}/feed"
    result = await _fetch(url, resolver=resolver, allow_private=True)
    assert result.status == 200
    assert _seen(server)[-1][0] == f"feeds.example.com:{server.port}"


# --- trust is per request (per feed), not shared through the session ---------------------------


async def test_another_feeds_host_is_not_trusted(server: TestServer) -> None:
    # A feed configured at localhost links to 127.0.0.1, the host of some other configured feed:
    # for this feed that link is a discovery like any other.
    url = _url(server, "/feed")
    error = await _fetch_error(url, trusted="localhost")
    assert isinstance(error, BlockedAddressError)
    assert "127.0.0.1" in str(error)
    assert _seen(server) == []
    result = await _fetch(url, trusted="localhost", allow_private=True)
    assert result.status == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_nothing_is_trusted_by_default(server: TestServer, host: str) -> None:
    error = await _fetch_error(_url(server, "/feed", host=host), trusted=None)
    assert isinstance(error, BlockedAddressError)
    assert _seen(server) == []


async def test_redirect_from_trusted_name_to_private_ip_is_blocked(server: TestServer) -> None:
    error = await _fetch_error(_url(server, "/to-ip", host="localhost"), trusted="localhost")
    assert isinstance(error, BlockedAddressError)
    assert [path for _, path, _ in _seen(server)] == ["/to-ip"]


async def test_redirect_within_the_trusted_host_is_followed(server: TestServer) -> None:
    url = _url(server, "/hop/2", host="localhost")
    result = await _fetch(url, trusted="localhost")
    assert result.final_url == _url(server, "/hop/0", host="localhost")


@dataclass
class _Counting:
    """A server that counts the TCP connections it accepts (not only the requests)."""

    port: int
    connections: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def counting() -> AsyncIterator[_Counting]:
    state = _Counting(port=0)

    async def ok(request: web.Request) -> web.Response:
        state.paths.append(request.path)
        return web.Response(body=FEED, content_type="application/atom+xml")

    async def closing(request: web.Request) -> web.Response:
        response = await ok(request)
        response.force_close()  # Connection: close, so the client pools nothing
        return response

    app = web.Application()
    app.router.add_get("/close/{name}", closing)
    app.router.add_get("/{name}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    make_protocol = runner.server
    assert make_protocol is not None

    def accept() -> asyncio.Protocol:
        state.connections.append(1)
        return make_protocol()

    listener = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        listener.close()
        await runner.cleanup()
        await listener.wait_closed()


async def _in_one_session(
    *requests: tuple[str, str | None], allow_private: bool = False
) -> list[FetchResult | FetchError]:
    """Fetch (url, trusted_host) pairs one after the other through one session (one pool)."""
    limits = FetchLimits()
    outcomes: list[FetchResult | FetchError] = []
    async with create_feed_session(
        limits, allow_private_networks=allow_private, concurrency=4
    ) as session:
        fetcher = Fetcher(session, HostThrottle(1000.0), limits)
        for url, trusted in requests:
            try:
                outcomes.append(await fetcher.fetch(url, trusted_host=trusted))
            except FetchError as exc:
                outcomes.append(exc)
    return outcomes


async def test_pooled_connection_to_trusted_ip_is_not_reused_untrusted(
    counting: _Counting,
) -> None:
    first, second = await _in_one_session(
        (counting.url("/x"), "127.0.0.1"), (counting.url("/y"), "other.example")
    )
    assert isinstance(first, FetchResult) and first.status == 200
    assert isinstance(second, BlockedAddressError)
    assert counting.paths == ["/x"]
    assert len(counting.connections) == 1


async def test_pooled_connection_to_trusted_name_is_not_reused_untrusted(
    counting: _Counting,
) -> None:
    # The second request finds feed A's keep-alive connection to localhost:P in the pool: no lookup
    # and no connect happen, so only the peer-address check stands between it and 127.0.0.1.
    first, second, third, fourth = await _in_one_session(
        (counting.url("/x", "localhost"), "localhost"),
        (counting.url("/y", "localhost"), "other.example"),
        (counting.url("/z", "localhost"), None),
        (counting.url("/w", "localhost"), "localhost"),
    )
    assert isinstance(first, FetchResult) and first.status == 200
    assert isinstance(second, BlockedAddressError)
    assert "localhost resolves to 127.0.0.1" in str(second)
    assert isinstance(third, BlockedAddressError)  # refused before connecting (nothing pooled)
    assert isinstance(fourth, FetchResult) and fourth.status == 200  # the trusted feed carries on
    assert counting.paths == ["/x", "/w"]
    # The pooled connection was closed unused when refused; the trusted feed opened a new one.
    assert len(counting.connections) == 2


async def test_pooled_connection_is_shared_when_private_networks_are_allowed(
    counting: _Counting,
) -> None:
    outcomes = await _in_one_session(
        (counting.url("/x", "localhost"), "localhost"),
        (counting.url("/y", "localhost"), None),
        allow_private=True,
    )
    assert all(isinstance(o, FetchResult) for o in outcomes)
    assert counting.paths == ["/x", "/y"]
    assert len(counting.connections) == 1


async def test_name_resolved_for_a_trusted_request_is_resolved_again_untrusted(
    counting: _Counting,
) -> None:
    # Nothing is pooled (the server closes each connection), so the second request must look
    # localhost up again, under its own trust: refused before any TCP connection is opened.
    first, second = await _in_one_session(
        (counting.url("/close/x", "localhost"), "localhost"),
        (counting.url("/y", "localhost"), None),
    )
    assert isinstance(first, FetchResult) and first.status == 200
    assert isinstance(second, BlockedAddressError)
    assert counting.paths == ["/close/x"]
    assert len(counting.connections) == 1


async def test_concurrent_trusted_and_untrusted_lookups_do_not_share_a_verdict(
    counting: _Counting,
) -> None:
    limits = FetchLimits()
    async with create_feed_session(limits, allow_private_networks=False, concurrency=8) as session:
        fetcher = Fetcher(session, HostThrottle(1_000_000.0), limits)
        trusted = [
            fetcher.fetch(counting.url(f"/close/t{i}", "localhost"), trusted_host="localhost")
            for i in range(4)
        ]
        untrusted = [
            fetcher.fetch(counting.url(f"/u{i}", "localhost"), trusted_host="example.org")
            for i in range(4)
        ]
        outcomes = await asyncio.gather(*trusted, *untrusted, return_exceptions=True)
    assert all(isinstance(o, FetchResult) for o in outcomes[:4])
    assert all(isinstance(o, BlockedAddressError) for o in outcomes[4:])
    assert sorted(counting.paths) == [f"/close/t{i}" for i in range(4)]
    assert len(counting.connections) == 4  # the untrusted requests opened none


# --- Retry-After parsing (pure) ----------------------------------------------------------------

NOW = datetime(2026, 11, 28, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),  # negative: no wait (syncd.retry clamps)
        ("soon", None),
        ("Sat, 28 Nov 2026 07:02:00 GMT", 120.0),  # IMF-fixdate
        ("Saturday, 28-Nov-26 07:00:30 GMT", 30.0),  # RFC 850
        ("Sat Nov 28 07:01:00 2026", 60.0),  # asctime, GMT by definition
        ("Sat, 28 Nov 2026 06:00:00 GMT", 0.0),  # in the past
        ("Sat, 28 Nov 2026 09:00:00 +0200", 0.0),  # another offset, same instant
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_fetch_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        FetchLimits(timeout_s=0)
    with pytest.raises(ValueError):
        FetchLimits(max_body_bytes=0)
    with pytest.raises(ValueError):
        FetchLimits(max_redirects=-1)
