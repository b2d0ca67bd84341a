"""structlog setup: JSON lines off a terminal (journald, containers), the console renderer on one."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]


def _factory(stream: TextIO) -> structlog.types.WrappedLogger:
    """Resolve sys.stdout/sys.stderr at each call rather than once, so a replaced stream (a test
    runner's capture, a reopened journald pipe) is followed instead of written to after closing."""
    if stream is sys.stdout:
        return lambda *_: structlog.PrintLogger(sys.stdout)
    if stream is sys.stderr:
        return lambda *_: structlog.PrintLogger(sys.stderr)
    return structlog.PrintLoggerFactory(file=stream)


def configure_logging(level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=stream.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_factory(stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through stdlib logging (apscheduler, aiohttp) go to the same stream.
    logging.basicConfig(
        level=max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]),
        stream=stream,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )


class FailureStreak:
    """One error line when something starts failing and one when it works again, not a line per
    attempt: an hour without the database must not mean thousands of identical errors."""

    def __init__(self, logger: Any, event: str, **context: Any) -> None:
        self._log = logger
        self._event = event
        self._context = context
        self._since: float | None = None
        self._count = 0

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, error: str, **fields: Any) -> None:
        self._count += 1
        if self._since is None:
            self._since = time.monotonic()
            self._log.error(self._event, error=error, **self._context, **fields)

    def succeeded(self) -> None:
        if self._since is not None:
            self._log.info(
                f"{self._event}_recovered",
                **self._context,
                failures=self._count,
                down_s=round(time.monotonic() - self._since, 1),
            )
            self._since = None
            self._count = 0
