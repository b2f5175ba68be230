"""The operator's delivery commands as real `syncd` processes: deliveries list/show/retry/
recover/replay, sinks list/enable/disable, status, and a running daemon obeying them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.conftest import Result, db_rows, file_sink, syncd, webhook_sink, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import start_syncd
from tests.support.receiver import ReceiverServer


def ok(result: Result) -> Result:
    assert result.code == 0, result.stderr
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def one_line_error(result: Result, code: int) -> str:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("syncd: ")
    return line


async def test_list_show_retry_recover_replay(tmp_path: Path, receiver: ReceiverServer) -> None:
    async with serve_feed(BloggerFeed(6)) as server:
        await _list_show_retry_recover_replay(tmp_path, receiver, server.model, server.url)


async def _list_show_retry_recover_replay(
    tmp_path: Path, receiver: ReceiverServer, feed: BloggerFeed, url: str
) -> None:
    rx = receiver.receiver
    db = tmp_path / "syncd.db"
    # retry_schedule = ["0s"]: two immediate attempts, then dead, all within one `sync`.
    config = write_config(
        tmp_path,
        feeds=[{"name": "blog", "url": url}],
        sinks=[webhook_sink(receiver.url, retry_schedule=["0s"]), file_sink(tmp_path)],
    )
    ok(await syncd(config, "sync"))  # the backfill: the file gets it, the webhook skips it
    assert rx.requests == []
    feed.add_entry("New one")
    feed.add_entry("New two")
    rx.set_default(500)
    ok(await syncd(config, "sync"))
    assert [r.status for r in rx.requests] == [500] * 4

    dead = as_json(await syncd(config, "deliveries", "list", "--state", "dead", "--json"))
    assert [(d["sink"], d["attempts"], d["last_status"]) for d in dead] == [("hook", 2, 500)] * 2
    assert [d["event_seq"] for d in dead] == [8, 7]  # newest first

    table = ok(await syncd(config, "deliveries", "list", "--sink", "hook")).stdout.splitlines()
    assert table[0].split() == [
        "ID", "SINK", "SEQ", "EVENT", "TYPE", "STATE", "TRIES", "STATUS", "LAST", "TRY", "NEXT",
        "TRY", "ERROR",
    ]  # fmt: skip
    assert len(table) == 4 and all(" dead " in row and " 500 " in row for row in table[2:])
    everything = as_json(await syncd(config, "deliveries", "list", "--limit", "0", "--json"))
    assert len(everything) == 8 + 2  # the file has all eight, the webhook the two new ones
    assert (await syncd(config, "deliveries", "list", "--state", "failed")).stdout.strip() == (
        "no deliveries"
    )

    target = dead[1]  # seq 7
    shown = as_json(await syncd(config, "deliveries", "show", str(target["id"]), "--json"))
    assert shown["delivery"]["event_id"] == shown["event"]["id"] == target["event_id"]
    assert [(a["status"], a["result"]) for a in shown["attempts"]] == [
        (500, "failed"),
        (500, "dead"),
    ]
    text = ok(await syncd(config, "deliveries", "show", str(target["id"]))).stdout
    assert "state:" in text and "dead" in text and "ATTEMPTED" in text

    # retry: one attempt now, whatever the state.
    rx.set_default(200)
    retried = ok(await syncd(config, "deliveries", "retry", str(target["id"])))
    assert "delivered (HTTP 200" in retried.stdout
    assert rx.requests[-1].webhook_id == target["event_id"] and rx.requests[-1].accepted
    assert db_rows(db, "SELECT state, attempts FROM deliveries WHERE id = ?", (target["id"],)) == [
        ("delivered", 3)
    ]

    # recover: the other dead one is queued again with a fresh schedule; the next sync sends it.
    recovered = ok(await syncd(config, "deliveries", "recover", "hook", "--since", "1h"))
    assert recovered.stdout.startswith("recovered 1 deliveries of sink hook")
    ok(await syncd(config, "sync"))
    assert rx.requests[-1].webhook_id == dead[0]["event_id"] and rx.requests[-1].accepted

    # replay: everything from seq 1, including the backfill the webhook skipped at first.
    bodies = {r.webhook_id: r.body for r in rx.accepted()}
    replayed = ok(await syncd(config, "deliveries", "replay", "hook", "--from-seq", "1"))
    assert "8 events queued for sink hook (6 new deliveries, 2 re-queued)" in replayed.stdout
    rx.reset()
    ok(await syncd(config, "sync"))
    assert sorted(r.json()["data"]["seq"] for r in rx.accepted()) == list(range(1, 9))
    assert all(r.verified for r in rx.requests)
    for r in rx.accepted():  # a redelivery carries the same id and the same bytes
        if r.webhook_id in bodies:
            assert r.body == bodies[r.webhook_id]

    # Mistakes are one line each, with the documented exit codes.
    assert "no sink named 'nope'" in one_line_error(
        await syncd(config, "deliveries", "list", "--sink", "nope"), 2
    )
    assert "--since" in one_line_error(
        await syncd(config, "deliveries", "recover", "hook", "--since", "5x"), 2
    )
    assert "no delivery with id 999" in one_line_error(
        await syncd(config, "deliveries", "retry", "999"), 1
    )
    one_line_error(
        await syncd(config, "deliveries", "replay", "hook", "--from-seq", "5", "--to-seq", "2"), 2
    )


async def test_410_disable_status_and_enable(tmp_path: Path, receiver: ReceiverServer) -> None:
    rx = receiver.receiver
    rx.push(410)
    feed = BloggerFeed(3)
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": server.url}],
            sinks=[webhook_sink(receiver.url, initial="deliver")],
        )
        ok(await syncd(config, "sync"))
        assert [r.status for r in rx.requests] == [410]

        status = as_json(await syncd(config, "status", "--json"))
        [hook] = status["sinks"]
        assert hook["disabled"] and "410" in hook["disabled_reason"]
        assert (hook["pending"], hook["failed"], hook["dead"]) == (2, 1, 0)
        text = ok(await syncd(config, "status")).stdout
        assert "hook (webhook, DISABLED: receiver answered 410" in text
        assert "syncd sinks enable hook" in text

        # Disabled: new events accumulate, nothing is sent.
        feed.add_entry("While it was away")
        ok(await syncd(config, "sync"))
        assert len(rx.requests) == 1
        listed = as_json(await syncd(config, "sinks", "list", "--json"))
        assert listed[0]["disabled"] and listed[0]["pending"] == 3

        enabled = ok(await syncd(config, "sinks", "enable", "hook"))
        assert enabled.stdout.strip() == "sink hook enabled: 4 deliveries waiting"
        ok(await syncd(config, "sync"))
    assert len(rx.accepted()) == 4
    [hook] = as_json(await syncd(config, "status", "--json"))["sinks"]
    assert not hook["disabled"] and hook["delivered"] == 4

    ok(await syncd(config, "sinks", "disable", "hook", "--reason", "receiver maintenance"))
    assert "DISABLED: receiver maintenance" in ok(await syncd(config, "sinks", "list")).stdout


async def test_a_running_daemon_obeys_enable_and_replay(
    tmp_path: Path, receiver: ReceiverServer
) -> None:
    rx = receiver.receiver
    feed = BloggerFeed(5)
    async with serve_feed(feed) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": server.url, "interval": "1h"}],
            sinks=[webhook_sink(receiver.url)],  # initial = "skip": the backfill is not sent
        )
        ok(await syncd(config, "sync"))
        ok(await syncd(config, "sinks", "disable", "hook"))
        proc = await start_syncd(config, "run", stdout=asyncio.subprocess.DEVNULL)
        try:
            ok(await syncd(config, "deliveries", "replay", "hook", "--from-seq", "1"))
            await asyncio.sleep(1.5)
            assert rx.requests == []  # queued, but the sink is disabled
            ok(await syncd(config, "sinks", "enable", "hook"))
            events = await receiver.wait_for(5, timeout=20)
            assert sorted(e["data"]["seq"] for e in events) == [1, 2, 3, 4, 5]
            ok(await syncd(config, "deliveries", "replay", "hook", "--from-seq", "4"))
            events = await receiver.wait_for(7, timeout=20)
            assert sorted(e["data"]["seq"] for e in events[5:]) == [4, 5]
        finally:
            proc.terminate()
            _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
