"""structlog set-up: JSON lines when stdout is not a terminal (journald, pipes), console otherwise.

The format follows stdout, as the contract says: an operator at a terminal reads the console
format; under systemd or in a pipeline both streams are captured and JSON is parsed. Logs are
written to stderr so that command output on stdout (`syncd query`, `syncd status --json`) stays
machine-readable. Called once, from the CLI; library code only asks structlog for loggers.
"""

from __future__ import annotations

import logging
import sys

import structlog

from syncd.logs_format import logs_are_json


class _CurrentStderr:
    """Whatever `sys.stderr` is at the time of each write: a live progress display swaps it for
    a proxy that prints log lines above the bar instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, verbose: bool = False, json_output: bool | None = None) -> None:
    use_json = logs_are_json() if json_output is None else json_output
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if use_json:
        processors.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
