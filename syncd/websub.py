"""WebSub (W3C Recommendation) decisions for the subscriber: hub and self discovery, the
`X-Hub-Signature` check, fresh capability ids and secrets, when to renew or retry a
subscription, and the per-callback push budget.

Pure: reads no store, makes no request, takes `now` where time matters. Discovery looks at the
response headers first and then at the head of the raw document only (feed-level links come
before the first entry), so it costs nothing on the parse path.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

# The hashes a hub may sign with (the spec's list; the Google hub still uses sha1).
SIGNATURE_METHODS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
HEAD_BYTES = 65_536  # the part of a document where feed-level <link>s are looked for
RENEW_WITHIN = (0.5, 0.8)  # a lease is renewed at a random point of this part of it
RETRY_FIRST_S = 300.0  # a request not verified (or refused) is sent again after this, doubling
RETRY_CAP_S = 86_400.0  # … up to a day, for ever: a hub that comes back is used again
UNSUBSCRIBE_TRIES = 3  # then the row is closed: the hub's lease ends it anyway
THIN_PING_EVERY = timedelta(minutes=1)  # a thin ping fetches page 1 at most this often per feed
PENDING = ("subscribing", "renewing", "failed")  # a subscribe request awaits its verification

_LINK_VALUE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_REL_PARAM = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.I)
_ELEMENT = re.compile(rb"<(?:atom10:|atom:)?link\b([^>]*)/?>", re.I)
_ENTRY = re.compile(rb"<(?:atom:)?(?:entry|item)\b", re.I)
_ATTR = re.compile(rb"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(frozen=True)
class Discovery:
    """Where a feed says it is published: its hub, and the topic URL to subscribe to."""

    hub: str
    topic: str


def _rels(value: str) -> set[str]:
    m = _REL_PARAM.search(value)
    return set((m.group(1) or m.group(2) or "").lower().split()) if m else set()


def _from_link_header(header: str, base: str) -> tuple[str | None, str | None]:
    hub = self_url = None
    for m in _LINK_VALUE.finditer(header):
        rels = _rels(m.group(2))
        if "hub" in rels and hub is None:
            hub = urljoin(base, m.group(1).strip())
        if "self" in rels and self_url is None:
            self_url = urljoin(base, m.group(1).strip())
    return hub, self_url


def _from_document(body: bytes, base: str) -> tuple[str | None, str | None]:
    head = body[:HEAD_BYTES]
    first_entry = _ENTRY.search(head)
    if first_entry is not None:
        head = head[: first_entry.start()]  # an entry's own links are not the feed's
    hub = self_url = None
    for m in _ELEMENT.finditer(head):
        attrs = {
            a.group(1).lower(): (a.group(2) if a.group(2) is not None else a.group(3) or b"")
            for a in _ATTR.finditer(m.group(1))
        }
        rels = set(attrs.get(b"rel", b"").decode("utf-8", "replace").lower().split())
        href = attrs.get(b"href", b"").decode("utf-8", "replace").strip()
        if not href:
            continue
        if "hub" in rels and hub is None:
            hub = urljoin(base, href)
        if "self" in rels and self_url is None:
            self_url = urljoin(base, href)
    return hub, self_url


def advertised(headers: Mapping[str, str], body: bytes, url: str) -> tuple[str | None, str | None]:
    """The http(s) hub and the self link a feed response names (`url`: its final URL): the
    `Link` header first, then the document's atom:link elements. Either may be None."""
    hub, self_url = _from_link_header(headers.get("link", ""), url)
    if hub is None or self_url is None:
        doc_hub, doc_self = _from_document(body, url)
        hub, self_url = hub or doc_hub, self_url or doc_self
    if hub is not None and urlsplit(hub).scheme not in ("http", "https"):
        hub = None
    return hub, self_url


def discover(headers: Mapping[str, str], body: bytes, url: str) -> Discovery | None:
    """The hub and topic of a feed response (`url`: its final URL); the topic defaults to `url`
    without a self link. None when no http(s) hub is advertised."""
    hub, self_url = advertised(headers, body, url)
    if hub is None:
        return None
    return Discovery(hub=hub, topic=self_url or url)


def signature_ok(secret: str, header: str | None, body: bytes) -> bool:
    """Whether `X-Hub-Signature: method=hex` is the HMAC of `body` under `secret`, by a known
    method, compared in constant time."""
    if not header or "=" not in header:
        return False
    method, _, given = header.partition("=")
    digest = SIGNATURE_METHODS.get(method.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def new_callback_id() -> str:
    """An unguessable path segment: the callback URL is the subscription's capability."""
    return secrets.token_urlsafe(32)


def new_secret() -> str:
    """A random hub.secret: 64 characters, well under the spec's 200 bytes."""
    return secrets.token_hex(32)


def renew_at(verified: datetime, lease_s: float, rng: random.Random) -> datetime:
    """When to renew a lease granted at `verified`: a random point between 50 % and 80 % of it,
    so that many subscriptions granted together do not all renew together."""
    return verified + timedelta(seconds=lease_s * rng.uniform(*RENEW_WITHIN))


def retry_at(now: datetime, attempts: int, rng: random.Random) -> datetime:
    """When to ask the hub again after the `attempts`-th request went unverified or refused:
    exponential back-off from RETRY_FIRST_S, ±10 % jitter, capped at RETRY_CAP_S."""
    delay = min(RETRY_FIRST_S * 2 ** max(attempts - 1, 0), RETRY_CAP_S)
    return now + timedelta(seconds=min(delay * rng.uniform(0.9, 1.1), RETRY_CAP_S))


def next_step(
    state: str,
    *,
    attempts: int,
    retry: datetime | None,
    renew: datetime | None,
    now: datetime,
) -> str | None:
    """What a subscription row needs now: `subscribe` (again: never verified, or refused),
    `renew` (an active lease reached its renewal point), `unsubscribe` (again), `close` (an
    unsubscription that was never verified), or None."""
    if state in PENDING and retry is not None and retry <= now:
        return "subscribe"
    if state == "active" and renew is not None and renew <= now:
        return "renew"
    if state == "unsubscribing" and retry is not None and retry <= now:
        return "unsubscribe" if attempts < UNSUBSCRIBE_TRIES else "close"
    return None


def is_live(state: str, expires: datetime | None, now: datetime) -> bool:
    """Whether the hub holds a verified lease for us now (a renewal in flight included)."""
    return state in ("active", "renewing") and (expires is None or expires > now)


@dataclass(frozen=True)
class Budget:
    """A callback's token bucket: `tokens` left at `at`."""

    tokens: float
    at: datetime


def take_push(budget: Budget | None, per_minute: int, now: datetime) -> Budget | None:
    """The bucket after taking one push, or None when the callback is over its rate (answered
    429). Bursts of up to `per_minute` pass; it refills at `per_minute` a minute."""
    if budget is None:
        budget = Budget(float(per_minute), now)
    elapsed = max((now - budget.at).total_seconds(), 0.0)
    tokens = min(float(per_minute), budget.tokens + elapsed * per_minute / 60.0)
    if tokens < 1.0:
        return None
    return Budget(tokens - 1.0, now)


def safety_net_due(now: datetime, poll_interval_s: float, rng: random.Random) -> datetime:
    """The next poll of a feed whose pushes are trusted: the WebSub poll interval, ±10 %."""
    return now + timedelta(seconds=poll_interval_s * rng.uniform(0.9, 1.1))
