"""The webhook sink: POSTs each event to one URL, signed as Standard Webhooks specifies.

Every attempt carries `webhook-id` (the event id, the same on every retry, so receivers can
deduplicate), a fresh `webhook-timestamp` (receivers reject more than 5 minutes of skew, and
retries run for days) and `webhook-signature` (one `v1,<sig>` per configured secret, so a key
rotation needs no downtime). Only 2xx counts as delivered; redirects are not followed.

This module makes one HTTP attempt per `send` and reports the outcome. It must not retry, sleep,
log, or let a secret reach an error message or repr; the dispatcher owns the retry policy.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from syncd import __version__
from syncd.errors import ConfigError
from syncd.model import OutboundEvent, SendOutcome
from syncd.redact import redacted_url
from syncd.retry import parse_retry_after
from syncd.sinks.webhook_secrets import SECRET_PREFIX as _SECRET_PREFIX

__all__ = ["USER_AGENT", "WebhookSink", "session_for_webhooks"]

USER_AGENT = f"syncd/{__version__}"

_SNIPPET_BYTES = 200  # how much of an error response body goes into the error message


def _utc_now() -> datetime:
    return datetime.now(UTC)


def session_for_webhooks(
    *,
    timeout_s: float = 15.0,
    connect_timeout_s: float = 10.0,
    limit: int = 64,
    limit_per_host: int = 16,
) -> aiohttp.ClientSession:
    """A ClientSession for webhook deliveries, separate from the feed-fetching session.

    Must be called with an event loop running; the caller owns it (`async with` or `await
    .close()`). Timeouts are explicit because aiohttp's default total is 300 s; `WebhookSink`
    still sets its own per-request total. No cookie jar (a receiver must not be able to make
    deliveries stateful) and no proxy settings from the environment (trust_env=False), so what
    the config says is what happens.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host),
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


def _signer(secret: str, index: int) -> bytes:
    """Validate one "whsec_" + base64 secret and return its key; errors never echo the secret."""
    # Secrets usually come from files, which end with a newline.
    text = secret.strip()
    what = f"secret #{index + 1}"
    if not text.startswith(_SECRET_PREFIX):
        raise ConfigError(
            f"{what} must start with {_SECRET_PREFIX!r} (Standard Webhooks format)", key="secrets"
        )
    encoded = text[len(_SECRET_PREFIX) :]
    try:
        # validate=True: the package's own decoding silently drops non-base64 characters,
        # which would turn a typo into a different key instead of an error.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{what} is not valid base64 after {_SECRET_PREFIX!r}", key="secrets"
        ) from None
    if not key:
        raise ConfigError(f"{what} is empty", key="secrets")
    return key


def signature(keys: Sequence[bytes], msg_id: str, unix: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,<base64 HMAC-SHA256>` per key over
    `{msg_id}.{unix}.{body}`, as Standard Webhooks specifies (and its package computes from the
    body's text; signed here from the bytes, which are that text's UTF-8, with no decode and
    re-encode of every body)."""
    signed = b"%s.%d.%s" % (msg_id.encode(), unix, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode() for key in keys
    )


def _one_line(text: str, limit: int = _SNIPPET_BYTES) -> str:
    """Collapse untrusted text (a response body, a Location) to one short printable line."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class WebhookSink:
    """Delivers events to one Standard Webhooks receiver. Satisfies `syncd.sinks.base.Sink`.

    `session` is shared and not owned: `aclose` leaves it open. `clock` supplies the
    `webhook-timestamp` (and "now" for an HTTP-date Retry-After); tests inject it.
    """

    def __init__(
        self,
        name: str,
        url: str,
        secrets: Sequence[str],
        timeout_s: float = 15.0,
        *,
        session: aiohttp.ClientSession,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(secrets, str):
            # A bare string is a Sequence[str] too; iterating it would sign with each character.
            raise TypeError("secrets must be a sequence of strings, not a string")
        if not secrets:
            raise ConfigError("a webhook sink needs at least one secret", key="secrets")
        if not timeout_s > 0:
            raise ConfigError(f"must be > 0 seconds (got {timeout_s})", key="timeout")
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(
                f"must be an absolute http(s) URL (got {redacted_url(str(parsed))})", key="url"
            )
        self._name = name
        self._url = parsed
        self._signers = tuple(_signer(s, i) for i, s in enumerate(secrets))
        self._timeout_s = float(timeout_s)
        self._timeout = aiohttp.ClientTimeout(total=self._timeout_s)  # immutable: one for all
        self._session = session
        self._clock = clock or _utc_now

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return (
            f"WebhookSink(name={self._name!r}, url={redacted_url(str(self._url))!r}, "
            f"secrets=<{len(self._signers)} redacted>, timeout_s={self._timeout_s:g})"
        )

    async def aclose(self) -> None:
        # Nothing owned: the session is shared with the other webhook sinks.
        return None

    def _headers(self, event: OutboundEvent) -> dict[str, str]:
        # Fresh on every call: a retry days later must not carry a stale timestamp. Whole seconds,
        # because that is what the header carries and what is signed.
        unix = int(self._clock().timestamp())
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": event.id,
            "webhook-timestamp": str(unix),
            "webhook-signature": signature(self._signers, event.id, unix, event.body),
        }

    async def send(self, event: OutboundEvent) -> SendOutcome:
        body = event.body
        if not body.isascii():
            try:
                # Signatures are over the body's text (Standard Webhooks): it must be UTF-8.
                body.decode("utf-8")
            except UnicodeDecodeError:
                return SendOutcome(ok=False, error="event body is not UTF-8", retryable=False)
        headers = self._headers(event)
        started = time.perf_counter()
        try:
            async with self._session.post(
                self._url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                status = resp.status
                if 200 <= status < 300:
                    return SendOutcome(ok=True, status=status, latency_ms=_ms_since(started))
                return await self._failure(resp, started)
        except TimeoutError:
            # Also covers aiohttp's ServerTimeoutError / ConnectionTimeoutError subclasses.
            error = f"timed out after {self._timeout_s:g}s"
        except aiohttp.ClientConnectorError as exc:
            error = f"cannot connect to {exc.host}:{exc.port}: {_os_reason(exc)}"
        except aiohttp.ClientError as exc:
            error = _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except OSError as exc:
            error = f"network error: {_os_reason(exc)}"
        return SendOutcome(ok=False, error=error, latency_ms=_ms_since(started))

    async def _failure(self, resp: aiohttp.ClientResponse, started: float) -> SendOutcome:
        status = resp.status
        if 300 <= status < 400:
            location = resp.headers.get("Location")
            target = _one_line(location) if location else "(no Location)"
            return SendOutcome(
                ok=False,
                status=status,
                error=f"redirect to {target} not followed (HTTP {status})",
                latency_ms=_ms_since(started),
            )
        if status == 410:
            return SendOutcome(
                ok=False,
                status=status,
                error="HTTP 410 Gone: the receiver retired this endpoint; sink disabled",
                retryable=False,
                disable_sink=True,
                latency_ms=_ms_since(started),
            )
        retry_after_s = None
        if status in (429, 503):
            retry_after_s = parse_retry_after(resp.headers.get("Retry-After"), self._clock())
        # A little of the body helps an operator ("invalid signature"); reading all of it could be
        # unbounded, and the rest is dropped with the connection.
        snippet = _one_line((await resp.content.read(_SNIPPET_BYTES)).decode("utf-8", "replace"))
        error = f"HTTP {status} {resp.reason or ''}".rstrip()
        return SendOutcome(
            ok=False,
            status=status,
            error=f"{error}: {snippet}" if snippet else error,
            retry_after_s=retry_after_s,
            latency_ms=_ms_since(started),
        )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _os_reason(exc: OSError) -> str:
    """The OS-level reason of a connection error, e.g. "Connection refused"."""
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    # asyncio puts "Connect call failed (addr)" in strerror; the errno says it plainer. Resolver
    # errors (gaierror) carry EAI_* codes, which os.strerror does not know.
    if not isinstance(cause, socket.gaierror) and isinstance(cause.errno, int) and cause.errno > 0:
        return os.strerror(cause.errno)
    return cause.strerror or _one_line(str(cause)) or type(cause).__name__
