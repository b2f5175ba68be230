"""The exec sink with real subprocesses: the event on stdin, its identity in the environment,
exit 0 as success, a timeout that kills the whole process group, and readable failures."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from syncd.errors import ConfigError
from syncd.model import OutboundEvent
from syncd.sinks import SinkContext, SinkRegistry, builtin_sink_factories
from syncd.sinks.exec import ExecSink, event_environment
from tests.conftest import syncd, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.outbox import envelope

PY = sys.executable


def make_event(seq: int = 7, padding: int = 0) -> OutboundEvent:
    body = envelope(f"evt_{seq:04d}", "entry.updated", seq, "blog", seq)
    body["data"]["entry"]["content"] += "y" * padding
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return OutboundEvent(id=body["id"], seq=seq, type="entry.updated", body=raw)


def script(tmp_path: Path, name: str, code: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    return [PY, str(path)]


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a zombie is dead, just not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_the_event_goes_to_stdin_and_its_identity_to_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    argv = script(
        tmp_path,
        "record",
        """
        import json, os, sys
        data = sys.stdin.buffer.read()
        env = {k: v for k, v in os.environ.items() if k.startswith(("SYNCD_", "EXTRA"))}
        open(sys.argv[1], "w").write(json.dumps({"stdin": data.decode(), "env": env}))
        """,
    )
    sink = ExecSink("run", [*argv, str(out)], env={"EXTRA": "1"})
    event = make_event()
    outcome = await sink.send(event)
    assert outcome.ok and outcome.error is None and outcome.latency_ms > 0
    seen = json.loads(out.read_text())
    assert seen["stdin"].encode() == event.body
    assert seen["env"] == {
        "EXTRA": "1",
        "SYNCD_EVENT_ID": "evt_0007",
        "SYNCD_EVENT_TYPE": "entry.updated",
        "SYNCD_EVENT_SEQ": "7",
        "SYNCD_SINK": "run",
        "SYNCD_FEED": "blog",
        "SYNCD_ENTRY_ID": "tag:test,2026:blog.post-7",
        "SYNCD_ENTRY_LINK": "http://blog.test/blog/7.html",
    }


async def test_a_non_zero_exit_is_a_failure_with_the_stderr_tail(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        "fail",
        """
        import sys
        sys.stdin.read()
        print("first line\\nmailbox full", file=sys.stderr)
        sys.exit(3)
        """,
    )
    outcome = await ExecSink("run", argv).send(make_event())
    assert not outcome.ok and outcome.retryable and outcome.status is None
    assert outcome.error == "exit status 3: first line mailbox full"


async def test_death_by_a_signal_is_a_failure(tmp_path: Path) -> None:
    argv = script(tmp_path, "killed", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)\n")
    outcome = await ExecSink("run", argv).send(make_event())
    assert not outcome.ok and outcome.error == "killed by signal 15"


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    argv = script(
        tmp_path,
        "hang",
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([{PY!r}, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(60)
        """,
    )
    started = time.monotonic()
    outcome = await ExecSink("run", argv, timeout_s=1.0).send(make_event())
    assert time.monotonic() - started < 30
    assert not outcome.ok and outcome.error == "timed out after 1s (process group killed)"
    parent, child = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 10
    while alive(parent) or alive(child):
        assert time.monotonic() < deadline, "a process of the group survived"
        await asyncio.sleep(0.05)


async def test_a_command_that_cannot_start(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-command")
    outcome = await ExecSink("run", [missing]).send(make_event())
    assert not outcome.ok and outcome.error == f"cannot run {missing}: No such file or directory"


async def test_a_command_that_ignores_stdin_and_one_that_floods_stderr(tmp_path: Path) -> None:
    big = make_event(padding=2_000_000)  # far more than a pipe buffer
    quiet = script(tmp_path, "quiet", "pass\n")
    assert (await ExecSink("run", quiet).send(big)).ok
    noisy = script(
        tmp_path,
        "noisy",
        """
        import sys
        sys.stdin.buffer.read()
        sys.stderr.write("e" * 3_000_000 + " the end")
        sys.exit(1)
        """,
    )
    outcome = await ExecSink("run", noisy, timeout_s=30).send(big)
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.endswith(" the end") and len(outcome.error) < 600


async def test_cancellation_leaves_no_process_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = script(
        tmp_path,
        "slow",
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)\n",
    )
    task = asyncio.create_task(ExecSink("run", argv, timeout_s=60).send(make_event()))
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(int(pid_file.read_text()))


def test_environment_of_an_event_with_odd_content() -> None:
    body = envelope("evt_x", "entry.created", 1, "blog", 1)
    body["data"]["entry"]["link"] = "http://x.test/\u0000nul"
    event = OutboundEvent("evt_x", 1, "entry.created", json.dumps(body).encode())
    assert event_environment("s", event)["SYNCD_ENTRY_LINK"] == "http://x.test/nul"
    bare = OutboundEvent("evt_y", 2, "entry.created", b"not json")
    assert set(event_environment("s", bare)) == {
        "SYNCD_EVENT_ID",
        "SYNCD_EVENT_TYPE",
        "SYNCD_EVENT_SEQ",
        "SYNCD_SINK",
    }


@pytest.fixture
def registry() -> SinkRegistry:
    return SinkRegistry(builtin_sink_factories(), entry_point_group=None)


async def test_the_registry_builds_exec_sinks(registry, tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    argv = script(
        tmp_path, "cwd", "import os, sys; sys.stdin.read(); open('here', 'w').write(os.getcwd())\n"
    )
    sink = registry.create(
        "exec",
        name="run",
        options={"command": " ".join(argv), "cwd": "work", "env": {"A": "b"}},
        context=SinkContext(base_dir=tmp_path, timeout_s=5),
    )
    assert isinstance(sink, ExecSink) and "timeout_s=5" in repr(sink)
    assert (await sink.send(make_event())).ok
    assert (tmp_path / "work" / "here").read_text() == str(tmp_path / "work")


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ({}, "command", "is required"),
        ({"command": []}, "command", "non-empty list"),
        ({"command": 3}, "command", "3 is not a list or not a string"),
        ({"command": "echo 'unclosed"}, "command", "cannot split"),
        ({"command": ["x"], "env": {"A": 1}}, "env.A", "1 is not a string"),
        ({"command": ["x"], "cmd": "y"}, "cmd", "is not a known setting"),
    ],
)
def test_exec_option_errors_name_the_sink_and_key(registry, options, key, message) -> None:
    with pytest.raises(ConfigError) as info:
        registry.create("exec", name="run", options=options, context=SinkContext())
    assert info.value.key == f"sinks['run'].{key}"
    assert message in str(info.value)


async def test_syncd_sync_pipes_each_event_to_the_command(tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir()
    argv = script(
        tmp_path,
        "store",
        f"""
        import os, sys
        data = sys.stdin.buffer.read()
        open(os.path.join({str(outdir)!r}, os.environ["SYNCD_EVENT_ID"]), "wb").write(data)
        """,
    )
    async with serve_feed(BloggerFeed(8)) as server:
        config = write_config(
            tmp_path,
            feeds=[{"name": "blog", "url": server.url}],
            sinks=[{"name": "run", "type": "exec", "command": argv, "timeout": "20s"}],
        )
        result = await syncd(config, "sync")
    assert result.code == 0, result.stderr
    files = sorted(outdir.iterdir())
    assert len(files) == 8
    assert all(json.loads(f.read_bytes())["id"] == f.name for f in files)
