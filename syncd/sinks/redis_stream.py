"""The "redis" sink: appends each event to a Redis Stream with XADD, capped by `MAXLEN ~`.

An entry has the fields `id` (the event id), `type`, `seq` and `body` (the envelope, byte for
byte). Redis picks the entry id (`*`): an id derived from the event (its seq) would have to grow
strictly, which a retried event sent after later ones, a second syncd database, or a rebuilt one
breaks — the XADD would be refused and the event could never be delivered.

Deduplication is the event id. XADD runs in one Lua script with a marker key
(`<stream>:dedupe:<event id>`, on the stream's cluster slot) that remembers the entry for
`dedupe_window`: a retry inside the window (the reply to the first XADD was lost) returns the
first entry instead of adding another. Past the window, or with `dedupe_window = 0`, a consumer
deduplicates on the `id` field (see the README). Script effects are atomic, in the AOF too.

Durability is Redis's: an acknowledged XADD survives a killed redis-server only with the AOF on
(`appendonly yes`); with snapshots alone it can be lost, and syncd has already counted it as
delivered. The client is created on the first `send`; its pool reconnects on the next command
after a break. One attempt per `send`: redis-py's own retries are off, and nothing sleeps or logs.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import Field
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from syncd.configmodels import Duration
from syncd.errors import ConfigError
from syncd.model import OutboundEvent, SendOutcome
from syncd.redact import redacted_url
from syncd.sinks import SinkContext, TypedSinkFactory
from syncd.sinks.broker import describe_error, ms_since
from syncd.sinks.options import NonEmptyText, SinkOptions

__all__ = ["RedisOptions", "RedisSink", "create_sink", "dedupe_key"]

# KEYS: stream, marker. ARGV: window seconds, maxlen (0: none), id, type, seq, body.
_XADD_ONCE = """
local window = tonumber(ARGV[1])
if window > 0 then
  local first = redis.call('GET', KEYS[2])
  if first then return first end
end
local entry
if tonumber(ARGV[2]) > 0 then
  entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
    'id', ARGV[3], 'type', ARGV[4], 'seq', ARGV[5], 'body', ARGV[6])
else
  entry = redis.call('XADD', KEYS[1], '*',
    'id', ARGV[3], 'type', ARGV[4], 'seq', ARGV[5], 'body', ARGV[6])
end
if window > 0 then redis.call('SET', KEYS[2], entry, 'EX', window) end
return entry
"""


def dedupe_key(stream: str, event_id: str) -> str:
    """The marker key of one event; `{stream}` is a hash tag, so it shares the stream's slot."""
    return f"{{{stream}}}:dedupe:{event_id}"


class RedisOptions(SinkOptions):
    """A redis sink's keys: server URL, stream key, approximate length cap, dedupe window."""

    url: NonEmptyText = "redis://127.0.0.1:6379/0"
    stream: NonEmptyText
    # None: never trimmed. Trimming drops the oldest entries whether or not anyone read them.
    maxlen: int | None = Field(default=None, gt=0)
    dedupe_window: Duration = 86400.0

    def target(self) -> str:
        return f"{redacted_url(self.url)} stream {self.stream}"


class RedisSink:
    """Appends events to a Redis Stream. Satisfies `syncd.sinks.base.Sink`; owns its client."""

    def __init__(
        self,
        name: str,
        url: str,
        stream: str,
        *,
        maxlen: int | None = None,
        dedupe_window_s: float = 86400.0,
        timeout_s: float = 15.0,
    ) -> None:
        if not timeout_s > 0:
            raise ConfigError(f"must be > 0 seconds (got {timeout_s})", key="timeout")
        if dedupe_window_s < 0:
            raise ConfigError("must not be negative", key="dedupe_window")
        self._name = name
        self._url = url
        self._stream = stream
        self._maxlen = maxlen or 0
        # Whole seconds for SET EX; a window under a second still means "remember it".
        self._window = int(dedupe_window_s) or (1 if dedupe_window_s > 0 else 0)
        self._timeout_s = float(timeout_s)
        self._client: Redis | None = None
        self._script: AsyncScript | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return (
            f"RedisSink(name={self._name!r}, url={redacted_url(self._url)!r}, "
            f"stream={self._stream!r}, maxlen={self._maxlen or None})"
        )

    async def send(self, event: OutboundEvent) -> SendOutcome:
        started = time.perf_counter()
        if self._closed:
            return SendOutcome(ok=False, error="redis sink is closed")
        script = self._xadd_once()
        try:
            async with asyncio.timeout(self._timeout_s):
                await script(
                    keys=[self._stream, dedupe_key(self._stream, event.id)],
                    args=[self._window, self._maxlen, event.id, event.type, event.seq, event.body],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            # The pool drops a broken connection and opens a new one for the next attempt; a
            # retry of an XADD whose reply was lost finds its marker and adds nothing.
            reason = describe_error(exc, secret=self._url)
            error = f"XADD to {self._stream} at {redacted_url(self._url)} failed: {reason}"
            return SendOutcome(ok=False, error=error, latency_ms=ms_since(started))
        return SendOutcome(ok=True, latency_ms=ms_since(started))

    async def aclose(self) -> None:
        self._closed = True
        client, self._client, self._script = self._client, None, None
        if client is not None:
            await client.aclose()

    def _xadd_once(self) -> AsyncScript:
        if self._script is None:
            client = Redis.from_url(
                self._url,
                socket_connect_timeout=self._timeout_s,
                socket_timeout=self._timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._client = client
            # EVALSHA, loading the script again after a restart emptied the script cache.
            self._script = client.register_script(_XADD_ONCE)
        return self._script


def _build(name: str, options: RedisOptions, context: SinkContext) -> RedisSink:
    return RedisSink(
        name,
        options.url,
        options.stream,
        maxlen=options.maxlen,
        dedupe_window_s=options.dedupe_window,
        timeout_s=context.timeout_s,
    )


create_sink: TypedSinkFactory[RedisOptions] = TypedSinkFactory(RedisOptions, _build)
"""The `syncd.sinks` entry point for `type = "redis"`."""
