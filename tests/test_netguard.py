"""The address policy table and the trust rules (pure; the connect-time path is in test_fetch)."""

from __future__ import annotations

import asyncio

import pytest

from syncd.netguard import (
    AddressBlocked,
    AddressPolicy,
    blocked_cause,
    current_trusted_host,
    host_of,
    is_forbidden,
    normalize_host,
    trusting,
)

FORBIDDEN = [
    # IPv4
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",
    "100.100.100.200",  # Alibaba Cloud metadata (CGNAT range)
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.0.1",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.192",  # Oracle Cloud metadata
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6
    "::",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "fc00::1",
    "fd00:ec2::254",  # AWS IPv6 metadata
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    "fec0::1",
    "ff02::1",
    "100::1",
    "64:ff9b:1::1",
    "2001::1",  # Teredo
    "2001:db8::1",
    "3fff::1",
    "5f00::1",
    "4000::1",  # outside 2000::/3: unallocated
    # IPv4 carried in IPv6
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "::ffff:10.1.2.3",
    "::ffff:0.0.0.0",
    "64:ff9b::127.0.0.1",  # NAT64 well-known prefix
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    # Not a canonical address: fail closed
    "",
    "localhost",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "010.0.0.1",
    "1.2.3.4.5",
]

ALLOWED = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.215.14",
    "142.250.74.110",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2001:4860:4860::8888",  # inside 2001::/16 but outside the special 2001::/23
    "::ffff:8.8.8.8",
    "::ffff:93.184.215.14",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden(address: str) -> None:
    assert is_forbidden(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed(address: str) -> None:
    assert not is_forbidden(address)


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]", "::1"),
        ("0:0::1", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("Bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_normalize_host(host: str, normal: str) -> None:
    assert normalize_host(host) == normal


def test_policy_trusts_the_requests_own_host_only() -> None:
    policy = AddressPolicy(allow_private_networks=False)
    policy.check("localhost", "127.0.0.1", trusted_host="LOCALHOST")
    policy.check("localhost.", "::1", trusted_host="localhost")
    policy.check("127.0.0.1", "127.0.0.1", trusted_host="127.0.0.1")
    policy.check("feeds.example.com", "93.184.215.14", trusted_host=None)
    with pytest.raises(AddressBlocked) as caught:
        policy.check("evil.example.com", "127.0.0.1", trusted_host="feeds.example.com")
    assert caught.value.host == "evil.example.com"
    assert caught.value.address == "127.0.0.1"
    assert "evil.example.com resolves to 127.0.0.1" in str(caught.value)
    with pytest.raises(AddressBlocked):
        policy.check("169.254.169.254", "169.254.169.254", trusted_host="localhost")
    # Another feed's host is not this request's trusted host, and no host is trusted by default.
    with pytest.raises(AddressBlocked):
        policy.check("10.0.0.5", "10.0.0.5", trusted_host="feeds.example.com")
    for trusted in (None, ""):
        with pytest.raises(AddressBlocked):
            policy.check("localhost", "127.0.0.1", trusted_host=trusted)
    assert policy.exempt("LocalHost.", "localhost")
    assert not policy.exempt("", "")
    assert not policy.exempt("localhost", None)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://Feeds.Example.com/atom", "feeds.example.com"),
        ("https://[::1]:8443/x", "::1"),
        ("https://[0:0::1]/x", "::1"),
        ("http://127.0.0.1:9000/", "127.0.0.1"),
        ("http://user:pw@feeds.example.com./x", "feeds.example.com"),
        ("http://Bücher.example/feed", "xn--bcher-kva.example"),
        ("not a url", None),
        ("http://[::1/", None),
    ],
)
def test_host_of_configured_url(url: str, host: str | None) -> None:
    assert host_of(url) == host


def test_policy_allow_private_networks() -> None:
    policy = AddressPolicy(allow_private_networks=True)
    policy.check("evil.example.com", "169.254.169.254", trusted_host=None)
    policy.check("10.0.0.1", "10.0.0.1", trusted_host="feeds.example.com")


async def test_trusting_is_scoped_to_the_block_and_the_task() -> None:
    assert current_trusted_host() is None
    with trusting("LocalHost."):
        assert current_trusted_host() == "localhost"
        with trusting(None):
            assert current_trusted_host() is None
        assert current_trusted_host() == "localhost"

        async def elsewhere() -> str | None:
            return current_trusted_host()

        assert await asyncio.create_task(elsewhere()) == "localhost"  # a task started inside
    assert current_trusted_host() is None

    async def other_feed(host: str, seen: list[str | None]) -> None:
        with trusting(host):
            await asyncio.sleep(0)  # interleave with the other task
            seen.append(current_trusted_host())

    seen_a: list[str | None] = []
    seen_b: list[str | None] = []
    await asyncio.gather(other_feed("a.example", seen_a), other_feed("b.example", seen_b))
    assert (seen_a, seen_b) == (["a.example"], ["b.example"])
    assert current_trusted_host() is None


def test_blocked_cause_walks_the_chain() -> None:
    blocked = AddressBlocked("h", "10.0.0.1")
    try:
        try:
            raise blocked
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert blocked_cause(outer) is blocked
    assert blocked_cause(ValueError("unrelated")) is None
