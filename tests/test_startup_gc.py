"""The `syncd` process entry (`syncd.__main__.run`) imports the command with the cycle collector
paused, freezes what the imports made, and leaves the collector on for the command's work,
collecting the young generation less often.

Run in a fresh interpreter (this one has imported syncd long ago): the collector's own
callbacks count its runs. Importing the command with the collector on runs it over a hundred
times; `--version` exits before any command runs (the script loads importlib.metadata, which
click reads the version with, beforehand), so what is counted is the import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from syncd.__main__ import YOUNG_THRESHOLD

SCRIPT = textwrap.dedent(
    """
    import gc, json, sys
    import importlib.metadata  # what `--version` itself reads the version with, not the import
    runs = []
    gc.callbacks.append(lambda phase, info: runs.append(info) if phase == "start" else None)
    sys.argv = ["syncd", "--version"]
    import syncd.__main__ as entry
    try:
        entry.run()
    except SystemExit:
        pass
    print(json.dumps({
        "collections": len(runs),
        "enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "threshold": gc.get_threshold(),
        "imported": "syncd.app" in sys.modules,
    }))
    """
)


def run_entry(script: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_entry_imports_with_the_collector_paused_then_freezes_and_enables_it() -> None:
    got = run_entry(SCRIPT)
    assert got["imported"] is True  # the command's modules were loaded
    assert got["enabled"] is True
    assert isinstance(got["frozen"], int) and got["frozen"] > 50_000
    assert isinstance(got["collections"], int) and got["collections"] <= 2
    assert got["threshold"] == [YOUNG_THRESHOLD, 10, 10]  # the older generations as they were


def test_importing_the_command_with_the_collector_on_runs_it_often() -> None:
    # The measure above means something: the same import, not through the entry.
    plain = SCRIPT.replace("entry.run()", "from syncd.cli import main; main()")
    got = run_entry(plain)
    assert isinstance(got["collections"], int) and got["collections"] > 50
    assert got["frozen"] == 0
    assert got["threshold"] == [700, 10, 10]  # the interpreter's own
