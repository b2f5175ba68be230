"""The webhook sink's options model (`[[sinks]]` tables of type "webhook"). Apart from
`syncd.sinks.webhook`, so that building and using a webhook sink needs no validation library: a
pass whose config syncd's own checker (`syncd.configcheck`) accepted never imports pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from syncd.redact import redacted_url
from syncd.sinks.options import HttpUrlText, SinkOptions
from syncd.sinks.webhook_secrets import checked_secret, resolve_secrets

__all__ = ["WebhookOptions"]


class WebhookOptions(SinkOptions):
    """A webhook sink's keys. Secrets are named here but only read by `resolve_secrets`, when the
    sink is built, so that commands which deliver nothing never need the credential."""

    initial_default: ClassVar[Literal["deliver", "skip"]] = "skip"

    url: HttpUrlText
    secret: str | None = None
    secrets: list[str] = Field(default_factory=list)
    secret_env: str | None = None
    # Validated last, default included: it checks that some source is given.
    secret_file: str | None = Field(default=None, validate_default=True)

    @field_validator("secret")
    @classmethod
    def _inline_secret(cls, value: str | None) -> str | None:
        return None if value is None else checked_secret(value)

    @field_validator("secrets")
    @classmethod
    def _inline_secrets(cls, value: list[str]) -> list[str]:
        return [checked_secret(s) for s in value]

    @field_validator("secret_file", mode="after")
    @classmethod
    def _some_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        given = info.data
        if value is None and not (
            given.get("secret") or given.get("secrets") or given.get("secret_env")
        ):
            raise ValueError("a webhook sink needs a secret (secret_file, secret_env)")
        return value

    def target(self) -> str:
        return redacted_url(self.url)

    def resolve_secrets(self, base_dir: Path | None, environ: Mapping[str, str]) -> list[str]:
        """Every secret (`syncd.sinks.webhook_secrets.resolve_secrets`)."""
        return resolve_secrets(self, base_dir, environ)
