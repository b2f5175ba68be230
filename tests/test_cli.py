"""The operator's commands do what they say (issue 8): global options anywhere, strict config
with every error at once, read-only commands that need no secret and create nothing, store errors
that name the path, one daemon per store, an interrupted sync that reads as interrupted, exit
codes (2 config, 1 operational, 130 Ctrl-C). Run against the real CLI: click's runner where a
process boundary does not matter, a subprocess where it does (signals, locks, a terminal)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import signal
import sqlite3
import struct
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.storage.sqlite import SqliteStore
from tests.conftest import db_rows, file_sink, syncd, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import ROOT, start_syncd


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def hook_without_secret(tmp_path: Path) -> dict[str, str]:
    """A webhook sink whose credential is absent, as for an operator without the service's."""
    return {
        "name": "hook",
        "type": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "secret_file": str(tmp_path / "no-such-secret"),
    }


async def committed(db: Path, entries: int) -> None:
    """Wait until the store holds `entries` entries (a crawl's pages are committed one by one)."""
    async with asyncio.timeout(60):
        while True:
            try:
                if db_rows(db, "SELECT COUNT(*) FROM entries") == [(entries,)]:
                    return
            except sqlite3.OperationalError:  # not created or not migrated yet
                pass
            await asyncio.sleep(0.05)


def test_global_options_before_or_after_the_subcommand(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, feeds=[{"name": "a", "url": "http://127.0.0.1:9/"}], sinks=[file_sink(tmp_path)]
    )
    SqliteStore.open(tmp_path / "syncd.db").db.close()
    for args in (
        ["--config", str(config), "status"],
        ["status", "--config", str(config)],
        ["status", "--json", "--config", str(config), "-v"],
        ["--config", str(tmp_path / "other.toml"), "status", "--config", str(config)],
        ["sinks", "--config", str(config), "list"],
        ["sinks", "list", "--config", str(config)],
    ):
        code, out, err = invoke(*args)
        assert code == 0, (args, err)
        assert "archive" in out


def test_check_config_reports_every_error_of_the_file(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        '[[feeds]]\nname = "a"\nurl = "http://127.0.0.1:9/"\ninterval = "5x"\n'
        '[[sinks]]\nname = "f"\ntype = "file"\npath = "f.jsonl"\n'
        'evnets = ["entry.created"]\nintial = "deliver"\nmax_inflight = 1\n'
    )
    code, out, err = invoke("check-config", "--config", str(config))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"syncd: config error: {config}: feeds[0].interval: '5x' is not a duration"
        ' (use e.g. 30s, 15m, 2h, 1d) or "auto"',
        f"syncd: config error: {config}: sinks[0].evnets: is not a known setting"
        " (did you mean 'events'?)",
        f"syncd: config error: {config}: sinks[0].intial: is not a known setting"
        " (did you mean 'initial'?)",
        f"syncd: config error: {config}: sinks[0].max_inflight: is not a known setting"
        " (did you mean 'max_in_flight'?)",
    ]


def test_config_schema_is_json_schema_of_the_file() -> None:
    code, out, _ = invoke("config-schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["sinks"]["items"]["discriminator"]["propertyName"] == "type"
    assert schema["$defs"]["FileSinkTable"]["required"] == ["path", "name", "type"]


def test_read_only_commands_need_no_secret(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        feeds=[{"name": "a", "url": "http://127.0.0.1:9/"}],
        sinks=[hook_without_secret(tmp_path)],
    )
    SqliteStore.open(tmp_path / "syncd.db").db.close()
    for args in (
        ["status"],
        ["status", "--json"],
        ["deliveries", "list"],
        ["deliveries", "list", "--sink", "hook"],
        ["sinks", "list"],
        ["query", "SELECT COUNT(*) AS n FROM feeds"],
    ):
        code, _, err = invoke("--config", str(config), *args)
        assert code == 0, (args, err)
    # Whatever builds the sink still needs it, and says which key.
    code, _, err = invoke("--config", str(config), "check-config")
    assert code == 2
    assert f"{config}: sinks['hook'].secret_file: cannot read" in err


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    db = tmp_path / "var" / "syncd.db"
    config = tmp_path / "syncd.toml"
    config.write_text('[store]\npath = "var/syncd.db"\n[[feeds]]\nname="a"\nurl="http://h/"\n')
    for args in (
        ["status"],
        ["deliveries", "list"],
        ["deliveries", "show", "1"],
        ["sinks", "list"],
        ["query", "SELECT 1"],
    ):
        code, _, err = invoke("--config", str(config), *args)
        assert code == 1, args
        (line,) = err.splitlines()
        assert line.startswith(f"syncd: no database at '{db}'"), line
    assert not (tmp_path / "var").exists()


def test_relative_store_path_is_the_config_files(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "syncd.toml"
    config.write_text('[store]\npath = "syncd.db"\n')
    SqliteStore.open(tmp_path / "etc" / "syncd.db").db.close()
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("--config", "etc/syncd.toml", "status")
    assert code == 0, err
    assert not (tmp_path / "syncd.db").exists()


def test_store_errors_name_the_path(tmp_path: Path) -> None:
    blocked = tmp_path / "db-is-a-directory"
    blocked.mkdir()
    config = tmp_path / "syncd.toml"
    config.write_text(f'[store]\npath = "{blocked}"\n')
    code, _, err = invoke("--config", str(config), "sync")
    assert code == 1
    (line,) = err.splitlines()
    assert line == f"syncd: cannot open database '{blocked}': unable to open database file"
    config.write_text(f'[store]\npath = "{tmp_path / "a-file" / "syncd.db"}"\n')
    (tmp_path / "a-file").write_text("")
    code, _, err = invoke("--config", str(config), "sync")
    assert code == 1
    assert err.strip() == (
        f"syncd: cannot open database '{tmp_path / 'a-file' / 'syncd.db'}':"
        f" '{tmp_path / 'a-file'}' is not a directory"
    )


async def test_one_daemon_per_store_and_one_shot_commands_beside_it(tmp_path: Path) -> None:
    async with serve_feed(BloggerFeed(30)) as server:
        config = write_config(
            tmp_path, feeds=[{"name": "f", "url": server.url}], sinks=[file_sink(tmp_path)]
        )
        daemon = await start_syncd(config, "run")
        try:
            assert daemon.stderr is not None
            started: dict[str, object] = {}
            while started.get("event") != "syncd started":
                started = json.loads(await asyncio.wait_for(daemon.stderr.readline(), 60))
            assert started["store"] == str(tmp_path / "syncd.db")
            assert started["feeds"] == 1 and started["sinks"] == 1
            assert started["version"]

            second = await syncd(config, "run")
            assert second.code == 1
            assert second.stderr.splitlines() == [
                f"syncd: another `syncd run` (pid {daemon.pid}) is already running on"
                f" '{tmp_path / 'syncd.db'}'"
            ]
            for args in (["status"], ["sync", "--force"], ["deliveries", "list"]):
                beside = await syncd(config, *args)
                assert beside.code == 0, (args, beside.stderr)
        finally:
            daemon.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(daemon.communicate(), 60)
    assert daemon.returncode == 0
    events = [json.loads(line)["event"] for line in err.decode().splitlines()]
    assert events[-1] == "syncd stopped"


async def test_ctrl_c_in_a_first_sync_reads_as_interrupted(tmp_path: Path) -> None:
    feed = BloggerFeed(120)
    feed.set_delay(600, page=3)  # pages 1 and 2 commit, page 3 hangs until Ctrl-C
    async with serve_feed(feed) as server:
        # "down" fails at once: its log line comes while f's bar is shown.
        down = {"name": "down", "url": "http://127.0.0.1:9/feed"}
        config = write_config(tmp_path, feeds=[{"name": "f", "url": server.url}, down])
        # On an 80-column terminal: the progress bar is drawn, then cleared by the interrupt.
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        proc = await start_syncd(config, "sync", stderr=slave)
        os.close(slave)
        screen = b""
        loop = asyncio.get_running_loop()
        while b"50/120" not in screen:
            chunk = await asyncio.wait_for(loop.run_in_executor(None, os.read, master, 4096), 60)
            screen += chunk
        await committed(tmp_path / "syncd.db", 50)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 130
        while True:
            try:
                chunk = await loop.run_in_executor(None, os.read, master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        os.close(master)
    text = screen.decode(errors="replace")
    after_bar = text[text.rindex("50/120") :]
    assert "\x1b[2K" in after_bar  # the bar's line erased
    assert after_bar.rstrip().endswith("syncd: interrupted")
    # The log line (JSON: stdout is not a terminal) is whole, on a line of its own, unwrapped
    # although it is wider than the terminal.
    (logged,) = [
        json.loads(line[line.index("{") :])
        for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n").split("\n")
        if "feed sync failed" in line
    ]
    assert logged["feed"] == "down"

    status = await syncd(config, "status", "--json")
    f, _ = json.loads(status.stdout)["feeds"]
    assert f["last_outcome"] == "interrupted" and f["crawl_incomplete"] is True
    status = await syncd(config, "status")
    assert "  f: interrupted at -, 50 entries" in status.stdout
    assert "  down: connect at " in status.stdout


async def test_ctrl_c_without_a_terminal_exits_130(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    feed.set_delay(600, page=2)
    async with serve_feed(feed) as server:
        config = write_config(tmp_path, feeds=[{"name": "f", "url": server.url}])
        proc = await start_syncd(config, "sync")
        await committed(tmp_path / "syncd.db", 25)  # page 1 is in; page 2 hangs
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130
    assert err.decode().splitlines()[-1] == "syncd: interrupted"


def test_a_non_editable_install_works_from_a_clean_directory(tmp_path: Path) -> None:
    """`pip install .` (a wheel, not the checkout) gives a working `syncd`: every subpackage and
    the console script are in it. Built offline: no build isolation, no dependencies fetched
    (they are this venv's)."""
    import shutil
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "syncd", src / "syncd", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "."],
        cwd=src,
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("syncd-*.whl")
    target = tmp_path / "installed"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "syncd.toml").write_text(
        '[[feeds]]\nname = "a"\nurl = "http://127.0.0.1:9/"\n'
        '[[sinks]]\nname = "f"\ntype = "file"\npath = "f.jsonl"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    where = subprocess.run(
        [sys.executable, "-c", "import syncd.cli; print(syncd.cli.__file__)"],
        cwd=clean,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(target))
    run = subprocess.run(
        [str(target / "bin" / "syncd"), "--config", "syncd.toml", "check-config"],
        cwd=clean,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "sink f (file) -> f.jsonl" in run.stdout


def test_unknown_names_are_usage_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path, feeds=[{"name": "a", "url": "http://127.0.0.1:9/"}])
    SqliteStore.open(tmp_path / "syncd.db").db.close()
    code, _, err = invoke("--config", str(config), "sinks", "enable", "nope")
    assert code == 2
    assert err.strip() == "syncd: no sink named 'nope' (configured: none)"
    code, _, err = invoke("--config", str(config), "sync", "nope")
    assert code == 2
    assert err.strip() == "syncd: config error: no feed named 'nope' (configured: a)"


@pytest.mark.parametrize("command", [["sinks", "enable", "a"], ["deliveries", "recover", "a"]])
def test_changing_commands_do_not_create_a_database(tmp_path: Path, command: list[str]) -> None:
    config = write_config(
        tmp_path,
        feeds=[{"name": "x", "url": "http://127.0.0.1:9/"}],
        sinks=[file_sink(tmp_path, "a")],
    )
    code, _, err = invoke("--config", str(config), *command)
    assert code == 1
    assert err.startswith(f"syncd: no database at '{tmp_path / 'syncd.db'}'")
    assert not (tmp_path / "syncd.db").exists()
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(f"file:{tmp_path / 'syncd.db'}?mode=ro", uri=True).execute("SELECT 1")
