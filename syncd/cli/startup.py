"""What the `syncd` command does before importing anything else: import structlog without rich
when the logs will be JSON lines.

structlog imports rich (~0.1 s of CPU) whenever it is installed, for its console renderer's
tracebacks. syncd writes JSON whenever stdout is not a terminal (`syncd.logs`), and the JSON
renderer never uses rich; a cron or systemd `syncd sync` that meets only 304s would pay for it on
every run. At a terminal nothing changes. Must run before anything imports structlog; rich
itself stays importable afterwards (the progress display imports it when stderr is a terminal).
"""

from __future__ import annotations

import importlib
import sys

from syncd.logs_format import logs_are_json


def import_structlog_without_rich() -> None:
    if "structlog" in sys.modules or "rich" in sys.modules or not logs_are_json():
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` now fails at once
    try:
        importlib.import_module("structlog")
    finally:
        del sys.modules["rich"]
