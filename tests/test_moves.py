"""Feeds that move (DESIGN §4.10): a stable chain of 301/308 to the same feed is adopted; a
temporary redirect, a wandering target or a different feed is followed but never adopted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from syncd.moves import MoveState, observe_move
from tests.support.feedserver import run_on_loopback
from tests.test_sync_fidelity import app_for, atom, entry, sync


@pytest.mark.parametrize(
    ("before", "final", "permanent", "same", "after"),
    [
        (MoveState(None, 0), "/old", False, True, MoveState(None, 0)),  # no redirect
        (MoveState("/new", 2), "/new", False, True, MoveState(None, 0)),  # 302: not a move
        (MoveState(None, 0), "/new", True, True, MoveState("/new", 1)),
        (MoveState("/new", 1), "/new", True, True, MoveState("/new", 2)),
        (MoveState("/new", 2), "/new", True, True, MoveState("/new", 3, adopt=True)),
        (MoveState("/new", 2), "/other", True, True, MoveState("/other", 1)),  # wandering
        (MoveState("/new", 2), "/new", True, False, MoveState("/new", 0)),  # another feed
        (MoveState("/new", 0), "/new", True, None, MoveState("/new", 0)),  # ...stays rejected
        (MoveState("/new", 1), "/new", True, None, MoveState("/new", 2)),  # unchanged page
        (MoveState(None, 0), "/new", True, None, MoveState("/new", 0)),  # unknown: no credit
    ],
)
def test_observe_move(
    before: MoveState, final: str, permanent: bool, same: bool | None, after: MoveState
) -> None:
    got = observe_move(before, requested="/old", final=final, permanent=permanent, same_feed=same)
    assert got == after


def titled(title: str) -> bytes:
    return atom(entry(1) + entry(2)).replace(
        b"<title>T</title>", f"<title>{title}</title>".encode()
    )


@asynccontextmanager
async def moving(route: dict[str, object], hits: list[str]) -> AsyncIterator[str]:
    """/old redirects to /new with route["status"] (or serves route["old"] when it is None)."""

    async def old(request: web.Request) -> web.Response:
        hits.append(request.path)
        status = route["status"]
        if status is None:
            return web.Response(body=route["old"], content_type="application/atom+xml")
        kinds: dict[object, type[web.HTTPMove]] = {
            301: web.HTTPMovedPermanently,
            308: web.HTTPPermanentRedirect,
            302: web.HTTPFound,
        }
        raise kinds[status](location="/new")

    async def new(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=route["new"], content_type="application/atom+xml")

    def make(_port: int) -> web.Application:
        app = web.Application()
        app.router.add_get("/old", old)
        app.router.add_get("/new", new)
        return app

    async with run_on_loopback(make) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("status", [301, 308])
async def test_a_stable_permanent_move_is_adopted(tmp_path: Path, status: int) -> None:
    hits: list[str] = []
    route: dict[str, object] = {"status": status, "new": titled("T")}
    async with moving(route, hits) as base, app_for(tmp_path, base + "/old") as app:
        for _ in range(3):
            await sync(app)
        assert (await app.store.feed_state("f")).adopted_url == base + "/new"
        hits.clear()
        assert await sync(app) == (0, 0, 0)
        assert hits == ["/new"]  # fetched where it lives now


async def test_a_temporary_redirect_is_followed_but_never_adopted(tmp_path: Path) -> None:
    hits: list[str] = []
    route: dict[str, object] = {"status": 302, "new": titled("T")}
    async with moving(route, hits) as base, app_for(tmp_path, base + "/old") as app:
        assert await sync(app) == (2, 0, 0)
        for _ in range(4):
            await sync(app)
        state = await app.store.feed_state("f")
        assert state.adopted_url is None and state.moved_to is None
        assert hits[-2:] == ["/old", "/new"]


async def test_a_move_to_a_different_feed_is_never_adopted(tmp_path: Path) -> None:
    hits: list[str] = []
    route: dict[str, object] = {"status": None, "old": titled("Mine"), "new": titled("Spam")}
    async with moving(route, hits) as base, app_for(tmp_path, base + "/old") as app:
        await sync(app)
        route["status"] = 301  # the old URL now points at some other feed
        for _ in range(4):
            await sync(app)
        assert (await app.store.feed_state("f")).adopted_url is None


async def test_a_new_configured_url_replaces_an_adopted_one(tmp_path: Path) -> None:
    hits: list[str] = []
    route: dict[str, object] = {"status": 301, "new": titled("T")}
    async with moving(route, hits) as base:
        async with app_for(tmp_path, base + "/old") as app:
            for _ in range(3):
                await sync(app)
            assert (await app.store.feed_state("f")).adopted_url == base + "/new"
        # The operator edits the config: their URL wins over the adopted one.
        (tmp_path / "syncd.db-dispatcher.lock").unlink(missing_ok=True)
        async with app_for(tmp_path, base + "/new?v=2") as app:
            hits.clear()
            await sync(app)
            assert (await app.store.feed_state("f")).adopted_url is None
            assert hits == ["/new"]
