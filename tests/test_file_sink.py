"""FileSink on real files: whole lines only, torn tails cut back, concurrent lines never mix."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.model import OutboundEvent
from syncd.sinks.file import FileSink, _line_safe, repair_torn_tail
from tests.support.feedserver import FeedServer


def make_event(seq: int, padding: int = 0) -> OutboundEvent:
    event_id = f"evt_{seq:06d}"
    body = json.dumps(
        {"id": event_id, "type": "entry.created", "data": {"seq": seq, "content": "x" * padding}},
        separators=(",", ":"),
    ).encode()
    return OutboundEvent(id=event_id, seq=seq, type="entry.created", body=body)


def read_lines(path: Path) -> list[dict[str, object]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def run_json(script: str, path: Path) -> Any:
    """Run `script` in a fresh interpreter (it sets its own resource limits) with `path` as its
    argument, and return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


async def test_one_json_line_per_event_in_a_created_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "events.jsonl"
    sink = FileSink("archive", path)
    events = [make_event(i) for i in range(5)]
    try:
        for event in events:
            outcome = await sink.send(event)
            assert outcome.ok and outcome.error is None and outcome.status is None
    finally:
        await sink.aclose()
    assert path.read_bytes() == b"".join(e.body + b"\n" for e in events)
    assert [line["id"] for line in read_lines(path)] == [e.id for e in events]


async def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id":"old"}\n')
    sink = FileSink("archive", path, fsync=True)
    try:
        assert await sink.open() == 0
        assert (await sink.send(make_event(1))).ok
    finally:
        await sink.aclose()
    assert [line["id"] for line in read_lines(path)] == ["old", "evt_000001"]


async def test_torn_tail_is_cut_back_on_open(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    whole = make_event(1).body + b"\n" + make_event(2).body + b"\n"
    torn = make_event(3).body[:17]  # a crash in the middle of a write
    path.write_bytes(whole + torn)

    sink = FileSink("archive", path)
    try:
        assert await sink.open() == len(torn)
        assert sink.torn_bytes_dropped == len(torn)
        assert path.read_bytes() == whole  # repaired before anything else is written
        assert await sink.open() == len(torn)  # idempotent: no second repair
        assert (await sink.send(make_event(4))).ok
    finally:
        await sink.aclose()
    assert [line["id"] for line in read_lines(path)] == ["evt_000001", "evt_000002", "evt_000004"]


async def test_first_send_repairs_without_an_explicit_open(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id":"a"}\n{"id":"b')
    sink = FileSink("archive", path)
    try:
        assert (await sink.send(make_event(1))).ok
    finally:
        await sink.aclose()
    assert sink.torn_bytes_dropped == len(b'{"id":"b')
    assert [line["id"] for line in read_lines(path)] == ["a", "evt_000001"]


def test_repair_of_a_long_line_without_any_newline(tmp_path: Path) -> None:
    # Longer than the backwards scan's chunk, with no newline at all: everything goes.
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"y" * 200_000)
    fd = os.open(path, os.O_RDWR)
    try:
        assert repair_torn_tail(fd) == 200_000
    finally:
        os.close(fd)
    assert path.read_bytes() == b""


def test_repair_finds_a_newline_several_chunks_back(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id":"a"}\n' + b"z" * 150_000)
    fd = os.open(path, os.O_RDWR)
    try:
        assert repair_torn_tail(fd) == 150_000
        assert repair_torn_tail(fd) == 0  # already clean
    finally:
        os.close(fd)
    assert path.read_bytes() == b'{"id":"a"}\n'


async def test_concurrent_sends_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink("archive", path)
    # Mixed sizes, some far larger than a pipe buffer or a page, from many tasks at once.
    events = [make_event(i, padding=(i * 7919) % 300_000) for i in range(150)]
    try:
        outcomes = await asyncio.gather(*(sink.send(e) for e in events))
    finally:
        await sink.aclose()
    assert all(o.ok for o in outcomes)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert sorted(lines[:-1]) == sorted(e.body for e in events)


async def test_two_sinks_on_one_file_never_interleave(tmp_path: Path) -> None:
    # Stands in for the daemon and a `syncd deliveries retry` appending to the same file.
    path = tmp_path / "events.jsonl"
    first, second = FileSink("a", path), FileSink("b", path)
    events = [make_event(i, padding=(i * 104729) % 200_000) for i in range(80)]
    try:
        outcomes = await asyncio.gather(
            *((first if i % 2 else second).send(e) for i, e in enumerate(events))
        )
    finally:
        await first.aclose()
        await second.aclose()
    assert all(o.ok for o in outcomes)
    assert sorted(path.read_bytes().split(b"\n")[:-1]) == sorted(e.body for e in events)


async def test_os_errors_become_failed_outcomes(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    sink = FileSink("archive", blocker / "events.jsonl")
    try:
        outcome = await sink.send(make_event(1))
    finally:
        await sink.aclose()
    assert not outcome.ok and outcome.retryable
    assert outcome.error is not None and outcome.error.startswith("cannot write ")
    assert "not-a-dir" in outcome.error

    directory = tmp_path / "a-directory"
    directory.mkdir()
    sink = FileSink("archive", directory)
    try:
        outcome = await sink.send(make_event(1))
    finally:
        await sink.aclose()
    assert not outcome.ok
    assert outcome.error == f"cannot write {directory}: Is a directory"


def test_a_write_that_fails_halfway_is_cut_back(tmp_path: Path) -> None:
    # A real short write: a child process whose file-size limit (RLIMIT_FSIZE) falls inside the
    # third line. The kernel writes the part that fits, then refuses the rest with EFBIG; the
    # sink must report the failure and leave no partial line behind.
    path = tmp_path / "events.jsonl"
    script = textwrap.dedent(
        """
        import asyncio, json, resource, signal, sys
        from pathlib import Path
        from syncd.model import OutboundEvent
        from syncd.sinks.file import FileSink

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (250, 250))

        async def main():
            sink = FileSink("archive", Path(sys.argv[1]))
            results = []
            for i in range(4):
                body = json.dumps({"id": f"evt_{i}", "pad": "p" * 90}).encode()
                outcome = await sink.send(OutboundEvent(f"evt_{i}", i, "entry.created", body))
                results.append([outcome.ok, outcome.error])
            await sink.aclose()
            print(json.dumps(results))

        asyncio.run(main())
        """
    )
    results = run_json(script, path)
    assert [ok for ok, _ in results] == [True, True, False, False]
    assert results[2][1] == f"cannot write {path}: File too large"
    assert [line["id"] for line in read_lines(path)] == ["evt_0", "evt_1"]


async def test_a_body_with_a_raw_newline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink("archive", path)
    pretty = OutboundEvent(id="evt_p", seq=1, type="entry.created", body=b'{\n  "id": "evt_p"\n}')
    try:
        outcome = await sink.send(pretty)
    finally:
        await sink.aclose()
    assert not outcome.ok and not outcome.retryable
    assert not path.exists() or path.read_bytes() == b""


async def test_unicode_line_separators_are_escaped_to_the_same_json(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink("archive", path)
    envelope = {"id": "evt_u", "data": {"title": "a\u2028b\u2029c \U0001f600 \u00e9"}}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    assert "\u2028".encode() in body  # raw in the envelope, as json.dumps writes it
    try:
        assert (await sink.send(OutboundEvent(id="evt_u", seq=1, type="t", body=body))).ok
        assert (await sink.send(make_event(2))).ok
    finally:
        await sink.aclose()
    text = path.read_text(encoding="utf-8")
    assert "\u2028" not in text and "\u2029" not in text
    lines = text.splitlines()  # splits on U+2028 too: it would cut the first event in three
    assert len(lines) == 2
    assert json.loads(lines[0]) == envelope


async def test_a_batch_escapes_line_separators_line_by_line(tmp_path: Path) -> None:
    """Separators at the very start and end of bodies, side by side in one batch (escaped over
    the joined lines): every line is its own event's JSON, and no separator is left raw."""
    path = tmp_path / "events.jsonl"
    sink = FileSink("archive", path)
    envelopes = [
        {"id": f"evt_{i}", "data": {"title": title}}
        for i, title in enumerate(["\u2028", "a\u2029", "\u2029\u2028b", "plain", "\u2028"])
    ]
    events = [
        OutboundEvent(
            id=str(env["id"]),
            seq=i,
            type="t",
            body=json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode(),
        )
        for i, env in enumerate(envelopes, 1)
    ]
    try:
        outcomes = await sink.send_batch(events)
    finally:
        await sink.aclose()
    assert all(o.ok for o in outcomes)
    text = path.read_text(encoding="utf-8")
    assert "\u2028" not in text and "\u2029" not in text
    assert [json.loads(line) for line in text.splitlines()] == envelopes


async def test_send_after_aclose_fails_cleanly(tmp_path: Path) -> None:
    sink = FileSink("archive", tmp_path / "events.jsonl")
    assert (await sink.send(make_event(1))).ok
    await sink.aclose()
    await sink.aclose()
    outcome = await sink.send(make_event(2))
    assert not outcome.ok and outcome.error == "file sink is closed"
    with pytest.raises(RuntimeError):
        await sink.open()
    assert len(read_lines(tmp_path / "events.jsonl")) == 1


async def test_repr_and_name(tmp_path: Path) -> None:
    sink = FileSink("archive", tmp_path / "e.jsonl", fsync=True)
    assert sink.name == "archive"
    assert "archive" in repr(sink) and "fsync=True" in repr(sink)
    await sink.aclose()


async def test_a_batch_is_one_append_in_order_with_one_outcome_per_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink("archive", path, fsync=True)
    pretty = OutboundEvent(id="evt_p", seq=99, type="entry.created", body=b'{\n"id": "evt_p"}')
    events = [make_event(1), make_event(2, padding=100_000), pretty, make_event(3)]
    try:
        outcomes = await sink.send_batch(events)
    finally:
        await sink.aclose()
    assert [o.ok for o in outcomes] == [True, True, False, True]
    assert not outcomes[2].retryable  # refused alone; the rest of the batch went out
    assert path.read_bytes() == b"".join(e.body + b"\n" for e in events if e is not pretty)


def test_a_batch_that_fails_halfway_is_cut_back_whole(tmp_path: Path) -> None:
    # As above, a real short write (RLIMIT_FSIZE inside the second batch): the batch fails as a
    # whole and not one of its lines stays behind, while the first batch is untouched.
    path = tmp_path / "events.jsonl"
    script = textwrap.dedent(
        """
        import asyncio, json, resource, signal, sys
        from pathlib import Path
        from syncd.model import OutboundEvent
        from syncd.sinks.file import FileSink

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (400, 400))

        def event(i):
            body = json.dumps({"id": f"evt_{i}", "pad": "p" * 90}).encode()
            return OutboundEvent(f"evt_{i}", i, "entry.created", body)

        async def main():
            sink = FileSink("archive", Path(sys.argv[1]), fsync=True)
            first = await sink.send_batch([event(0), event(1)])
            second = await sink.send_batch([event(2), event(3), event(4)])
            await sink.aclose()
            print(json.dumps([[o.ok for o in first], [o.ok for o in second]]))

        asyncio.run(main())
        """
    )
    assert run_json(script, path) == [[True, True], [False, False, False]]
    assert [line["id"] for line in read_lines(path)] == ["evt_0", "evt_1"]


async def test_a_sync_with_nothing_to_deliver_leaves_the_sink_file_alone(tmp_path: Path) -> None:
    from tests.conftest import file_sink, syncd, write_config

    archive = tmp_path / "archive.jsonl"
    torn = b'{"id":"a"}\n{"id":"to'  # a crash in the middle of a line
    archive.write_bytes(torn)
    config = write_config(tmp_path, feeds=[], sinks=[file_sink(tmp_path)])
    result = await syncd(config, "sync")  # nothing to deliver: the sink opens nothing
    assert result.code == 0, result.stderr
    assert archive.read_bytes() == torn
    assert not [r for r in result.logs() if r.get("event") == "torn tail cut from file sink"]


async def test_a_sink_closed_unused_starts_no_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`syncd sync` closes every sink at exit; one that had nothing to send (a pass of 304s)
    starts no writer thread to do so, touches no file, and says it is closed if used after."""
    import concurrent.futures

    import syncd.sinks.file as file_module

    started: list[str] = []
    real = concurrent.futures.ThreadPoolExecutor

    def recording(*args: Any, **kwargs: Any) -> Any:
        started.append(str(kwargs.get("thread_name_prefix")))
        return real(*args, **kwargs)

    monkeypatch.setattr(file_module, "ThreadPoolExecutor", recording)
    path = tmp_path / "out" / "archive.jsonl"
    sink = FileSink("archive", path)
    await sink.aclose()
    await sink.aclose()
    assert started == []
    assert not path.parent.exists()
    [outcome] = await sink.send_batch([make_event(1)])
    assert not outcome.ok and outcome.error == "file sink is closed"
    assert started == [] and not path.parent.exists()

    used = FileSink("used", tmp_path / "used.jsonl")
    assert (await used.send(make_event(1))).ok
    await used.aclose()
    assert started == ["file-sink-used"]
    assert [line["id"] for line in read_lines(tmp_path / "used.jsonl")] == ["evt_000001"]


async def test_syncd_sync_cuts_a_torn_tail_at_its_first_write_and_says_so(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    from tests.conftest import file_sink, syncd, write_config

    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(b'{"id":"a"}\n{"id":"to')
    feed = {"name": "blog", "url": feed_server.url}
    config = write_config(tmp_path, feeds=[feed], sinks=[file_sink(tmp_path)])
    result = await syncd(config, "sync")
    assert result.code == 0, result.stderr
    lines = archive.read_bytes().split(b"\n")
    assert lines[0] == b'{"id":"a"}' and lines[-1] == b""
    assert len(lines) > 2 and all(json.loads(line)["type"] for line in lines[1:-1])
    [line] = [r for r in result.logs() if r.get("event") == "torn tail cut from file sink"]
    assert line["sink"] == "archive" and line["bytes"] == len(b'{"id":"to')


async def test_the_daemon_cuts_a_torn_tail_as_soon_as_it_starts(tmp_path: Path) -> None:
    from tests.conftest import file_sink, write_config
    from tests.support.process import start_syncd
    from tests.test_systemd_notify import NotifyListener

    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(b'{"id":"a"}\n{"id":"to')
    config = write_config(tmp_path, feeds=[], sinks=[file_sink(tmp_path)], http={"listen": ""})
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    try:
        proc = await start_syncd(config, "run", env={"NOTIFY_SOCKET": listener.address})
        await listener.until("READY")  # the sinks are bound before the daemon says it is ready
        assert archive.read_bytes() == b'{"id":"a"}\n'
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        listener.close()
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    [line] = [r for r in logs if r.get("event") == "torn tail cut from file sink"]
    assert line["bytes"] == len(b'{"id":"to')


async def test_batches_land_in_the_order_handed_over_and_a_closed_sink_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink("archive", path, fsync=True)
    batches = [[make_event(b * 10 + i, padding=2000) for i in range(10)] for b in range(8)]
    # All handed over at once: the writer thread takes them first in, first out.
    results = await asyncio.gather(*(sink.send_batch(batch) for batch in batches))
    assert all(o.ok for outcomes in results for o in outcomes)
    await sink.aclose()
    await sink.aclose()  # idempotent
    assert [line["id"] for line in read_lines(path)] == [e.id for b in batches for e in b]

    late = await sink.send(make_event(999))
    assert (late.ok, late.error) == (False, "file sink is closed")
    with pytest.raises(RuntimeError, match="closed"):
        await sink.open()
    assert len(read_lines(path)) == 80


# Pieces that make the escape's fast checks go either way: the separators, other characters
# whose UTF-8 shares their lead bytes (\u2014, \u2026) or their last byte (é, è), newlines.
_PIECES = st.sampled_from(
    ["\u2028", "\u2029", "\u2014", "\u2026", "\u00e9", "\u00e8", "\u2615", "a", " ", "\n", '"']
)


@given(st.lists(_PIECES, max_size=40))
def test_the_line_escape_equals_replacing_each_separator(pieces: list[str]) -> None:
    """Differential: the escape (a byte search, then one regex pass) gives exactly what
    replacing each separator's bytes everywhere gives."""
    body = "".join(pieces).encode()
    expected = body.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")
    assert _line_safe(body) == expected


async def test_a_batch_refuses_only_its_events_with_a_raw_newline(tmp_path: Path) -> None:
    """The batch is looked at as a whole first: one body with a raw newline is refused on its
    own, the events around it are written, in order."""
    path = tmp_path / "events.jsonl"
    sink = FileSink("archive", path)
    pretty = OutboundEvent(id="evt_p", seq=2, type="t", body=b'{\n  "id": "evt_p"\n}')
    try:
        outcomes = await sink.send_batch([make_event(1), pretty, make_event(3)])
    finally:
        await sink.aclose()
    assert [o.ok for o in outcomes] == [True, False, True]
    assert not outcomes[1].retryable
    assert [line["id"] for line in read_lines(path)] == ["evt_000001", "evt_000003"]
