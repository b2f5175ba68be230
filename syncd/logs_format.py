"""Which log format this process writes: JSON lines when stdout is not a terminal (journald,
pipes), console otherwise. Imports nothing, so the CLI can ask before it imports structlog."""

from __future__ import annotations

import sys


def logs_are_json() -> bool:
    return not sys.stdout.isatty()
