"""One daemon per store: an exclusive flock on `<db>-daemon.lock`, with the holder's pid in it.

A second `syncd run` on the same store is refused with an error naming that process, instead of
two schedulers polling every feed twice. One-shot commands (`sync`, `status`, `deliveries ...`)
never take this lock, so they keep working beside a running daemon. The kernel drops the lock
when the process ends, even on SIGKILL, so a crash leaves nothing to clean up.

This module only locks; it decides nothing about what a daemon does.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from syncd.errors import StoreError

__all__ = ["DaemonLock"]


class DaemonLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_store(cls, db_path: Path) -> DaemonLock:
        return cls(db_path.with_name(db_path.name + "-daemon.lock"))

    def acquire(self) -> None:
        """Take the lock or raise StoreError naming the pid that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StoreError(f"cannot open lock file {str(self.path)!r}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"another `syncd run` (pid {holder}) is already running on"
                f" {str(self.path.with_name(self.path.name.removesuffix('-daemon.lock')))!r}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock
