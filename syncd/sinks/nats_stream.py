"""The "nats" sink: publishes each event to a NATS JetStream stream and waits for its PubAck.

Every message carries the `Nats-Msg-Id` header set to the event id, so JetStream drops a repeat
within the stream's duplicate window (2 minutes unless the stream says otherwise); past it a
consumer deduplicates on that header (or the envelope's `id`). `Nats-Expected-Stream` makes the
server refuse a subject that lands in a different stream than the configured one.

The stream is checked to exist, never created: retention, storage, limits and the duplicate
window are the operator's decisions (`nats stream add`), and a stream made with defaults
(unlimited, file storage) could fill a disk. A missing stream is a failed attempt that names the
stream; the usual back-off applies and the events wait in the outbox until it exists.

The connection is opened on the first `send` and reopened on the next `send` after it broke;
nats-py's own reconnect is off, so a publish never waits in its buffer past the attempt timeout.
This module makes one attempt per `send`; it does not retry, sleep or log.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import string
import time

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError
from pydantic import field_validator

from syncd.errors import ConfigError
from syncd.model import OutboundEvent, SendOutcome
from syncd.redact import redacted_url
from syncd.sinks import SinkContext, TypedSinkFactory
from syncd.sinks.broker import describe_error, ms_since, routing_of
from syncd.sinks.options import NonEmptyText, SinkOptions

__all__ = ["NatsOptions", "NatsSink", "create_sink", "render_subject", "subject_token"]

_FIELDS = ("feed", "type")
# Characters that stay as they are in a subject token; everything else is %XX-escaped (UTF-8).
_SAFE = frozenset(string.ascii_letters + string.digits + "-_")
_STREAM_NAME = re.compile(r"^[^\s.*>/\\]+$")


def subject_token(value: str) -> str:
    """`value` as one subject token: letters, digits, `-` and `_` kept, every other byte as
    `%XX`, so "news.example" cannot become two tokens or a wildcard, and two different values
    never share a token (the escaping is reversible with urllib's `unquote`)."""
    return (
        "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in value)
        or "%00"
    )


def render_subject(template: str, *, feed: str, type: str) -> str:
    """The subject for one event: `{feed}` becomes one escaped token; `{type}` keeps the dots of
    syncd's event types ("entry.created" → two tokens, so `syncd.*.entry.>` matches them all),
    each part escaped."""
    return template.format(
        feed=subject_token(feed), type=".".join(subject_token(p) for p in type.split("."))
    )


def _check_template(template: str) -> str:
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    unknown = [f for f in fields if f not in _FIELDS]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {{feed}} and {{type}}")
    sample = render_subject(template, feed="f", type="entry.created")
    if any(c.isspace() for c in sample) or not all(sample.split(".")):
        raise ValueError(f"{template!r} does not make a valid subject (empty token or space)")
    if any(tok in ("*", ">") or "*" in tok or ">" in tok for tok in sample.split(".")):
        raise ValueError(f"{template!r} contains a wildcard; a publish subject must not")
    return template


class NatsOptions(SinkOptions):
    """A nats sink's keys: server URL, the subject template, and the stream it must land in."""

    url: NonEmptyText = "nats://127.0.0.1:4222"
    subject: NonEmptyText = "syncd.{feed}.{type}"
    stream: NonEmptyText

    @field_validator("url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        if not re.match(r"^(nats|tls|ws|wss)://[^/\s]+", value):
            raise ValueError(f"{redacted_url(value)!r} is not a nats:// (or tls://) URL")
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return _check_template(value)

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if not _STREAM_NAME.match(value):
            raise ValueError(f"{value!r} is not a stream name (no spaces, '.', '*', '>', '/')")
        return value

    def target(self) -> str:
        return f"{redacted_url(self.url)} stream {self.stream} subject {self.subject}"


class NatsSink:
    """Publishes events to JetStream. Satisfies `syncd.sinks.base.Sink`; owns its connection."""

    def __init__(
        self, name: str, url: str, subject: str, stream: str, timeout_s: float = 15.0
    ) -> None:
        if not timeout_s > 0:
            raise ConfigError(f"must be > 0 seconds (got {timeout_s})", key="timeout")
        self._name = name
        self._url = url
        self._subject = _check_template(subject)
        self._stream = stream
        self._timeout_s = float(timeout_s)
        self._client: Client | None = None
        self._connecting = asyncio.Lock()
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return (
            f"NatsSink(name={self._name!r}, url={redacted_url(self._url)!r}, "
            f"stream={self._stream!r}, subject={self._subject!r})"
        )

    async def send(self, event: OutboundEvent) -> SendOutcome:
        started = time.perf_counter()
        routing = routing_of(event)
        if routing is None:
            return SendOutcome(
                ok=False, error="event body has no data.feed.name to route on", retryable=False
            )
        subject = render_subject(self._subject, feed=routing.feed, type=routing.type)
        try:
            client = await self._connected()
            ack = await client.jetstream(timeout=self._timeout_s).publish(
                subject,
                event.body,
                timeout=self._timeout_s,
                stream=self._stream,
                headers={"Nats-Msg-Id": event.id},
            )
        except _Failed as exc:
            return SendOutcome(ok=False, error=str(exc), latency_ms=ms_since(started))
        except (NatsError, JetStreamError, OSError, TimeoutError) as exc:
            # The reply may have been lost after the server stored the message: the retry
            # carries the same Nats-Msg-Id, which the stream drops as a duplicate.
            await self._drop_client()
            error = f"publish to {subject} failed: {describe_error(exc, secret=self._url)}"
            return SendOutcome(ok=False, error=error, latency_ms=ms_since(started))
        if ack.stream != self._stream:  # the server checks this too (Nats-Expected-Stream)
            error = f"{subject} was stored in stream {ack.stream!r}, not {self._stream!r}"
            return SendOutcome(ok=False, error=error, latency_ms=ms_since(started))
        return SendOutcome(ok=True, latency_ms=ms_since(started))

    async def aclose(self) -> None:
        self._closed = True
        await self._drop_client()

    async def _connected(self) -> Client:
        """The open connection, made (and the stream checked) on first use or after a break."""
        async with self._connecting:
            if self._closed:
                raise _Failed("nats sink is closed")
            client = self._client
            if client is not None and client.is_connected:
                return client
            await self._drop_client()
            client = Client()
            seen: list[Exception] = []

            async def remember(exc: Exception) -> None:
                # nats-py logs every connection error itself unless given a callback, and its
                # NoServersError hides the reason ("Connection refused"); keep the last one.
                seen.append(exc)

            try:
                await client.connect(
                    servers=[self._url],
                    connect_timeout=math.ceil(self._timeout_s),  # nats-py wants whole seconds
                    allow_reconnect=False,
                    # nats-py's server loop never gives up at 0; 1 means two quick tries, then
                    # NoServersError, and the dispatcher's back-off takes over.
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    error_cb=remember,
                    disconnected_cb=_quiet_event,
                    closed_cb=_quiet_event,
                )
            except (NatsError, OSError, TimeoutError) as exc:
                await _close_quietly(client)
                where = redacted_url(self._url)
                reason = describe_error(seen[-1] if seen else exc, secret=self._url)
                raise _Failed(f"cannot connect to {where}: {reason}") from None
            try:
                await client.jetstream(timeout=self._timeout_s).stream_info(self._stream)
            except NotFoundError:
                await _close_quietly(client)
                raise _Failed(
                    f"JetStream stream {self._stream!r} does not exist (create it: nats stream add)"
                ) from None
            except (NatsError, JetStreamError, OSError, TimeoutError) as exc:
                await _close_quietly(client)
                raise _Failed(
                    f"cannot look up stream {self._stream!r}: {describe_error(exc)}"
                ) from None
            self._client = client
            return client

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)


class _Failed(Exception):
    """A failure already described in one line (connect, missing stream, closed)."""


async def _close_quietly(client: Client) -> None:
    # A broken connection is already as closed as it gets.
    with contextlib.suppress(NatsError, OSError, TimeoutError):
        await client.close()


async def _quiet_event() -> None:
    # Without a callback nats-py would log; `send` reports the failure instead.
    return None


def _build(name: str, options: NatsOptions, context: SinkContext) -> NatsSink:
    return NatsSink(name, options.url, options.subject, options.stream, context.timeout_s)


create_sink: TypedSinkFactory[NatsOptions] = TypedSinkFactory(NatsOptions, _build)
"""The `syncd.sinks` entry point for `type = "nats"`."""
