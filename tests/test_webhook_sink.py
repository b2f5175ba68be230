"""WebhookSink against a real aiohttp receiver on 127.0.0.1 that verifies every request.

The receiver checks each request with standardwebhooks' own `Webhook(secret).verify`, exactly as a
real consumer would, and records what it saw so tests can assert on the wire format.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from syncd.errors import ConfigError
from syncd.model import OutboundEvent
from syncd.sinks.webhook import USER_AGENT, WebhookSink, _signer, session_for_webhooks, signature


def make_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def make_event(event_id: str = "evt_0123456789abcdef", seq: int = 1) -> OutboundEvent:
    # Not canonical JSON on purpose (spacing, non-ASCII): the sink must send these exact bytes.
    body = json.dumps(
        {"id": event_id, "type": "entry.created", "data": {"seq": seq, "title": "Café ☕ — ok"}},
        ensure_ascii=False,
        separators=(", ", ": "),
    ).encode()
    return OutboundEvent(id=event_id, seq=seq, type="entry.created", body=body)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    verified_by: list[int]  # indices of the receiver's secrets whose verify() accepted it


@dataclass
class Receiver:
    secrets: list[str]
    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    retry_at: datetime | None = None  # the HTTP-date /busy answers with
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets /slow finish

    def url(self, path: str) -> str:
        return self.base_url + path

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified_by = []
        for i, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified_by.append(i)
        self.requests.append(Request(request.path, headers, body, verified_by))
        if not verified_by:
            return web.Response(status=400, text="signature did not verify")
        match request.path:
            case "/ok" | "/target":
                return web.Response(status=204)
            case "/unavailable":
                return web.Response(status=503, headers={"Retry-After": "1"})
            case "/busy":
                assert self.retry_at is not None
                date = format_datetime(self.retry_at, usegmt=True)
                return web.Response(status=429, headers={"Retry-After": date})
            case "/moved":
                raise web.HTTPMovedPermanently(location=self.url("/target"))
            case "/gone":
                return web.Response(status=410)
            case "/error":
                return web.Response(status=500, text="boom\nstack trace line")
            case "/slow":
                await self.release.wait()
                return web.Response(status=200)
        return web.Response(status=404)


@pytest.fixture
def secrets() -> list[str]:
    return [make_secret(), make_secret()]


@pytest.fixture
async def receiver(secrets: list[str]) -> AsyncIterator[Receiver]:
    recv = Receiver(secrets=secrets)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recv.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    recv.base_url = f"http://{host}:{port}"
    try:
        yield recv
    finally:
        recv.release.set()
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with session_for_webhooks() as s:
        yield s


@pytest.fixture
def closed_port() -> Iterator[int]:
    # Bound but not listening: connecting is refused, and no one else can take the port meanwhile.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def sink_for(
    receiver: Receiver,
    session: aiohttp.ClientSession,
    path: str,
    *,
    secrets: list[str] | None = None,
    timeout_s: float = 15.0,
    clock: Callable[[], datetime] | None = None,
) -> WebhookSink:
    return WebhookSink(
        "hook",
        receiver.url(path),
        receiver.secrets[:1] if secrets is None else secrets,
        timeout_s,
        session=session,
        clock=clock,
    )


async def test_2xx_is_delivered_and_the_signature_verifies(receiver, session) -> None:
    event = make_event()
    outcome = await sink_for(receiver, session, "/ok").send(event)

    assert outcome.ok and outcome.status == 204 and outcome.error is None
    assert outcome.latency_ms > 0
    [req] = receiver.requests
    assert req.verified_by == [0]
    assert req.body == event.body
    assert req.headers["webhook-id"] == event.id
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("syncd")
    stamp = req.headers["webhook-timestamp"]
    assert stamp.isdigit() and abs(int(stamp) - time.time()) < 60


async def test_two_secrets_send_two_signatures_each_verifying_alone(receiver, session) -> None:
    event = make_event()
    outcome = await sink_for(receiver, session, "/ok", secrets=receiver.secrets).send(event)

    assert outcome.ok
    [req] = receiver.requests
    assert req.verified_by == [0, 1]
    parts = req.headers["webhook-signature"].split(" ")
    assert len(parts) == 2 and all(p.startswith("v1,") for p in parts)
    for secret, part in zip(receiver.secrets, parts, strict=True):
        Webhook(secret).verify(req.body, {**req.headers, "webhook-signature": part})
    with pytest.raises(WebhookVerificationError):
        Webhook(make_secret()).verify(req.body, req.headers)


async def test_retries_keep_id_and_body_but_sign_a_fresh_timestamp(receiver, session) -> None:
    # A controllable clock instead of sleeping: each attempt must read it anew and sign that value.
    base = datetime.fromtimestamp(int(time.time()), tz=UTC)
    offsets = iter([0, 7])

    def clock() -> datetime:
        return base + timedelta(seconds=next(offsets))

    sink = sink_for(receiver, session, "/ok", secrets=receiver.secrets, clock=clock)
    event = make_event()
    first = await sink.send(event)
    second = await sink.send(event)

    assert first.ok and second.ok
    one, two = receiver.requests
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == event.id
    assert one.body == two.body == event.body
    assert int(one.headers["webhook-timestamp"]) == int(base.timestamp())
    assert int(two.headers["webhook-timestamp"]) == int(base.timestamp()) + 7
    # Same id and body, new timestamp: the signature had to be recomputed, and it still verifies.
    assert one.headers["webhook-signature"] != two.headers["webhook-signature"]
    assert one.verified_by == two.verified_by == [0, 1]


async def test_503_with_retry_after_seconds(receiver, session) -> None:
    outcome = await sink_for(receiver, session, "/unavailable").send(make_event())
    assert not outcome.ok and outcome.retryable and not outcome.disable_sink
    assert outcome.status == 503
    assert outcome.retry_after_s == 1.0
    assert outcome.error is not None and "503" in outcome.error


async def test_429_with_retry_after_http_date(receiver, session) -> None:
    now = datetime.fromtimestamp(int(time.time()), tz=UTC)
    receiver.retry_at = now + timedelta(seconds=120)
    sink = sink_for(receiver, session, "/busy", clock=lambda: now)
    outcome = await sink.send(make_event())
    assert not outcome.ok and outcome.retryable
    assert outcome.status == 429
    assert outcome.retry_after_s == 120.0


async def test_redirect_is_not_followed(receiver, session) -> None:
    outcome = await sink_for(receiver, session, "/moved").send(make_event())
    assert not outcome.ok and outcome.status == 301
    assert outcome.error is not None
    assert outcome.error.startswith(f"redirect to {receiver.url('/target')} not followed")
    assert receiver.hits("/target") == []
    assert len(receiver.hits("/moved")) == 1


async def test_410_disables_the_sink(receiver, session) -> None:
    outcome = await sink_for(receiver, session, "/gone").send(make_event())
    assert not outcome.ok and outcome.status == 410
    assert outcome.disable_sink and not outcome.retryable


async def test_5xx_is_a_retryable_failure_with_a_one_line_reason(receiver, session) -> None:
    outcome = await sink_for(receiver, session, "/error").send(make_event())
    assert not outcome.ok and outcome.retryable and outcome.status == 500
    assert outcome.retry_after_s is None
    assert outcome.error == "HTTP 500 Internal Server Error: boom stack trace line"


async def test_a_slow_receiver_times_out(receiver, session) -> None:
    outcome = await sink_for(receiver, session, "/slow", timeout_s=0.5).send(make_event())
    assert not outcome.ok and outcome.retryable
    assert outcome.error == "timed out after 0.5s"
    assert outcome.latency_ms >= 400  # it waited for the timeout, it did not fail early
    assert len(receiver.hits("/slow")) == 1


async def test_default_timeout_reads_as_15s(receiver, session) -> None:
    assert "timeout_s=15" in repr(sink_for(receiver, session, "/ok"))


async def test_refused_connection_is_a_readable_failure(session, closed_port, secrets) -> None:
    sink = WebhookSink("hook", f"http://127.0.0.1:{closed_port}/hook", secrets, session=session)
    outcome = await sink.send(make_event())
    assert not outcome.ok and outcome.retryable and outcome.status is None
    assert outcome.error == f"cannot connect to 127.0.0.1:{closed_port}: Connection refused"


async def test_non_utf8_body_is_refused_without_a_request(receiver, session) -> None:
    event = OutboundEvent(id="evt_x", seq=1, type="entry.created", body=b'{"x": "\xff"}')
    outcome = await sink_for(receiver, session, "/ok").send(event)
    assert not outcome.ok and not outcome.retryable
    assert receiver.requests == []


async def test_secrets_never_show_in_repr_or_errors(receiver, session, closed_port) -> None:
    secrets = receiver.secrets
    sink = WebhookSink(
        "hook",
        "https://user:pw@example.invalid/hook?token=abc#frag",
        secrets,
        session=session,
    )
    text = repr(sink)
    assert "example.invalid/hook" in text and "2 redacted" in text
    for leak in ["pw", "token=abc", *secrets, *(s.removeprefix("whsec_") for s in secrets)]:
        assert leak not in text

    errors = []
    for path in ["/unavailable", "/moved", "/gone", "/error"]:
        errors.append(
            (await sink_for(receiver, session, path, secrets=secrets).send(make_event())).error
        )
    refused = WebhookSink("h", f"http://127.0.0.1:{closed_port}/", secrets, session=session)
    errors.append((await refused.send(make_event())).error)
    for error in errors:
        assert error
        assert not any(s.removeprefix("whsec_")[:12] in error for s in secrets)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("c2VjcmV0IGtleSBoZXJl", "must start with 'whsec_'"),
        ("whsec_not*base64!", "not valid base64"),
        ("whsec_", "is empty"),
    ],
)
async def test_bad_secrets_are_config_errors_that_do_not_echo_them(
    session, secret: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        WebhookSink("hook", "http://127.0.0.1:9/", [make_secret(), secret], session=session)
    assert message in str(info.value)
    assert "secret #2" in str(info.value)
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(info.value)


async def test_secret_read_from_a_file_may_end_with_a_newline(receiver, session) -> None:
    sink = sink_for(receiver, session, "/ok", secrets=[receiver.secrets[0] + "\n"])
    assert (await sink.send(make_event())).ok
    assert receiver.requests[0].verified_by == [0]


async def test_constructor_rejects_unusable_settings(session) -> None:
    with pytest.raises(ConfigError):
        WebhookSink("hook", "http://127.0.0.1:9/", [], session=session)
    with pytest.raises(TypeError):
        WebhookSink("hook", "http://127.0.0.1:9/", make_secret(), session=session)
    with pytest.raises(ConfigError):
        WebhookSink("hook", "ftp://example.com/", [make_secret()], session=session)
    with pytest.raises(ConfigError):
        WebhookSink("hook", "http://127.0.0.1:9/", [make_secret()], 0, session=session)


async def test_aclose_leaves_the_shared_session_open(receiver, session) -> None:
    sink = sink_for(receiver, session, "/ok")
    await sink.aclose()
    await sink.aclose()
    assert not session.closed
    assert (await sink_for(receiver, session, "/ok").send(make_event())).ok


async def test_concurrent_sends_all_arrive_signed(receiver, session) -> None:
    sink = sink_for(receiver, session, "/ok", secrets=receiver.secrets)
    events = [make_event(f"evt_{i:04d}", i) for i in range(40)]
    outcomes = await asyncio.gather(*(sink.send(e) for e in events))
    assert all(o.ok for o in outcomes)
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == [e.id for e in events]
    assert all(r.verified_by == [0, 1] for r in receiver.requests)


@given(
    msg_id=st.text(min_size=1, max_size=40),
    unix=st.integers(min_value=0, max_value=2**34),
    text=st.text(max_size=300),
    keys=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=3),
)
def test_the_signature_is_the_packages_over_the_body_text(
    msg_id: str, unix: int, text: str, keys: list[bytes]
) -> None:
    """Differential: signed from the body's bytes, the header equals what standardwebhooks
    signs from its text, for every key (any id, time and text, surrogates left out by UTF-8)."""
    body = text.encode("utf-8", "surrogatepass")
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        return  # not UTF-8: the sink refuses such a body before signing
    at = datetime.fromtimestamp(unix, tz=UTC)
    expected = " ".join(Webhook(key).sign(msg_id, at, decoded) for key in keys)
    assert signature(keys, msg_id, unix, body) == expected


def test_a_secret_is_read_as_its_base64_key() -> None:
    key = os.urandom(24)
    assert _signer("whsec_" + base64.b64encode(key).decode().rstrip("=") + "\n", 0) == key
