"""How the CLI fails: click exceptions that carry syncd's exit codes and print one line each.

Exit codes: 0 success, 1 operational failure, 2 bad usage or bad config, 3 the store is held by
a running daemon and the command would block it (`syncd vacuum`), 130 interrupted (Ctrl-C).
`reported` turns syncd's own errors (and, as a last resort, a bug) into these; with `--verbose`
the traceback is printed first. Nothing here knows a command.
"""

from __future__ import annotations

import sys
import traceback
from typing import IO, Any

import click

from syncd.errors import ConfigError, SyncdError

__all__ = ["CliError", "ConfigFailure", "Interrupted", "StoreBusy", "UsageFailure", "reported"]


class CliError(click.ClickException):
    """An operational failure (exit 1): one `syncd: ...` line on stderr per line of message."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.format_message().splitlines() or [""]:
            click.echo(f"syncd: {line}", err=file is None, file=file)


class UsageFailure(CliError):
    """A command used wrongly in a way click cannot see (an unknown sink name, a bad range)."""

    exit_code = 2


class StoreBusy(CliError):
    """A running daemon holds the store and the command would stall its writes."""

    exit_code = 3


class ConfigFailure(CliError):
    """The configuration is invalid: one line per problem, each naming the file and the key."""

    exit_code = 2

    def __init__(self, error: ConfigError) -> None:
        super().__init__("\n".join(f"config error: {line}" for line in str(error).splitlines()))


class Interrupted(CliError):
    """Ctrl-C: the conventional 128 + SIGINT."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")


def reported(error: BaseException, *, verbose: bool) -> click.ClickException:
    """The click exception to raise for `error`, which a command let escape."""
    if isinstance(error, click.ClickException):
        return error
    if isinstance(error, KeyboardInterrupt):
        return Interrupted()
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, ConfigError):
        return ConfigFailure(error)
    if isinstance(error, SyncdError):
        return CliError(str(error))
    if isinstance(error, OSError):
        return CliError(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
    # A bug: still one line (and the traceback with --verbose).
    return CliError(
        f"internal error: {type(error).__name__}: {error} (run with --verbose for details)"
    )
