"""The fetch stage: one bounded, polite, conditional HTTP GET of a feed page → FetchResult.

It owns the HTTP edge for feed pages (DESIGN §4.3, §4.10, §7): per-host throttling, conditional
GET from stored validators, a total timeout, a body cap counted on decompressed bytes as they
stream, a redirect cap, and the connect-time address policy (syncd.netguard). Every aiohttp (and
socket) exception is translated here into FetchError / GoneError / BlockedAddressError, so nothing
above this module catches library exceptions.

Each failure is named by its `kind` (timeout, dns, tls, connect, forbidden, throttled,
challenge, unavailable), so status and logs tell a bot shield from a refusal or an outage.

It must not parse, store or schedule: it imports no parser or store code, never decides when to
poll again (it only reports Retry-After), and reads no body of an error response beyond the first
8 KB of an HTML 403/503, to recognise a bot shield's challenge page.
"""

from __future__ import annotations

import hashlib
import math
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy
from yarl import URL

from syncd import __version__
from syncd.errors import BlockedAddressError, FetchError, GoneError
from syncd.model import FetchResult, Validators
from syncd.netguard import AddressPolicy, GuardedConnector, blocked_cause, trusting
from syncd.retry import parse_retry_after
from syncd.throttle import Throttle

__all__ = [
    "DEFAULT_USER_AGENT",
    "FetchLimits",
    "Fetcher",
    "create_feed_session",
    "parse_retry_after",
    "user_agent",
]

DEFAULT_USER_AGENT = f"syncd/{__version__} (feed sync daemon)"
# A Retry-After from a feed is honoured up to a week: a publisher may ask for a long pause.
FEED_RETRY_AFTER_CAP_S = 7 * 86400.0
_SHIELD_SNIFF = 8192
# What bot-protection proxies put in their interstitial pages (Cloudflare, DDoS-Guard, Sucuri,
# Imperva, DataDome, Akamai): enough to tell a challenge from a plain error page.
_CHALLENGE_MARKERS = (
    b"challenge-platform",
    b"cf-chl",
    b"just a moment...",
    b"attention required",
    b"ddos-guard",
    b"sucuri",
    b"_incapsula_",
    b"datadome",
    b"captcha",
    b"checking your browser",
)


def user_agent(contact_url: str | None) -> str:
    """The User-Agent feed requests carry: who we are and, when configured, how to reach us."""
    if not contact_url:
        return DEFAULT_USER_AGENT
    return f"syncd/{__version__} (feed sync daemon; +{contact_url})"


# What a feed reader can use, best first; servers doing content negotiation pick the feed.
_ACCEPT = (
    "application/atom+xml, application/rss+xml;q=0.9, application/xml;q=0.8, text/xml;q=0.8, "
    "*/*;q=0.5"
)

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds on one fetch (DESIGN §7). `max_body_bytes` caps the decompressed body as it streams,
    and a declared Content-Length before anything is read; `max_redirects` is the number of
    redirects followed (0: none)."""

    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_body_bytes: int = 20_000_000
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        for name in ("timeout_s", "connect_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"FetchLimits.{name} must be a positive number, not {value!r}")
        if self.max_body_bytes <= 0:
            raise ValueError(f"FetchLimits.max_body_bytes must be positive: {self.max_body_bytes}")
        if self.max_redirects < 0:
            raise ValueError(f"FetchLimits.max_redirects must be >= 0: {self.max_redirects}")

    def client_timeout(self) -> aiohttp.ClientTimeout:
        # `total` covers connect, redirects and every body read: only it cuts a server that drips
        # one byte at a time (a per-read timeout never fires). aiohttp's own default is 300 s.
        return aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=self.connect_timeout_s)


def create_feed_session(
    limits: FetchLimits,
    *,
    allow_private_networks: bool,
    concurrency: int,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """The ClientSession for feed pages. Call inside the running loop; close it (`async with`).

    Unless `allow_private_networks`, a request may reach private addresses only for the host its
    caller trusts (Fetcher.fetch's `trusted_host`, the feed's configured host); trust is per
    request, never shared between feeds. `resolver` replaces the system resolver underneath the
    address guard (tests use it to simulate DNS answers).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    policy = AddressPolicy(allow_private_networks=allow_private_networks)
    connector = GuardedConnector(policy=policy, limit=concurrency, resolver=resolver)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=limits.client_timeout(),
        auto_decompress=True,
        headers={"User-Agent": limits.user_agent, "Accept": _ACCEPT},
        # Cookies from one feed must not follow requests to another, nor pile up in memory.
        cookie_jar=aiohttp.DummyCookieJar(),
        # No proxies from the environment: a proxy would resolve names itself, out of the guard's
        # sight, and the address policy would no longer hold.
        trust_env=False,
    )


class Fetcher:
    """Fetches feed pages through a session from create_feed_session().

    The Fetcher does not own the session or the throttle; whoever built them closes the session.
    """

    def __init__(
        self, session: aiohttp.ClientSession, throttle: Throttle, limits: FetchLimits
    ) -> None:
        self._session = session
        self._throttle = throttle
        self._limits = limits
        self._timeout = limits.client_timeout()  # built once: an attrs object per request costs

    async def fetch(
        self, url: str, validators: Validators | None = None, *, trusted_host: str | None = None
    ) -> FetchResult:
        """GET `url` once. Returns a 2xx or 304 FetchResult; raises FetchError for anything else.

        `trusted_host` is the host of the configured URL of the feed this page belongs to: every
        hop (the URL, then each redirect) to that host may reach any address; any other host may
        not reach a private one (BlockedAddressError) unless private networks are allowed. None
        trusts nothing.
        """
        host = _host_of(url)
        await self._throttle.wait(host)
        started = time.perf_counter()
        try:
            with trusting(trusted_host):
                return await self._exchange(url, validators, started)
        except FetchError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            # TimeoutError is an OSError in 3.11: _translate checks timeouts first.
            raise self._translate(url, exc) from exc

    async def _exchange(
        self, url: str, validators: Validators | None, started: float
    ) -> FetchResult:
        limits = self._limits
        headers: dict[str, str] = {}
        if validators is not None:
            if validators.etag:
                headers["If-None-Match"] = validators.etag
            if validators.last_modified:
                headers["If-Modified-Since"] = validators.last_modified
        async with self._session.get(
            url,
            headers=headers,
            timeout=self._timeout,
            allow_redirects=limits.max_redirects > 0,
            # aiohttp raises once the count of redirect responses reaches max_redirects, i.e. it
            # follows max_redirects - 1 of them; +1 makes our number the number followed.
            max_redirects=limits.max_redirects + 1,
        ) as response:
            status = response.status
            final_url = str(response.url)
            # Only a chain of permanent redirects says the feed moved (§4.10); 302/307 do not.
            permanent = bool(response.history) and all(
                hop.status in (301, 308) for hop in response.history
            )
            if status == 304:
                previous = validators or Validators()
                return FetchResult(
                    url=url,
                    final_url=final_url,
                    status=304,
                    body=b"",
                    headers=_lower_headers(response.headers),
                    # A 304 may refresh the validators; otherwise the stored ones still hold.
                    etag=response.headers.get("ETag") or previous.etag,
                    last_modified=response.headers.get("Last-Modified") or previous.last_modified,
                    body_hash=None,
                    elapsed_ms=_ms_since(started),
                    permanent_redirect=permanent,
                )
            if status in (403, 503) and await _is_challenge(response):
                raise FetchError(
                    f"{url}: HTTP {status}: a bot shield's challenge page (not a feed)",
                    url=url,
                    status=status,
                    kind="challenge",
                )
            if not 200 <= status < 300:
                raise _status_error(url, response)
            body = await self._read_capped(url, response)
            return FetchResult(
                url=url,
                final_url=final_url,
                status=status,
                body=body,
                headers=_lower_headers(response.headers),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                body_hash=hashlib.sha256(body).hexdigest(),
                elapsed_ms=_ms_since(started),
                permanent_redirect=permanent,
            )

    async def _read_capped(self, url: str, response: aiohttp.ClientResponse) -> bytes:
        cap = self._limits.max_body_bytes
        declared = response.content_length
        if declared is not None and declared > cap:
            raise _too_large(url, f"Content-Length {declared} exceeds", cap)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise _too_large(url, "decompressed body exceeds", cap)
            # The wire size is capped too (§7). This is checked whenever decompressed bytes arrive;
            # a stream that decompresses to nothing at all is bounded by the total timeout and
            # costs no memory (aiohttp decompresses incrementally), and is refused at the end.
            if response.content.total_raw_bytes > cap:
                raise _too_large(url, "compressed body exceeds", cap)
            chunks.append(chunk)
        if response.content.total_raw_bytes > cap:
            raise _too_large(url, "compressed body exceeds", cap)
        return b"".join(chunks)

    def _translate(self, url: str, exc: BaseException) -> FetchError:
        limits = self._limits
        blocked = blocked_cause(exc)
        if blocked is not None:
            return BlockedAddressError(f"{url}: {blocked}", url=url, retryable=False)
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            # aiohttp raises this for the connect timeout and also when the total one expires
            # while connecting (slow DNS, say), so name both limits.
            return FetchError(
                f"{url}: timed out while connecting (limits: {limits.connect_timeout_s:g}s to "
                f"connect, {limits.timeout_s:g}s in all)",
                url=url,
                kind="timeout",
            )
        if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError in 3.11
            return FetchError(
                f"{url}: timed out after {limits.timeout_s:g}s", url=url, kind="timeout"
            )
        if isinstance(exc, aiohttp.TooManyRedirects):
            return FetchError(
                f"{url}: too many redirects (more than {limits.max_redirects})",
                url=url,
                retryable=False,
            )
        if isinstance(exc, aiohttp.RedirectClientError):
            return FetchError(
                f"{url}: redirected to an invalid or non-HTTP URL: {exc}", url=url, retryable=False
            )
        if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
            return FetchError(f"{url}: invalid URL: {exc}", url=url, retryable=False)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return FetchError(
                f"{url}: cannot resolve {exc.host}: {_reason(exc)}", url=url, kind="dns"
            )
        if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
            return FetchError(f"{url}: TLS failure: {exc}", url=url, kind="tls")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return FetchError(
                f"{url}: cannot connect to {exc.host}:{exc.port}: {_reason(exc)}",
                url=url,
                kind="connect",
            )
        if isinstance(exc, aiohttp.ClientPayloadError):
            return FetchError(f"{url}: broken response body: {exc}", url=url)
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return FetchError(f"{url}: server closed the connection: {exc}", url=url)
        if isinstance(exc, aiohttp.ClientResponseError):
            return FetchError(
                f"{url}: bad HTTP response: {exc.message or type(exc).__name__}",
                url=url,
                status=exc.status or None,
            )
        if isinstance(exc, ValueError):
            return FetchError(f"{url}: invalid request: {exc}", url=url, retryable=False)
        return FetchError(f"{url}: {type(exc).__name__}: {exc}", url=url)


def _host_of(url: str) -> str:
    # Checked before throttling, so a malformed next link does not spend a host's politeness slot.
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise FetchError(f"{url}: invalid URL: {exc}", url=url, retryable=False) from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"{url}: invalid URL: not http(s)", url=url, retryable=False)
    if not parsed.raw_host:
        raise FetchError(f"{url}: invalid URL: no host", url=url, retryable=False)
    return parsed.raw_host


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    # "[Errno 111] Connect call failed ('127.0.0.1', 8080)" says less than "Connection refused".
    return exc.os_error.strerror or str(exc.os_error)


def _status_error(url: str, response: aiohttp.ClientResponse) -> FetchError:
    status = response.status
    reason = f"{url}: HTTP {status} {response.reason or ''}".rstrip()
    if status == 410:
        return GoneError(reason, url=url, status=status, retryable=False)
    if status in (429, 503):
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), datetime.now(UTC), cap_s=FEED_RETRY_AFTER_CAP_S
        )
        kind = "throttled" if status == 429 else "unavailable"
        return FetchError(reason, url=url, status=status, retry_after_s=retry_after, kind=kind)
    if status == 403:
        return FetchError(reason, url=url, status=status, retryable=False, kind="forbidden")
    if 400 <= status < 500:
        # 408 Request Timeout is the server giving up on a slow request: trying again may work.
        return FetchError(reason, url=url, status=status, retryable=status == 408)
    if 300 <= status < 400:
        # Only reached for a redirect without a Location, or when redirects are disabled.
        return FetchError(f"{reason} (redirect not followed)", url=url, status=status)
    return FetchError(reason, url=url, status=status, retryable=True)


async def _is_challenge(response: aiohttp.ClientResponse) -> bool:
    """Whether a 403/503 is a bot shield's interstitial: its header says so, or an HTML body's
    first 8 KB carries a shield's marks. A plain error page is not one."""
    if response.headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    if "html" not in response.headers.get("Content-Type", "").lower():
        return False
    try:
        head = await response.content.read(_SHIELD_SNIFF)
    except (aiohttp.ClientError, TimeoutError):
        return False
    lowered = head.lower()
    return any(marker in lowered for marker in _CHALLENGE_MARKERS)


def _too_large(url: str, what: str, cap: int) -> FetchError:
    return FetchError(
        f"{url}: {what} the body cap of {cap} bytes (max_body_bytes)", url=url, retryable=False
    )


def _lower_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    # Repeated fields (several Link headers, say) are joined as RFC 9110 §5.3 allows.
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        merged.setdefault(name.lower(), []).append(value)
    return {name: ", ".join(values) for name, values in merged.items()}


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
