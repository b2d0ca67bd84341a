"""structlog setup: JSON lines off a terminal (journald, containers), the console renderer on one."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final, Literal, TextIO

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


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler that, like ``_factory``, looks the standard stream up at each record."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._standard = "stdout" if stream is sys.stdout else "stderr" if stream is sys.stderr else None

    def emit(self, record: logging.LogRecord) -> None:
        if self._standard is not None:
            self.stream = getattr(sys, self._standard)
        super().emit(record)


# Tracebacks as structured data, but never with frame locals: a poll's locals hold the
# environment's Authorization header.
_TRACEBACKS: Final = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


class _OncePerBurst(logging.Filter):
    """asyncio logs every failed ``accept()`` (out of file descriptors: one line and a traceback
    per attempt, thousands a second). The first of a burst passes, with how many were held back
    since the last one; the rest of the burst is dropped."""

    def __init__(self, marker: str, every: float = 60.0) -> None:
        super().__init__()
        self._marker = marker
        self._every = every
        self._last = -every
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self._marker not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self._last < self._every:
            self._held += 1
            return False
        record.exc_info = None  # the traceback is always asyncio's own accept loop
        if self._held:
            record.msg = f"{record.msg} ({self._held} more since the last such line)"
        self._last, self._held = now, 0
        return True


ACCEPT_ERRORS: Final = _OncePerBurst("socket.accept() out of system resource")


def configure_logging(level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if use_json:
        tail: list[structlog.types.Processor] = [_TRACEBACKS]
        renderer = structlog.processors.JSONRenderer()
    else:
        tail = []
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_factory(stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through stdlib logging (apscheduler, aiohttp, asyncio) go through the same
    # chain to the same stream, so in JSON mode every line is JSON (journald, Loki).
    handler = _StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    asyncio_log = logging.getLogger("asyncio")
    if ACCEPT_ERRORS not in asyncio_log.filters:
        asyncio_log.addFilter(ACCEPT_ERRORS)
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))


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
