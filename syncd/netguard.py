"""Address policy for feed fetching (DESIGN §7): which IP addresses a *discovered* URL may reach.

An operator-configured URL is trusted as written, and so is any URL on the same host. Any other host
(a next link or redirect to elsewhere) may not connect to a loopback, private, CGNAT, link-local
(cloud metadata), unique-local, multicast, reserved or otherwise special-purpose address, unless
the operator set `allow_private_networks`.

The check happens where the address is chosen for the socket, not on the URL text:

* Host names: aiohttp's `TCPConnector` asks its resolver for addresses and connects to exactly the
  addresses the resolver returns (its DNS cache stores the same list). `GuardedResolver` wraps the
  real resolver and refuses the whole answer when any address is forbidden, so the addresses that
  were checked are the addresses used, and DNS rebinding (a public answer at check time, a private
  one at connect time) has no second lookup to exploit.
* IP literals: aiohttp 3.14 does *not* call the resolver for them (`TCPConnector._resolve_host`
  returns the literal directly when `helpers.is_ip_address(host)` is true, after refusing
  non-canonical IPv4 forms such as `2130706433` or `127.1`). `GuardedConnector.connect` therefore
  checks every literal host before a connection is taken from the pool or opened. `connect()` is
  called once per request *and per redirect hop*, so a redirect to `http://169.254.169.254/` is
  caught too. For a literal, the address connected to is the literal itself, so this check is as
  exact as the resolver's.

Why not `TCPConnector(socket_factory=…)`? The socket factory sees the final address but not the host
name the request is for, so it cannot tell a trusted host (`localhost` configured by the operator)
from a discovered one resolving to the same address. The two hooks above see both.

The policy is only sound without a proxy (a proxy resolves names itself): the feed session is
built with `trust_env=False` and no proxy.

Explicit network lists are used on purpose: `ipaddress.IPv4Address.is_private` in Python 3.11.7
predates the CVE-2024-4032 fix and misclassifies several ranges. This module does no I/O of its own
beyond delegating to the wrapped resolver, and holds no global mutable state.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
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
    "hosts_of",
    "is_forbidden",
    "normalize_host",
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


def hosts_of(urls: Iterable[str]) -> frozenset[str]:
    """The trusted-host set for the operator-configured `urls` (feed URLs as written)."""
    hosts = (URL(url).raw_host for url in urls)
    return frozenset(normalize_host(host) for host in hosts if host)


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
    """Who may connect where: the trusted (operator-configured) hosts, and the global switch."""

    trusted_hosts: frozenset[str]
    allow_private_networks: bool = False

    @classmethod
    def build(cls, trusted_hosts: Iterable[str], *, allow_private_networks: bool) -> AddressPolicy:
        return cls(frozenset(normalize_host(h) for h in trusted_hosts), allow_private_networks)

    def is_trusted(self, host: str) -> bool:
        return normalize_host(host) in self.trusted_hosts

    def check(self, host: str, address: str) -> None:
        """Raise AddressBlocked when `host` may not be reached at `address`."""
        if self.allow_private_networks or self.is_trusted(host):
            return
        if is_forbidden(address):
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
        for result in results:
            self._policy.check(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector enforcing `policy` on every connection: host names through a
    GuardedResolver around `resolver` (the system resolver by default), IP literals, which bypass
    the resolver, in `connect()`.

    It owns and closes the resolver, since TCPConnector only closes resolvers it created itself.
    """

    def __init__(
        self, *, policy: AddressPolicy, limit: int, resolver: AbstractResolver | None = None
    ) -> None:
        guarded = GuardedResolver(policy, resolver)
        super().__init__(resolver=guarded, limit=limit)
        self._policy = policy
        self._guarded_resolver = guarded

    # The parameter names are aiohttp's: ClientSession calls connect(req, traces=…, timeout=…).
    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> Connection:
        host = req.url.raw_host
        if host is not None and _looks_like_ip_literal(host):
            self._policy.check(host, host)
        return await super().connect(req, traces, timeout)

    async def close(self, *, abort_ssl: bool = False) -> None:
        try:
            await super().close(abort_ssl=abort_ssl)
        finally:
            await self._guarded_resolver.close()


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
