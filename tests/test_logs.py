"""Log output: every line is JSON in JSON mode, stdlib loggers included, and tracebacks never
carry frame locals (a poll's locals hold the environment's Authorization header)."""

from __future__ import annotations

import io
import json
import logging

import structlog

from umig_monitor.logs import configure_logging


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_stdlib_loggers_write_json_lines_in_json_mode() -> None:
    buffer = io.StringIO()
    configure_logging("info", "json", buffer)
    logging.getLogger("apscheduler.scheduler").warning("Run time of job %r was missed", "health:x")
    structlog.get_logger("umig_monitor.test").info("probe_completed", env="production")
    first, second = lines(buffer)
    assert first["event"] == "Run time of job 'health:x' was missed"
    assert first["level"] == "warning"
    assert first["logger"] == "apscheduler.scheduler"
    assert "timestamp" in first
    assert second["event"] == "probe_completed"
    assert second["env"] == "production"


def test_tracebacks_have_no_frame_locals() -> None:
    buffer = io.StringIO()
    configure_logging("info", "json", buffer)
    secret = "Bearer s3cr3t-token-in-a-local"

    def poll(headers: dict[str, str]) -> None:
        raise RuntimeError("boom")

    try:
        poll({"Authorization": secret})
    except RuntimeError:
        structlog.get_logger("t").exception("job_failed", job="health:production")
        logging.getLogger("aiohttp.server").exception("Error handling request")
    assert secret not in buffer.getvalue()
    records = lines(buffer)
    assert len(records) == 2
    for record in records:
        trace = record["exception"]
        assert isinstance(trace, list)
        assert trace[0]["exc_type"] == "RuntimeError"
        assert all("locals" not in frame for frame in trace[0]["frames"])


def test_console_tracebacks_have_no_frame_locals() -> None:
    buffer = io.StringIO()
    configure_logging("info", "console", buffer)
    secret = "Basic dXNlcjpwYXNzd29yZA=="
    try:
        headers = {"Authorization": secret}
        raise RuntimeError(str(len(headers)))
    except RuntimeError:
        structlog.get_logger("t").exception("job_failed")
    assert "RuntimeError" in buffer.getvalue()
    assert secret not in buffer.getvalue()
