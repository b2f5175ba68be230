"""GET /healthz, /readyz and /metrics: what load balancers, systemd helpers and Prometheus ask."""

from __future__ import annotations

from aiohttp import web

from syncd.metrics import CONTENT_TYPE
from syncd.web.services import SERVICES

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    report = await request.app[SERVICES].health.check()
    body = {
        "status": "ok" if report.ok else "unhealthy",
        "reasons": report.reasons,
        "loop_lag_s": round(report.loop_lag_s, 3),
    }
    return web.json_response(body, status=200 if report.ok else 503)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    waiting = request.app[SERVICES].health.readiness()
    body = {"status": "ready" if not waiting else "not ready", "waiting_for": waiting}
    return web.json_response(body, status=503 if waiting else 200)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    # The store gauges are index-only aggregates, a few milliseconds.
    body = await request.app[SERVICES].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
