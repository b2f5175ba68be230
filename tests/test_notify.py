"""The sd_notify client: addresses (path and abstract), the watchdog interval and who it is for,
and silence outside systemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from syncd.notify import Notifier


def test_outside_systemd_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.ready("x") is False
    assert n.watchdog_s is None


def test_watchdog_is_half_the_interval_and_only_for_this_process() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_s == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_s == 15.0
    other = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_s is None


def test_messages_reach_a_path_socket_and_stay_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(path)
        n = Notifier({"NOTIFY_SOCKET": path})
        assert n.ready("2 feeds\nand more")
        assert n.reloading()
        n.close()
        assert rx.recv(4096) == b"READY=1\nSTATUS=2 feeds and more\n"
        reload = dict(line.split("=", 1) for line in rx.recv(4096).decode().splitlines())
    assert reload["RELOADING"] == "1"
    assert int(reload["MONOTONIC_USEC"]) > 0


def test_abstract_socket(tmp_path: Path) -> None:
    name = f"syncd-notify-unit-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind("\0" + name)
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.stopping()
        n.close()
        assert rx.recv(4096) == b"STOPPING=1\n"


def test_a_missing_socket_does_not_raise(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    assert n.enabled
    assert n.watchdog() is False
    assert n.watchdog() is False
    n.close()
