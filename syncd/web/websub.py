"""The WebSub callback routes, `/websub/{id}`: a hub's intent verification (GET) and content
distribution (POST). Public like the probes (hubs are not in allowed_networks): the unguessable id
is the capability. Thin: syncd.subscriber decides and commits."""

from __future__ import annotations

from aiohttp import web

from syncd.web.services import SERVICES

routes = web.RouteTableDef()
PREFIX = "/websub/"


@routes.get(PREFIX + "{id}")
async def verify(request: web.Request) -> web.Response:
    subscriber = request.app[SERVICES].websub
    if subscriber is None:
        return web.Response(status=404)
    answer = await subscriber.verify(request.match_info["id"], request.query)
    return web.Response(status=answer.status, text=answer.body, content_type="text/plain")


@routes.post(PREFIX + "{id}")
async def distribute(request: web.Request) -> web.Response:
    subscriber = request.app[SERVICES].websub
    if subscriber is None:
        return web.Response(status=410)
    # The body cap of a fetched page ([fetch] max_body_bytes), read no further than that.
    cap = subscriber.max_body_bytes()
    sub_id = request.match_info["id"]
    if request.content_length is not None and request.content_length > cap:
        await subscriber.too_large(sub_id)
        return web.Response(status=413)
    body = await request.content.read(cap + 1)
    if len(body) > cap:
        await subscriber.too_large(sub_id)
        return web.Response(status=413)
    answer = await subscriber.receive(sub_id, body, request.headers)
    return web.Response(status=answer.status, text=answer.body)
