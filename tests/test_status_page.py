"""The status page in a real headless Chromium on a phone-sized screen, against the real
`syncd run`: the numbers it shows are the store's, a feed's link leads to its page, and nothing
makes the page scroll sideways. Plus the same data as JSON, and escaping of hostile titles."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import db_rows, file_sink, webhook_sink, write_config
from tests.support.browser import chromium_page, find_chromium
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import free_port
from tests.support.receiver import ReceiverServer
from tests.test_daemon_http import daemon, eventually, get


async def test_status_page_in_chromium(tmp_path: Path, receiver: ReceiverServer) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    feed = BloggerFeed(12)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": server.url, "interval": "1h"}],
            sinks=[file_sink(tmp_path), webhook_sink(receiver.url, initial="deliver")],
            http={"listen": f"127.0.0.1:{port}"},
        )
        receiver.receiver.set_default(500)  # the hook's deliveries wait: 12 pending
        async with daemon(config):

            async def backfilled() -> bool:
                status, body = await get(base + "/status.json")
                sinks = {s["name"]: s for s in json.loads(body)["sinks"]} if status == 200 else {}
                return bool(sinks.get("archive", {}).get("delivered") == 12)

            await eventually(backfilled)
            entries = db_rows(tmp_path / "syncd.db", "SELECT COUNT(*) FROM entries")[0][0]
            async with chromium_page(chromium) as page:
                await page.open(base + "/")
                cells = await page.evaluate(
                    """Object.fromEntries([...document.querySelectorAll('table')].map(t =>
                        [t.id, [...t.tBodies[0].rows].map(r =>
                            [...r.cells].map(c => c.innerText.trim()))]))"""
                )
                feeds, sinks, events = cells["feeds"], cells["sinks"], cells["events"]
                assert [row[0] for row in feeds] == ["blog"]
                assert feeds[0][1] == "ok"
                assert feeds[0][4] == str(entries) == "12"
                by_sink = {row[0]: row for row in sinks}
                assert by_sink["archive"][2:5] == ["0", "0", "12"]  # waiting, dead, delivered
                assert by_sink["archive"][6] == "enabled"
                assert by_sink["hook"][2] == "12"  # waiting for the failing receiver
                assert by_sink["hook"][5] != "-"  # it has a delivery lag
                assert len(events) == 12 and all(row[2] == "entry.created" for row in events)
                summary = await page.evaluate("document.getElementById('summary').innerText")
                assert "1 feeds" in summary and "12 deliveries pending" in summary
                # A phone-sized screen: the page itself never scrolls sideways.
                widths = await page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert widths[0] <= widths[1], widths

                # Follow the feed's link, as a person would tap it.
                await page.evaluate("document.querySelector('#feeds a').click()")
                await page.loaded(base + "/feeds/blog")
                name = await page.evaluate("document.getElementById('feed-name').innerText")
                facts = await page.evaluate(
                    """Object.fromEntries([...document.querySelectorAll('#facts dt')].map(dt =>
                        [dt.innerText, dt.nextElementSibling.innerText]))"""
                )
                rows = await page.evaluate(
                    "document.querySelector('#events').tBodies[0].rows.length"
                )
                assert name == "blog"
                assert facts["URL"] == server.url
                assert facts["Entries"] == "12"
                assert facts["Consecutive errors"] == "0"
                assert rows == 12
                await page.evaluate("document.getElementById('back').click()")
                await page.loaded(base + "/")


async def test_status_json_is_the_status_command_s_data(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with serve_feed(BloggerFeed(3)) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": server.url, "interval": "1h"}],
            http={"listen": f"127.0.0.1:{port}"},
        )
        async with daemon(config):

            async def synced() -> dict[str, Any] | None:
                status, body = await get(base + "/status.json")
                data = json.loads(body) if status == 200 else {}
                ok = data and data["feeds"][0].get("entries") == 3
                return data if ok else None

            served = await eventually(synced)
            status, missing = await get(base + "/feeds/nope")
            assert status == 404 and "nope" in missing
        proc = await asyncio.create_subprocess_exec(
            *_syncd(),
            "--config",
            str(config),
            "status",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            cwd=str(tmp_path),
        )
        out, _ = await proc.communicate()
    command = json.loads(out)
    assert [f["name"] for f in served["feeds"]] == [f["name"] for f in command["feeds"]]
    assert served["feeds"][0]["entries"] == command["feeds"][0]["entries"] == 3
    assert served["sinks"] == command["sinks"]


def _syncd() -> list[str]:
    import sys

    return [sys.executable, "-m", "syncd"]


def test_hostile_names_and_titles_are_escaped() -> None:
    from datetime import UTC, datetime

    from syncd.overview import Overview
    from syncd.web.status_page import render_index

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    report = {
        "feeds": [{"name": "<b>f</b>", "url": "http://x/", "last_outcome": "ok", "entries": 1}],
        "sinks": [],
    }
    event = {
        "seq": 1,
        "created_at": "2026-11-30T11:59:00+00:00",
        "type": "entry.created",
        "feed": "<b>f</b>",
        "entry_id": "e1",
        "title": "<script>alert(1)</script>",
        "link": 'http://x/" onmouseover="alert(2)',
    }
    html = render_index(report, Overview(taken_at=now), [event], "1 feeds")
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="http://x/&quot; onmouseover=&quot;alert(2)"' in html
    assert 'href="/feeds/%3Cb%3Ef%3C%2Fb%3E"' in html
