"""Paths and URLs named in the config: relative to the config file's directory, `~` expanded, and a
secret file's `$CREDENTIALS_DIRECTORY`. Shared by the config loader and the sinks; imports no
validation library (a pass of 304s resolves a file sink's path without one). Reads nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from syncd.errors import ConfigError

__all__ = ["credential_path", "http_url", "resolve_path"]

_HTTP_URL = re.compile(r"^https?://[^/\s]+")


def http_url(value: str) -> str:
    """`value` if it is an http(s) URL with a host, else ValueError."""
    if not _HTTP_URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def resolve_path(text: str, base_dir: Path | None) -> Path:
    """A path from the config: `~` expanded, and relative to `base_dir` (the config file's
    directory; None: the working directory)."""
    path = Path(text).expanduser()
    if base_dir is None or path.is_absolute():
        return path
    return Path(os.path.normpath(base_dir / path))  # "config/../var" reads as "var"


def credential_path(text: str, base_dir: Path | None, environ: Mapping[str, str]) -> Path:
    """A secret file's path. `$CREDENTIALS_DIRECTORY` (or `${...}`) in it is the directory where
    systemd put the unit's credentials (LoadCredential=); it is not set outside systemd, which is
    a ConfigError (the caller names the key). Read only when the secret is needed."""
    for form in ("${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"):
        if form in text:
            creds = environ.get("CREDENTIALS_DIRECTORY")
            if not creds:
                raise ConfigError(
                    "uses $CREDENTIALS_DIRECTORY, which is not set (systemd sets it"
                    " for a unit with LoadCredential=)"
                )
            text = text.replace(form, creds)
    return resolve_path(text, base_dir)
