"""The daemon's HTTP server: one aiohttp.web application on the daemon's own event loop.

Routes are mounted in `build_web_app` and nowhere else. Access: /healthz and /readyz answer
anyone who can connect (probes); every other path needs a client address inside
`allowed_networks` and, if a token is configured, `Authorization: Bearer <token>`; the pull API
(/api/) is refused outright on a listener beyond loopback when no token is configured. The server
reads no configuration file and starts nothing on its own: `syncd.daemon` builds and runs it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from syncd.errors import SyncdError
from syncd.web import api, probes, status_page, websub
from syncd.web.services import SERVICES, Services

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Access:
    networks: tuple[Network, ...]
    token: str | None = None

    @classmethod
    def of(cls, networks: Sequence[str], token: str | None) -> Access:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks), token)

    def refusal(self, request: web.Request) -> web.Response | None:
        """Why `request` may not see a protected path, as the response to send; None: it may."""
        try:
            remote = ipaddress.ip_address(request.remote or "")
        except ValueError:
            remote = None
        if isinstance(remote, ipaddress.IPv6Address) and remote.ipv4_mapped is not None:
            remote = remote.ipv4_mapped
        if remote is None or not any(remote in n for n in self.networks):
            return web.json_response(
                {"error": f"{request.remote} is not in http.allowed_networks", "code": "forbidden"},
                status=403,
            )
        if self.token is not None:
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {self.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return web.json_response(
                    {
                        "error": "a bearer token is required (http.token_file)",
                        "code": "unauthorized",
                    },
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="syncd"'},
                )
        return None


def _loopback(request: web.Request) -> bool:
    """Whether the socket the request came in on is a loopback address."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    try:
        return sockname is not None and ipaddress.ip_address(sockname[0]).is_loopback
    except ValueError:
        return False  # a Unix socket path or the like: not provably loopback


def build_web_app(services: Services, access: Access) -> web.Application:
    """The application with every route syncd serves."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # WebSub callbacks come from hubs anywhere: the unguessable id is their capability.
        if request.path not in PUBLIC_PATHS and not request.path.startswith(websub.PREFIX):
            refused = access.refusal(request)
            if refused is not None:
                return refused
            if request.path.startswith("/api/") and access.token is None and not _loopback(request):
                # The API hands out the mirror's content: beyond loopback, only with a token.
                return web.json_response(
                    {
                        "error": "the API needs http.token_file when http.listen is not loopback",
                        "code": "token_required",
                    },
                    status=403,
                )
        return await handler(request)

    app = web.Application(middlewares=[guard, api.json_errors])
    app[SERVICES] = services
    app.add_routes(probes.routes)
    app.add_routes(api.routes)
    app.add_routes(status_page.routes)
    app.add_routes(websub.routes)
    return app


class WebServer:
    """Binds `app` to host:port and serves it until stopped."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        self.host = host
        self.port = port

    async def start(self) -> str:
        """Bind and serve; the address actually bound (port 0 picks a free one)."""
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await self.runner.cleanup()
            why = os.strerror(e.errno) if e.errno else str(e)
            raise SyncdError(
                f"cannot listen on {self.host}:{self.port} (http.listen): {why}"
            ) from None
        host, port = self.runner.addresses[0][:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()
