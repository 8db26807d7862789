"""Structured JSON logs (structlog): one line per event, never personal data.

Only ids, roles, routes, statuses and durations are logged. Request bodies, query strings
(a caseload query may carry a DOC number) and exception messages from storage are not.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog


class Stderr:
    """Whatever sys.stderr is when a line is written (tests swap it), for commands whose
    stdout is their answer."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", stream: TextIO | Stderr | None = None) -> None:
    logging.basicConfig(level=level.upper(), stream=stream or sys.stdout,
                        format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
