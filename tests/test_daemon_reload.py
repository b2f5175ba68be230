"""SIGHUP against the real `syncd run`: a feed and a sink are added and another sink dropped
without a restart and without losing a waiting delivery; an invalid new config keeps the old
one running and is refused in one log line naming the file and the key; systemd hears
RELOADING=1 (with MONOTONIC_USEC) and then READY=1."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from tests.conftest import file_sink, jsonl, jsonl_so_far, webhook_sink, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import start_syncd
from tests.support.receiver import ReceiverServer
from tests.test_e2e_daemon import wait_until
from tests.test_systemd_notify import NotifyListener


async def test_sighup_adds_a_feed_and_a_sink_drops_a_sink_and_keeps_a_bad_config_out(
    tmp_path: Path, receiver: ReceiverServer
) -> None:
    feed_a, feed_b = BloggerFeed(5), BloggerFeed(7)
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    log_path = tmp_path / "stderr.log"
    async with serve_feed(feed_a) as a, serve_feed(feed_b) as b:
        fa = {"name": "a", "url": a.url, "interval": "1s"}
        fb = {"name": "b", "url": b.url, "interval": "1s"}
        hook = webhook_sink(receiver.url, retry_schedule=["1s"] * 30)
        one, two, three = (file_sink(tmp_path, n) for n in ("one", "two", "three"))
        config = write_config(tmp_path, feeds=[fa], sinks=[one, two, hook])
        with log_path.open("wb") as log_file:
            proc = await start_syncd(
                config,
                "run",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
                env={"NOTIFY_SOCKET": listener.address},
            )
        try:
            assert (await listener.until("READY"))["READY"] == "1"
            await wait_until(lambda: len(jsonl_so_far(tmp_path / "two.jsonl")) == 5)

            # The receiver is down: a new entry's delivery to the hook waits.
            receiver.receiver.set_default(500)
            waiting_id = feed_a.add_entry("Waiting for the hook")
            await receiver.receiver.wait_for_requests(1, timeout=30)
            await wait_until(lambda: len(jsonl_so_far(tmp_path / "two.jsonl")) == 6)

            # Reload: feed b and sink three added, sink two dropped, the hook changed.
            write_config(tmp_path, feeds=[fa, fb], sinks=[one, three, {**hook, "timeout": "5s"}])
            proc.send_signal(signal.SIGHUP)
            reloading = await listener.until("RELOADING")
            assert int(reloading["MONOTONIC_USEC"]) > 0
            assert (await listener.until("READY"))["READY"] == "1"
            # b's backfill.
            await wait_until(lambda: len(jsonl_so_far(tmp_path / "three.jsonl")) == 7)
            await wait_until(lambda: len(jsonl_so_far(tmp_path / "one.jsonl")) == 6 + 7)

            # The waiting delivery went nowhere: the receiver is back, and it arrives.
            receiver.receiver.set_default(200)
            events = await receiver.wait_for(1, timeout=30)
            assert events[0]["data"]["entry"]["id"] == waiting_id

            # An invalid config is refused; the running one carries on.
            good = config.read_text()
            config.write_text(good.replace('interval = "1s"', 'intervall = "1s"', 1))
            proc.send_signal(signal.SIGHUP)
            await listener.until("RELOADING")
            await listener.until("READY")
            feed_b.add_entry("After the refused reload")
            await wait_until(lambda: len(jsonl_so_far(tmp_path / "three.jsonl")) == 8)
            await wait_until(lambda: len(jsonl_so_far(tmp_path / "one.jsonl")) == 6 + 8)

            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        finally:
            listener.close()
            print(log_path.read_text()[-20_000:])  # shown if the test fails
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0
    assert len(jsonl(tmp_path / "two.jsonl")) == 6  # dropped: nothing after the reload
    logs = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert not [e for e in logs if e.get("level") == "error" and "reload" not in e["event"]]
    refused = [e for e in logs if e["event"] == "config reload refused; the running config stays"]
    assert len(refused) == 1
    assert f"{config}: feeds[0].intervall: is not a known setting" in refused[0]["error"]
    (reloaded,) = [e for e in logs if e["event"] == "config reloaded"]
    assert reloaded["feeds"] == {"added": ["b"], "removed": [], "changed": []}
    assert reloaded["sinks"] == {"added": ["three"], "removed": ["two"], "changed": ["hook"]}
