"""Per-sink event filtering (`events`, `feeds`, `initial`) end to end, and replay honouring it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import file_sink, jsonl, syncd, webhook_sink, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.receiver import ReceiverServer


async def test_each_sink_gets_only_what_it_asked_for(
    tmp_path: Path, receiver: ReceiverServer
) -> None:
    a_feed, b_feed = BloggerFeed(4), BloggerFeed(3)
    async with serve_feed(a_feed) as a, serve_feed(b_feed) as b:
        config = write_config(
            tmp_path,
            feeds=[{"name": "a", "url": a.url}, {"name": "b", "url": b.url}],
            sinks=[
                file_sink(tmp_path, "created_a", events=["entry.created"], feeds=["a"]),
                file_sink(tmp_path, "everything"),
                webhook_sink(receiver.url, events=["entry.updated"]),  # initial: skip
            ],
        )
        assert (await syncd(config, "sync")).code == 0
        created_a = tmp_path / "created_a.jsonl"
        everything = tmp_path / "everything.jsonl"
        assert {e["data"]["feed"]["name"] for e in jsonl(created_a)} == {"a"}
        assert len(jsonl(created_a)) == 4 and len(jsonl(everything)) == 7
        assert receiver.receiver.requests == []

        a_feed.edit_entry(a_feed.ids()[0], title="Edited")
        new_b = b_feed.add_entry("New in b")
        assert (await syncd(config, "sync")).code == 0
        assert len(jsonl(created_a)) == 4  # an update, and a creation in feed b: neither wanted
        assert [e["type"] for e in jsonl(everything)[7:]] in (
            ["entry.updated", "entry.created"],
            ["entry.created", "entry.updated"],
        )
        [update] = await receiver.wait_for(1)
        assert update["type"] == "entry.updated" and update["data"]["feed"]["name"] == "a"
        assert new_b not in {e["data"]["entry"]["id"] for e in jsonl(created_a)}

        # Replay from the start: the filters still apply (only feed a's creations qualify).
        replay = await syncd(config, "deliveries", "replay", "created_a", "--from-seq", "1")
        assert replay.code == 0 and "4 events queued" in replay.stdout
        assert (await syncd(config, "sync")).code == 0
    lines = jsonl(created_a)
    assert len(lines) == 8 and lines[4:] == lines[:4]  # the same four again, byte for byte
