"""The typed options of a sink type: the keys of a `[[sinks]]` table beyond the common ones.

Each sink type owns one `SinkOptions` subclass (webhook.py's `WebhookOptions`, …). The config
loader validates a table against the common keys plus that class, strictly (an unknown key is an
error), once; the sink factory then receives the validated instance. This module holds only the
base class and the validators sink option models share; it reads no file and opens nothing.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from syncd.paths import credential_path, http_url, resolve_path

__all__ = ["HttpUrlText", "NonEmptyText", "SinkOptions", "credential_path", "resolve_path"]

NonEmptyText = Annotated[str, Field(min_length=1)]
HttpUrlText = Annotated[str, AfterValidator(http_url)]


class SinkOptions(BaseModel):
    """Base of every sink type's options. Strict: a key the type does not declare is an error,
    and a value of the wrong TOML type is not coerced ("yes" is not a boolean)."""

    # Built on first use: a pass meets only the types it configures (and validates through
    # the combined table model, `syncd.configmodels._sink_model`), not every type's schema.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)

    # What the first sync's backfill does for this type when the table does not say.
    initial_default: ClassVar[Literal["deliver", "skip"]] = "deliver"

    def target(self) -> str:
        """Where events go, in a few words, for `syncd check-config`."""
        return "(plugin-defined)"
