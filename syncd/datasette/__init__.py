"""Datasette for the store: the metadata syncd ships (titles, descriptions, column labels, the
full-text search of `live_entries`, canned queries) and the command line that serves a store
with it.

The store is served as a *mutable* database: Datasette reads it through `mode=ro` connections,
which see each commit of the running daemon (WAL readers never block its writer) and cannot
write. Immutable mode (`-i`) would be wrong here: it tells SQLite the file never changes, so
Datasette would skip locking and the WAL and could read pages mid-write. This module only
builds; the CLI runs.
"""

from __future__ import annotations

import importlib.resources
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["argv", "metadata"]


def metadata(database: str) -> dict[str, Any]:
    """The shipped metadata, its database section under `database` (Datasette names a database
    after its file: `syncd.db` is `syncd`)."""
    text = importlib.resources.files(__name__).joinpath("metadata.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    data["databases"] = {database: data["databases"]["syncd"]}
    return data


def argv(db: Path, metadata_path: str, extra: Sequence[str]) -> list[str]:
    """`datasette serve` on the store, with this Python's Datasette (the one installed beside
    syncd). `extra` goes to Datasette as given (`--port`, `--host`, `--open`, `--setting`…)."""
    return [
        sys.executable,
        "-m",
        "datasette",
        "serve",
        str(db),
        "--metadata",
        metadata_path,
        *extra,
    ]
