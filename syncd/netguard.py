"""Address policy for feed fetching (DESIGN §7): which IP addresses a *discovered* URL may reach.

Trust is per feed. A request made for feed F trusts F's configured host (the host of the URL the
operator wrote) and no other: the feed URL itself, and next links and redirects to that same host,
may reach any address. Every other host (a next link or redirect to elsewhere, including another
configured feed's host) may not connect to a loopback, private, CGNAT, link-local (cloud
metadata), unique-local, multicast, reserved or otherwise special-purpose address, unless the
operator set `allow_private_networks`.

Which host is trusted is carried by a context variable (`trusting()`): the Fetcher sets it around
one request, and aiohttp calls the connector and the resolver inside the calling task, so both see
the trust of the request they are serving. Without it nothing is trusted.

The check happens where the address is chosen for the socket, not on the URL text:

* Host names: aiohttp's `TCPConnector` asks its resolver for addresses and connects to exactly the
  addresses the resolver returns. `GuardedResolver` wraps the real resolver and refuses the whole
  answer when any address is forbidden for the current request, so the addresses that were
  checked are the addresses used, and DNS rebinding (a public answer at check time, a private one
  at connect time) has no second lookup to exploit. The connector runs *without* aiohttp's DNS
  cache: the cache (and its sharing of one in-flight lookup between concurrent requests) would
  hand an answer accepted under one feed's trust to another feed's request without a resolver
  call, so every new connection resolves, and is checked, for the request that makes it.
* IP literals: aiohttp 3.14 does *not* call the resolver for them (`TCPConnector._resolve_host`
  returns the literal directly when `helpers.is_ip_address(host)` is true, after refusing
  non-canonical IPv4 forms such as `2130706433` or `127.1`). `GuardedConnector.connect` therefore
  checks every literal host before a connection is taken from the pool or opened. `connect()` is
  called once per request *and per redirect hop*, so a redirect to `http://169.254.169.254/` is
  caught too. For a literal, the address connected to is the literal itself, so this check is as
  exact as the resolver's.
* Pooled connections: a keep-alive connection opened under one feed's trust (to 10.0.0.5:80, say)
  would be reused by another feed's request for the same host and port with no lookup and no
  connect. So for every request that is not exempt, `GuardedConnector.connect` also checks the
  peer address of the connection it is about to hand out, pooled or new, and closes it unused
  (no request byte sent) when that address is forbidden. For new connections the checks above
  have already run, and this is the backstop.

Why not `TCPConnector(socket_factory=…)`? The socket factory sees the final address but not the host
name the request is for, so it cannot tell a trusted host (`localhost` configured by the operator)
from a discovered one resolving to the same address. The hooks above see both.

The policy is only sound without a proxy (a proxy resolves names itself): the feed session is
built with `trust_env=False` and no proxy.

Explicit network lists are used on purpose: `ipaddress.IPv4Address.is_private` in Python 3.11.7
predates the CVE-2024-4032 fix and misclassifies several ranges. This module does no I/O of its own
beyond delegating to the wrapped resolver; its only mutable state is the per-task context variable.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import Connection
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.tracing import Trace

__all__ = [
    "AddressBlocked",
    "AddressPolicy",
    "GuardedConnector",
    "GuardedResolver",
    "blocked_cause",
    "current_trusted_host",
    "host_of",
    "is_forbidden",
    "normalize_host",
    "trusting",
]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# From the IANA IPv4 Special-Purpose Address Registry (RFC 6890 and successors): none of these is a
# legitimate destination for a feed discovered on the public internet.
FORBIDDEN_V4: Final[tuple[ipaddress.IPv4Network, ...]] = (
    _V4("0.0.0.0/8"),  # "this network"; 0.0.0.0 reaches the local host on Linux
    _V4("10.0.0.0/8"),  # RFC 1918
    _V4("100.64.0.0/10"),  # CGNAT (RFC 6598); also Alibaba Cloud metadata 100.100.100.200
    _V4("127.0.0.0/8"),  # loopback
    _V4("169.254.0.0/16"),  # link-local; cloud metadata 169.254.169.254
    _V4("172.16.0.0/12"),  # RFC 1918
    _V4("192.0.0.0/24"),  # IETF protocol assignments; Oracle Cloud metadata 192.0.0.192
    _V4("192.0.2.0/24"),  # TEST-NET-1
    _V4("192.88.99.0/24"),  # 6to4 relay anycast (deprecated)
    _V4("192.168.0.0/16"),  # RFC 1918
    _V4("198.18.0.0/15"),  # benchmarking
    _V4("198.51.100.0/24"),  # TEST-NET-2
    _V4("203.0.113.0/24"),  # TEST-NET-3
    _V4("224.0.0.0/4"),  # multicast
    _V4("240.0.0.0/4"),  # reserved, including the limited broadcast 255.255.255.255
)

# Only 2000::/3 is allocated as global unicast: everything outside it is forbidden outright, and
# the special-purpose blocks inside it are listed. Named blocks outside 2000::/3 are listed anyway,
# so the table documents itself and survives a future change to the global-unicast rule.
GLOBAL_UNICAST_V6: Final = _V6("2000::/3")
FORBIDDEN_V6: Final[tuple[ipaddress.IPv6Network, ...]] = (
    _V6("::/128"),  # unspecified
    _V6("::1/128"),  # loopback
    _V6("::/96"),  # IPv4-compatible (deprecated)
    _V6("64:ff9b:1::/48"),  # local-use NAT64
    _V6("100::/64"),  # discard-only
    _V6("2001::/23"),  # IETF protocol assignments: Teredo, benchmarking, ORCHID, …
    _V6("2001:db8::/32"),  # documentation
    _V6("3fff::/20"),  # documentation (RFC 9637)
    _V6("5f00::/16"),  # SRv6 SIDs
    _V6("fc00::/7"),  # unique-local; AWS IPv6 metadata fd00:ec2::254
    _V6("fe80::/10"),  # link-local
    _V6("fec0::/10"),  # site-local (deprecated)
    _V6("ff00::/8"),  # multicast
)

# Prefixes that carry an IPv4 address which the network will actually deliver to: judge the
# embedded IPv4 address, so ::ffff:127.0.0.1 is loopback and 64:ff9b::808:808 is 8.8.8.8.
_MAPPED_V6: Final = _V6("::ffff:0:0/96")
_NAT64_V6: Final = _V6("64:ff9b::/96")
_SIX_TO_FOUR_V6: Final = _V6("2002::/16")


def is_forbidden(ip: str) -> bool:
    """True when a discovered URL may not connect to `ip` (policy of DESIGN §7).

    Accepts dotted-quad IPv4 and IPv6 text, with optional brackets and a `%zone` suffix. Text that
    is not an IP address is forbidden: the caller meant to pass an address, and failing closed is
    the only safe answer to something unexpected.
    """
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # a zone id does not change which network the address is in
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _forbidden_v4(embedded)
        if address not in GLOBAL_UNICAST_V6:
            return True
        return any(address in net for net in FORBIDDEN_V6)
    return _forbidden_v4(address)


def _forbidden_v4(address: ipaddress.IPv4Address) -> bool:
    return any(address in net for net in FORBIDDEN_V4)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _MAPPED_V6:
        return address.ipv4_mapped
    if address in _NAT64_V6:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR_V6:
        return address.sixtofour
    return None


def normalize_host(host: str) -> str:
    """The form host names are compared in: what aiohttp connects to (yarl's `raw_host`: lower
    case, IDNA-encoded, IPv6 compressed), without brackets or a trailing dot."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        text = URL.build(scheme="http", host=text).raw_host or text
    except ValueError:
        text = text.lower()  # not a valid host: it can never match a real request, keep it inert
    return text.rstrip(".")


def host_of(url: str) -> str | None:
    """The host an operator-configured `url` trusts (the `trusted_host` of its requests): parsed
    as aiohttp will parse it to connect, normalized; None when the URL has no usable host."""
    try:
        host = URL(url).raw_host
    except (ValueError, TypeError):
        return None
    return normalize_host(host) if host else None


# The configured host trusted by the request running in this task (normalized), or None. Set only
# through trusting(); aiohttp runs the connector and resolver in the task that made the request.
_TRUSTED_HOST: ContextVar[str | None] = ContextVar("syncd_trusted_host", default=None)


@contextmanager
def trusting(host: str | None) -> Iterator[None]:
    """Requests made inside this block (in this task, and tasks it starts) trust `host`: the host
    of the feed's configured URL. None, the default outside any block, trusts nothing."""
    token = _TRUSTED_HOST.set(normalize_host(host) if host else None)
    try:
        yield
    finally:
        _TRUSTED_HOST.reset(token)


def current_trusted_host() -> str | None:
    """The host trusted by the request being made in this task (see trusting())."""
    return _TRUSTED_HOST.get()


def _looks_like_ip_literal(host: str) -> bool:
    # Mirrors aiohttp.helpers.is_ip_address, which decides whether the resolver is skipped. It
    # must be at least as broad as aiohttp's test: any host it calls a literal and we did not
    # would reach a socket unchecked.
    return ":" in host or host.replace(".", "").isdigit()


class AddressBlocked(OSError):
    """A connection to `address` (for `host`) was refused by policy.

    An OSError so aiohttp treats it like any other failure to connect (it wraps it, keeping it as
    the cause); the fetcher finds it in the exception chain and reports BlockedAddressError.
    """

    def __init__(self, host: str, address: str) -> None:
        self.host = host
        self.address = address
        where = host if host == address else f"{host} resolves to {address}, which"
        super().__init__(
            f"{where} is a private, reserved or non-canonical address that discovered URLs may "
            "not reach (allowed only with [fetch] allow_private_networks = true)"
        )


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Who may connect where. The trusted host is per request (the feed's configured host), so it
    is an argument here rather than a field; the global switch is a field."""

    allow_private_networks: bool = False

    def exempt(self, host: str, trusted_host: str | None) -> bool:
        """True when a request for `host` may reach any address: private networks are allowed, or
        `host` is the request's trusted host."""
        if self.allow_private_networks:
            return True
        if not trusted_host or not host:
            return False
        return normalize_host(host) == normalize_host(trusted_host)

    def check(self, host: str, address: str, *, trusted_host: str | None) -> None:
        """Raise AddressBlocked when a request trusting `trusted_host` may not reach `host` at
        `address`."""
        if not self.exempt(host, trusted_host) and is_forbidden(address):
            raise AddressBlocked(host, address)


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` (aiohttp's ThreadedResolver by default) and enforces the policy.

    The whole answer is refused if any address in it is forbidden, rather than filtered: a public
    name that also answers with a private address is either misconfigured or an attack, and an
    operator should hear about it instead of seeing intermittent failures.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        trusted = current_trusted_host()  # read after the await: still this request's task
        for result in results:
            self._policy.check(host, result["host"], trusted_host=trusted)
        return results

    async def close(self) -> None:
        await self._inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector enforcing `policy` on every connection, for the trust of the request being
    made (current_trusted_host()): host names through a GuardedResolver around `resolver` (the
    system resolver by default), IP literals, which bypass the resolver, in `connect()`, and the
    peer address of every connection handed to a non-exempt request, pooled or new.

    It owns and closes the resolver, since TCPConnector only closes resolvers it created itself.
    """

    def __init__(
        self, *, policy: AddressPolicy, limit: int, resolver: AbstractResolver | None = None
    ) -> None:
        guarded = GuardedResolver(policy, resolver)
        # No DNS cache: a cached (or shared in-flight) answer reaches a request without a resolver
        # call, so it would skip the check under that request's own trust (module docstring).
        super().__init__(resolver=guarded, limit=limit, use_dns_cache=False)
        self._policy = policy
        self._guarded_resolver = guarded

    # The parameter names are aiohttp's: ClientSession calls connect(req, traces=…, timeout=…).
    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> Connection:
        host = req.url.raw_host or ""
        trusted = current_trusted_host()
        if self._policy.exempt(host, trusted):
            return await super().connect(req, traces, timeout)
        if _looks_like_ip_literal(host):
            self._policy.check(host, host, trusted_host=trusted)
        connection = await super().connect(req, traces, timeout)
        # The pool is shared by every feed: this may be a keep-alive connection another feed's
        # trusted request opened. Nothing has been sent on it yet; refuse it before anything is.
        address = _peer_address(connection)
        if is_forbidden(address):
            connection.close()
            raise AddressBlocked(host, address or "an unknown address")
        return connection

    async def close(self, *, abort_ssl: bool = False) -> None:
        try:
            await super().close(abort_ssl=abort_ssl)
        finally:
            await self._guarded_resolver.close()


def _peer_address(connection: Connection) -> str:
    """The IP address `connection` is connected to, or "" when it cannot be told."""
    transport = connection.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return ""


def blocked_cause(exc: BaseException) -> AddressBlocked | None:
    """The AddressBlocked that caused `exc`, however aiohttp wrapped it, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AddressBlocked):
            return current
        seen.add(id(current))
        os_error = getattr(current, "os_error", None)  # ClientConnectorError keeps it here
        if isinstance(os_error, AddressBlocked):
            return os_error
        current = current.__cause__ or current.__context__
    return None
