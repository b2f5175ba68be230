"""A tiny server of mutable documents by path, for tests that need feeds the Blogger-like server
cannot express (RFC 5005 archives, tombstones, xml:base, servers without validators).

Every request is a 200 with the current bytes (no ETag, no Last-Modified) or a 404; each
request's path is appended to `hits`. Change `docs` between requests to change what is served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager

from aiohttp import web

from tests.support.feedserver import run_on_loopback


@asynccontextmanager
async def serve_documents(
    docs: MutableMapping[str, bytes], hits: list[str] | None = None
) -> AsyncIterator[str]:
    """Serve `docs` on 127.0.0.1; yields the base URL (`http://127.0.0.1:PORT`)."""
    seen = hits if hits is not None else []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        body = docs.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/atom+xml")

    def make(_port: int) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        return app

    async with run_on_loopback(make) as port:
        yield f"http://127.0.0.1:{port}"
