"""The systemd notification protocol (sd_notify), written out: one datagram per message to the
AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or an abstract socket when it starts with `@`).

This module only speaks the protocol and reads the watchdog interval from the environment; when
to say READY, WATCHDOG or STOPPING is the daemon's decision (`syncd.daemon`). Without
`$NOTIFY_SOCKET` (not under systemd) every call does nothing. Sending never raises: a lost
notification must not stop the daemon (systemd will say so itself, by timing out).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("syncd.notify")


class Notifier:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.address = _address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = _watchdog_interval_s(environ)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """One notification, e.g. `send(READY=1, STATUS="...")`. True if it was sent."""
        if self.address is None:
            return False
        text = "\n".join(f"{k}={_one_line(str(v))}" for k, v in fields.items()) + "\n"
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(text.encode(), self.address)
        except OSError as e:
            if not self._warned:  # once: a broken socket would otherwise log every few seconds
                self._warned = True
                log.warning("systemd notification failed", socket=str(self.address), error=str(e))
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def reloading(self) -> bool:
        # systemd (253+) matches the reload to the time it was asked for by MONOTONIC_USEC.
        return self.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):  # an abstract socket: a leading NUL byte instead of the '@'
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # systemd also knows vsock addresses; syncd does not speak them


def _watchdog_interval_s(environ: Mapping[str, str]) -> float | None:
    """Half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises, if the watchdog is meant for
    this process (`$WATCHDOG_PID` absent or ours)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


def _one_line(value: str) -> str:
    return " ".join(value.split())
