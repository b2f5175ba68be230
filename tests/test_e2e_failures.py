"""Bad input gets one clear log line naming the feed or sink; the rest carries on; no loss."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import db_rows, file_sink, jsonl, syncd, webhook_sink, write_config
from tests.support.documents import serve_documents
from tests.support.feedserver import FEED_PATH, BloggerFeed, serve_feed


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def entries_of(db: Path, feed: str) -> int:
    rows = db_rows(
        db,
        "SELECT COUNT(*) FROM entries e JOIN feeds f ON f.id = e.feed_id WHERE f.name = ?",
        (feed,),
    )
    return int(rows[0][0])


async def test_broken_feeds_and_dead_webhook_do_not_stop_the_rest(tmp_path: Path) -> None:
    good, broken, slow = BloggerFeed(30), BloggerFeed(60), BloggerFeed(30)
    broken.set_malformed(2, "truncated")
    slow.set_delay(3.0)
    hook_url = f"http://127.0.0.1:{closed_port()}/hook"
    async with serve_feed(good) as g, serve_feed(broken) as b, serve_feed(slow) as s:
        config = write_config(
            tmp_path,
            feeds=[
                {"name": "good", "url": g.url},
                {"name": "broken", "url": b.url},
                {"name": "slow", "url": s.url},
            ],
            sinks=[file_sink(tmp_path), webhook_sink(hook_url, initial="deliver")],
            fetch={"timeout": "1s"},
        )
        db = tmp_path / "syncd.db"
        first = await syncd(config, "sync")
        assert first.code == 1  # some feeds failed; the others were synced and delivered
        logs = first.logs()
        failures = {r["feed"]: r for r in logs if r.get("event") == "feed sync failed"}
        assert set(failures) == {"broken", "slow"}
        assert "failed page: truncated" in failures["broken"]["error"]
        assert "timed out" in failures["slow"]["error"]
        assert all(failures[f]["feed"] == f for f in failures)
        hook_failures = [r for r in logs if r.get("event") == "delivery failed"]
        assert len(hook_failures) == 1 and hook_failures[0]["sink"] == "hook"
        assert "127.0.0.1" in hook_failures[0]["error"] or "refused" in hook_failures[0]["error"]
        # The sink then backs off; that state change is its own line, with its own fields.
        paused = [r for r in logs if r.get("event") == "sink paused"]
        assert len(paused) == 1 and paused[0]["sink"] == "hook"
        assert paused[0]["level"] == "warning" and paused[0]["pause_level"] >= 1
        assert "traceback" not in first.stderr.lower()

        # The good feed and the good page of the broken feed are stored and delivered to the file.
        assert entries_of(db, "good") == 30
        assert entries_of(db, "broken") == 25
        assert entries_of(db, "slow") == 0
        assert len(jsonl(tmp_path / "archive.jsonl")) == 55
        # The dead webhook's deliveries wait; none is lost.
        states = db_rows(db, "SELECT state, COUNT(*) FROM deliveries WHERE sink='hook' GROUP BY 1")
        assert dict(states) == {"failed": 1, "pending": 54}

        # Faults cleared: the next run completes both feeds and emits each entry's event once.
        broken.clear_faults()
        slow.clear_faults()
        second = await syncd(config, "sync")
        assert second.code == 0, second.stderr
    assert entries_of(db, "broken") == 60 and entries_of(db, "slow") == 30
    ids = [r[0] for r in db_rows(db, "SELECT id FROM events")]
    assert len(ids) == 120 and len(set(ids)) == 120
    archive = jsonl(tmp_path / "archive.jsonl")
    assert sorted(e["data"]["seq"] for e in archive) == list(range(1, 121))
    status = await syncd(config, "status", "--json")
    assert status.code == 0
    assert '"pending": ' in status.stdout


@pytest.mark.parametrize("fault", ["html", "empty", "truncated"])
async def test_failed_first_page_is_an_error_not_an_empty_feed(tmp_path: Path, fault: str) -> None:
    feed = BloggerFeed(30)
    if fault == "html":
        feed.set_html_error(1)
    else:
        feed.set_malformed(1, "empty" if fault == "empty" else "truncated")
    async with serve_feed(feed) as server:
        config = write_config(tmp_path, feeds=[{"name": "f", "url": server.url}])
        result = await syncd(config, "sync")
        assert result.code == 1
        (line,) = [r for r in result.logs() if r.get("event") == "feed sync failed"]
        assert line["feed"] == "f" and line["error"]
        db = tmp_path / "syncd.db"
        assert db_rows(db, "SELECT COUNT(*) FROM events") == [(0,)]
        assert db_rows(db, "SELECT last_outcome, consecutive_errors FROM feeds") == [("error", 1)]
        feed.clear_faults()
        assert (await syncd(config, "sync")).code == 0
    assert db_rows(db, "SELECT COUNT(*) FROM events") == [(30,)]


async def test_discovered_private_address_is_refused(tmp_path: Path) -> None:
    """A next link to another host that resolves to loopback is not followed by default."""
    async with serve_feed(BloggerFeed(60)) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "f", "url": server.url}],
            fetch={"allow_private_networks": False},
        )
        result = await syncd(config, "sync")
        assert result.code == 1
        (line,) = [r for r in result.logs() if r.get("event") == "feed sync failed"]
        assert "localhost" in line["error"]
        assert server.model.count(host="localhost") == 0
    # Page 1 (the operator's own URL) was stored; nothing was inferred from the failed crawl.
    assert entries_of(tmp_path / "syncd.db", "f") == 25


async def test_trust_is_per_feed_not_shared_across_feeds(tmp_path: Path) -> None:
    """Feed A is configured at 127.0.0.1, so A may fetch from there. Feed B (configured at
    localhost) links to A's host: that link is B's discovery, and B may not follow it."""
    entries = "".join(
        f"<entry><id>urn:b{i}</id><title>B{i}</title><updated>2024-01-0{i}T00:00:00Z</updated>"
        "</entry>"
        for i in (1, 2, 3)
    )
    async with serve_feed(BloggerFeed(10)) as a:  # one page, no next link
        next_url = f"{a.base}{FEED_PATH}?start-index=1&amp;from=b"
        page = (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f'<title>B</title><id>urn:b</id><link rel="next" href="{next_url}"/>{entries}</feed>'
        ).encode()
        async with serve_documents({"/feed": page}) as b_base:
            b_url = b_base.replace("127.0.0.1", "localhost") + "/feed"
            config = write_config(
                tmp_path,
                feeds=[{"name": "a", "url": a.url}, {"name": "b", "url": b_url}],
                fetch={"allow_private_networks": False},
            )
            result = await syncd(config, "sync")
        assert result.code == 1
        failures = {r["feed"]: r for r in result.logs() if r.get("event") == "feed sync failed"}
        assert set(failures) == {"b"}
        assert "127.0.0.1" in failures["b"]["error"]
        assert "allow_private_networks" in failures["b"]["error"]
        assert [r.path for r in a.model.log if "from=b" in r.path] == []
        assert a.model.count() == 1  # A's own page 1, nothing for B
    db = tmp_path / "syncd.db"
    assert entries_of(db, "a") == 10
    assert entries_of(db, "b") == 3  # B's own page 1 was stored; its discovered link was not


async def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('[[feeds]]\nname = "a"\nurl = "http://x/"\ninterval = "5x"\n')
    result = await syncd(config, "check-config")
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        f"syncd: config error: {config}: feeds[0].interval: '5x' is not a duration"
        ' (use e.g. 30s, 15m, 2h, 1d) or "auto"'
    ]


async def test_bad_sink_option_is_caught_by_check_config(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        feeds=[{"name": "a", "url": "http://127.0.0.1:9/feed"}],
        sinks=[file_sink(tmp_path), {"name": "queue", "type": "kafka"}],
    )
    result = await syncd(config, "check-config")
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert str(config) in line and "sinks[1].type: unknown sink type 'kafka'" in line
    assert "unknown sink type 'kafka'; known types: exec, file, nats, redis, webhook" in line
    assert not (tmp_path / "syncd.db").exists()  # checking opened no store


async def test_a_sink_removed_from_the_config_still_shows_its_waiting_queue(
    tmp_path: Path,
) -> None:
    hook_url = f"http://127.0.0.1:{closed_port()}/hook"
    async with serve_feed(BloggerFeed(5)) as server:
        feeds = [{"name": "f", "url": server.url}]
        config = write_config(
            tmp_path, feeds=feeds, sinks=[webhook_sink(hook_url, initial="deliver")]
        )
        assert (await syncd(config, "sync")).code == 0  # the hook refuses: 5 wait
        write_config(tmp_path, feeds=feeds, sinks=[file_sink(tmp_path)])  # the hook is gone
        status = await syncd(config, "status", "--json")
    assert status.code == 0
    sinks = {s["name"]: s for s in json.loads(status.stdout)["sinks"]}
    assert sinks["hook"]["type"] == "not configured"
    assert sinks["hook"]["pending"] + sinks["hook"]["failed"] == 5
    text = await syncd(config, "status")
    assert "hook (not configured, removed from the config: its queue waits" in text.stdout
