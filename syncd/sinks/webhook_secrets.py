"""A webhook sink's secrets: the rule an inline one follows, and reading every source when the
sink is built. Shared by the options model (`syncd.sinks.webhook_options`), syncd's own config
checker and the sink's factory; imports no validation library. Reads a secret file and the
environment only in `resolve_secrets`, never at import or config load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncd.errors import ConfigError
from syncd.paths import credential_path

__all__ = ["SECRET_PREFIX", "checked_secret", "resolve_secrets"]

SECRET_PREFIX = "whsec_"


def checked_secret(value: str) -> str:
    """`value` if it reads as a Standard Webhooks secret, else ValueError (never echoing it)."""
    if not value.strip().startswith(SECRET_PREFIX):
        raise ValueError('a webhook secret must be "whsec_" followed by base64')
    return value


def resolve_secrets(options: Any, base_dir: Path | None, environ: Mapping[str, str]) -> list[str]:
    """Every secret of a webhook sink's validated `options` (the model, or the checker's values):
    inline ones, the lines of `secret_file` (relative to `base_dir`) and `$secret_env`. Raises
    ConfigError naming the key whose source cannot be read."""
    found = [*([options.secret] if options.secret else []), *options.secrets]
    if options.secret_file:
        try:
            path = credential_path(options.secret_file, base_dir, environ)
        except ConfigError as e:
            raise ConfigError(str(e), key="secret_file") from None
        try:
            found.extend(ln.strip() for ln in path.read_text().splitlines() if ln.strip())
        except OSError as e:
            raise ConfigError(
                f"cannot read {str(path)!r}: {e.strerror}", key="secret_file"
            ) from None
    if options.secret_env:
        if options.secret_env not in environ:
            raise ConfigError(
                f"environment variable {options.secret_env} is not set", key="secret_env"
            )
        found.append(environ[options.secret_env].strip())
    return list(dict.fromkeys(found))
