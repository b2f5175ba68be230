"""The typed options of a sink type: the keys of a `[[sinks]]` table beyond the common ones.

Each sink type owns one `SinkOptions` subclass (webhook.py's `WebhookOptions`, …). The config
loader validates a table against the common keys plus that class, strictly (an unknown key is an
error), once; the sink factory then receives the validated instance. This module holds only the
base class and the validators sink option models share; it reads no file and opens nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from syncd.errors import ConfigError

__all__ = ["HttpUrlText", "NonEmptyText", "SinkOptions", "credential_path", "resolve_path"]

_HTTP_URL = re.compile(r"^https?://[^/\s]+")


def _http_url(value: str) -> str:
    if not _HTTP_URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


NonEmptyText = Annotated[str, Field(min_length=1)]
HttpUrlText = Annotated[str, AfterValidator(_http_url)]


class SinkOptions(BaseModel):
    """Base of every sink type's options. Strict: a key the type does not declare is an error,
    and a value of the wrong TOML type is not coerced ("yes" is not a boolean)."""

    # Built on first use: a pass meets only the types it configures (and validates through
    # the combined table model, `syncd.config._sink_model`), not every type's schema.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)

    # What the first sync's backfill does for this type when the table does not say.
    initial_default: ClassVar[Literal["deliver", "skip"]] = "deliver"

    def target(self) -> str:
        """Where events go, in a few words, for `syncd check-config`."""
        return "(plugin-defined)"


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
