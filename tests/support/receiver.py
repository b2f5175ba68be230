"""A scriptable Standard Webhooks receiver for end-to-end tests.

:class:`Receiver` is an aiohttp application on 127.0.0.1 (a free port by default) that accepts any
method on any path, records every request (headers, raw body, arrival time) and verifies it with
``standardwebhooks.Webhook(secret).verify(body, headers)`` — ``verified`` is recorded, the request
is answered either way.

Answers come from a script: a queue of :class:`Reply` (status, headers, delay before answering,
body) consumed one per request, then the default reply (200).  ``Reply.hang()`` waits an hour,
longer than any client timeout; when the client gives up and disconnects, the handler is cancelled
and the request is recorded as not answered.

Only requests that were *answered* with a 2xx count as delivered: :meth:`Receiver.events` returns
their parsed JSON bodies in arrival order, :meth:`Receiver.ids` their event ids, and
:meth:`Receiver.wait_for` polls until enough have arrived.

Use in-process with ``async with serve_receiver(secret) as rx:`` (``rx.url`` is the hook URL), or
as a subprocess with ``python -m tests.support.receiver --secret S --log FILE`` (prints its port on
stdout, appends one JSON line per finished request to FILE, exits 0 on SIGTERM); see
:func:`spawn_receiver` and :func:`read_log`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from standardwebhooks import Webhook

from tests.support.feedserver import REPO_ROOT, read_port, run_on_loopback, stop_process

__all__ = [
    "HANG_SECONDS",
    "TEST_SECRET",
    "ReceivedRequest",
    "Receiver",
    "Reply",
    "SpawnedReceiver",
    "parse_script",
    "read_log",
    "serve_receiver",
    "spawn_receiver",
]

TEST_SECRET = "whsec_" + base64.b64encode(b"syncd-test-webhook-secret-32byte").decode()
HANG_SECONDS = 3600.0
HOOK_PATH = "/hook"


@dataclass(frozen=True)
class Reply:
    """How to answer one request: wait ``delay`` seconds, then ``status`` with headers and body."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: str = ""

    @classmethod
    def hang(cls) -> Reply:
        """A reply that never comes in practice (the client times out first)."""
        return cls(delay=HANG_SECONDS)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as received, and what became of it."""

    seq: int  # 0-based arrival order
    method: str
    path: str  # path and query
    headers: Mapping[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes
    received_at: float  # time.time() at arrival
    monotonic: float  # time.monotonic() at arrival
    verified: bool  # standardwebhooks verification with the receiver's secret succeeded
    verify_error: str | None
    reply: Reply
    answered: bool = False  # the reply was sent (False while waiting, or if the client left)

    @property
    def status(self) -> int:
        """The status the script chose (sent only if ``answered``)."""
        return self.reply.status

    @property
    def accepted(self) -> bool:
        """Answered with a 2xx: the sender saw a successful delivery."""
        return self.answered and 200 <= self.reply.status < 300

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not)."""
        return json.loads(self.body)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (body as text, undecodable bytes replaced) for the --log file."""
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", errors="replace"),
            "received_at": self.received_at,
            "verified": self.verified,
            "verify_error": self.verify_error,
            "status": self.reply.status,
            "answered": self.answered,
            "accepted": self.accepted,
        }


class Receiver:
    """Records, verifies and answers webhook requests according to a script."""

    def __init__(
        self,
        secret: str = TEST_SECRET,
        *,
        script: Iterable[Reply | int] = (),
        default: Reply | int = 200,
        log_file: IO[str] | None = None,
    ) -> None:
        self.secret = secret
        self._webhook = Webhook(secret)
        self._script: deque[Reply] = deque(_reply(r) for r in script)
        self.default = _reply(default)
        self._requests: list[ReceivedRequest] = []
        self._log_file = log_file

    # ----- scripting -----

    def push(self, *replies: Reply | int) -> None:
        """Queue replies (an int is a bare status) for the next requests, in order."""
        self._script.extend(_reply(r) for r in replies)

    def set_default(self, reply: Reply | int) -> None:
        """The reply used once the script is exhausted."""
        self.default = _reply(reply)

    def hang(self, on: bool = True) -> None:
        """Make the default reply hang (or answer 200 again with ``on=False``)."""
        self.default = Reply.hang() if on else Reply()

    @property
    def pending_script(self) -> list[Reply]:
        return list(self._script)

    # ----- reading -----

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request so far, in arrival order."""
        return list(self._requests)

    def accepted(self) -> list[ReceivedRequest]:
        """Requests answered with a 2xx, in arrival order."""
        return [r for r in self._requests if r.accepted]

    def events(self) -> list[Any]:
        """Parsed JSON bodies of requests answered 2xx, in arrival order (duplicates kept)."""
        return [r.json() for r in self.accepted()]

    def ids(self) -> list[str]:
        """The ``id`` of each accepted event, in arrival order (duplicates kept)."""
        return [str(event.get("id")) for event in self.events()]

    def count(self, status: int | None = None, *, verified: bool | None = None) -> int:
        """Requests received, optionally only those given ``status`` or verification outcome."""
        return sum(
            1
            for r in self._requests
            if (status is None or r.reply.status == status)
            and (verified is None or r.verified == verified)
        )

    def reset(self) -> None:
        """Forget the recorded requests (the script is kept)."""
        self._requests.clear()

    async def wait_for(self, count: int, timeout: float = 10.0, *, poll: float = 0.01) -> list[Any]:  # noqa: ASYNC109
        """Wait until at least ``count`` events were accepted; return them all.

        Raises ``TimeoutError`` describing what did arrive.
        """
        deadline = time.monotonic() + timeout
        while len(self.accepted()) < count:
            if time.monotonic() >= deadline:
                statuses = [(r.reply.status, r.answered) for r in self._requests]
                raise TimeoutError(
                    f"{len(self.accepted())} of {count} events accepted after {timeout}s; "
                    f"requests (status, answered): {statuses}"
                )
            await asyncio.sleep(poll)
        return self.events()

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:  # noqa: ASYNC109
        """Wait until at least ``count`` requests arrived (answered or not)."""
        deadline = time.monotonic() + timeout
        while len(self._requests) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(self._requests)} of {count} requests after {timeout}s")
            await asyncio.sleep(0.01)
        return self.requests

    # ----- serving -----

    def reply_for(self, body: bytes) -> Reply:
        """The answer to the request carrying `body`: the script's next reply, else the default.
        Subclasses may answer by content."""
        return self._script.popleft() if self._script else self.default

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """None if the signature verifies, else why not."""
        try:
            self._webhook.verify(body, dict(headers))
        except Exception as exc:  # any failure (bad header, bad base64, bad JSON) is "not verified"
            return f"{type(exc).__name__}: {exc}"
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        body = await request.read()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        reply = self.reply_for(body)
        error = self.verify(body, headers)
        record = ReceivedRequest(
            seq=len(self._requests),
            method=request.method,
            path=request.path_qs,
            headers=headers,
            body=body,
            received_at=time.time(),
            monotonic=arrived,
            verified=error is None,
            verify_error=error,
            reply=reply,
        )
        self._requests.append(record)
        if reply.delay > 0:
            try:
                await asyncio.sleep(reply.delay)
            except asyncio.CancelledError:  # the client gave up (or the server is stopping)
                self._write_log(record)
                raise
        # recorded (and logged) before the bytes go out, so a sender that saw the reply always
        # finds it recorded as answered
        record = dataclasses.replace(record, answered=True)
        self._requests[record.seq] = record
        self._write_log(record)
        return web.Response(status=reply.status, headers=dict(reply.headers), text=reply.body)

    def _write_log(self, record: ReceivedRequest) -> None:
        if self._log_file is not None:
            self._log_file.write(json.dumps(record.to_json()) + "\n")
            self._log_file.flush()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def _reply(value: Reply | int) -> Reply:
    return value if isinstance(value, Reply) else Reply(status=value)


@dataclass(frozen=True)
class ReceiverServer:
    """A running in-process receiver: ``url`` is the hook URL, ``receiver`` the recorder."""

    port: int
    receiver: Receiver

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + HOOK_PATH

    # the recorder's helpers, for brevity in tests
    def events(self) -> list[Any]:
        return self.receiver.events()

    def ids(self) -> list[str]:
        return self.receiver.ids()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:  # noqa: ASYNC109
        return await self.receiver.wait_for(count, timeout)


@contextlib.asynccontextmanager
async def serve_receiver(
    secret: str = TEST_SECRET,
    *,
    script: Iterable[Reply | int] = (),
    default: Reply | int = 200,
    port: int = 0,
    receiver: Receiver | None = None,
) -> AsyncIterator[ReceiverServer]:
    """Run a receiver in this event loop: ``async with serve_receiver(secret) as rx:``."""
    recorder = (
        receiver if receiver is not None else Receiver(secret, script=script, default=default)
    )
    async with run_on_loopback(lambda _port: recorder.make_app(), port) as chosen:
        yield ReceiverServer(port=chosen, receiver=recorder)


# --------------------------------------------------------------------------------------------
# a receiver in another process


def parse_script(text: str) -> list[Reply]:
    """Parse ``--status-script``.

    Either a JSON list whose items are statuses or objects ``{"status", "headers", "delay",
    "body"}``, or a comma-separated list of ``STATUS``, ``STATUS@DELAY`` or ``hang``
    (e.g. ``500,503@0.5,hang,200``).
    """
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("a JSON status script must be a list")
        replies: list[Reply] = []
        for item in items:
            if isinstance(item, int):
                replies.append(Reply(status=item))
            elif isinstance(item, dict):
                replies.append(
                    Reply(
                        status=int(item.get("status", 200)),
                        headers={str(k): str(v) for k, v in dict(item.get("headers", {})).items()},
                        delay=float(item.get("delay", 0.0)),
                        body=str(item.get("body", "")),
                    )
                )
            else:
                raise ValueError(f"bad script item {item!r}")
        return replies
    replies = []
    for token in (t.strip() for t in text.split(",")):
        if token == "hang":
            replies.append(Reply.hang())
        elif "@" in token:
            status, delay = token.split("@", 1)
            replies.append(Reply(status=int(status), delay=float(delay)))
        else:
            replies.append(Reply(status=int(token)))
    return replies


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records a subprocess receiver appended to its ``--log`` file (complete lines only)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            records.append(json.loads(line))
    return records


@dataclass(frozen=True)
class SpawnedReceiver:
    """A receiver running as a subprocess; what it received is in ``log_path``."""

    port: int
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HOOK_PATH}"

    def records(self) -> list[dict[str, Any]]:
        return read_log(self.log_path)

    def events(self) -> list[Any]:
        """Parsed bodies of the requests it answered 2xx."""
        return [json.loads(r["body"]) for r in self.records() if r["accepted"]]


@contextlib.asynccontextmanager
async def spawn_receiver(
    log_path: Path,
    *,
    secret: str = TEST_SECRET,
    status_script: str = "",
    delay: float = 0.0,
    status: int = 200,
    port: int = 0,
) -> AsyncIterator[SpawnedReceiver]:
    """Run ``python -m tests.support.receiver`` as a subprocess for the duration of the block."""
    argv = [
        sys.executable,
        "-m",
        "tests.support.receiver",
        f"--port={port}",
        f"--secret={secret}",
        f"--status-script={status_script}",
        f"--delay={delay}",
        f"--status={status}",
        f"--log={log_path}",
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        yield SpawnedReceiver(port=await read_port(process), process=process, log_path=log_path)
    finally:
        await stop_process(process)


async def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.receiver")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--secret", default=TEST_SECRET, help="whsec_… secret to verify with")
    parser.add_argument("--status-script", default="", help="e.g. 500,503@0.5,hang or a JSON list")
    parser.add_argument("--delay", type=float, default=0.0, help="delay of the default reply")
    parser.add_argument("--status", type=int, default=200, help="status of the default reply")
    parser.add_argument("--hang", action="store_true", help="the default reply hangs")
    parser.add_argument("--log", type=Path, help="append one JSON line per finished request")
    args = parser.parse_args(argv)
    default = Reply.hang() if args.hang else Reply(status=args.status, delay=args.delay)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.ExitStack() as stack:
        log_file = stack.enter_context(args.log.open("a", encoding="utf-8")) if args.log else None
        receiver = Receiver(
            args.secret, script=parse_script(args.status_script), default=default, log_file=log_file
        )
        async with serve_receiver(receiver=receiver, port=args.port) as server:
            print(server.port, flush=True)
            await stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
