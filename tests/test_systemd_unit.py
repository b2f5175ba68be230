"""The shipped systemd unit: it runs the daemon the way the README says, as Type=notify with a
watchdog, reloads with SIGHUP, stops it with the signal syncd handles gracefully, does not
restart on a bad config, passes `systemd-analyze verify` (with ExecStart pointed at this
checkout's real `syncd`) and scores at most 1.5 in `systemd-analyze security --offline=yes`."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "syncd.service"


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_unit_runs_the_daemon_and_stops_it_gracefully() -> None:
    service = unit()["Service"]
    assert service["ExecStart"].split()[-1] == "run"
    assert service["ExecStartPre"].split()[-1] == "check-config"
    assert service["KillSignal"] == "SIGTERM"  # syncd's graceful stop (tests/test_e2e_daemon.py)
    assert service["RestartPreventExitStatus"] == "2"  # exit 2 = bad config: do not loop
    assert service["Environment"].startswith("SYNCD_CONFIG=")
    assert service["StateDirectory"] == "syncd"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_is_notify_with_a_watchdog_and_a_reload() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify"  # READY=1: tests/test_systemd_notify.py
    assert service["NotifyAccess"] == "main"
    assert service["WatchdogSec"].rstrip("s").isdigit()
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "LoadCredential" in UNIT.read_text()  # documented, commented out: no file to load


def test_unit_security_exposure_is_at_most_1_5(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # not every machine has systemd; the directives are checked above
        return
    result = subprocess.run(
        [analyze, "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for syncd.service: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5, result.stdout


def test_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # not every machine has systemd; the directives are checked above
        return
    syncd_bin = Path(sys.executable).parent / "syncd"
    text = UNIT.read_text().replace("/opt/syncd/bin/syncd", str(syncd_bin))
    copy = tmp_path / "syncd.service"
    copy.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "syncd.service" in line and "Documentation" not in line
    ]
    assert problems == [], problems
