"""The daily report job: yesterday's report (``daemon.timezone``) from ``ops.reports``, written to
the reports directory and sent once per date."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from umig_monitor.core.report import previous_day
from umig_monitor.ops.reports import (
    Rendered,
    build_report,
    report_directory,
    report_sinks,
    send_report,
    write_report_files,
)

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

log = structlog.get_logger("umig_monitor.report")


async def daily_report(daemon: Daemon, now: datetime | None = None) -> None:
    """The scheduled job: report on yesterday, write the files, queue the notification. An unwritable
    directory is logged and the report is still sent."""
    settings = daemon.settings
    now = now or datetime.now(UTC)
    day = previous_day(now, settings.daemon.timezone)
    report = await build_report(daemon.store, settings, day, now)
    rendered = Rendered.of(report)
    directory = report_directory(settings)
    if directory is not None:
        try:
            written = await asyncio.to_thread(write_report_files, directory, rendered.files())
            log.info("report_written", day=day.isoformat(), files=[str(p) for p in written])
        except OSError as exc:
            log.error("report_write_failed", day=day.isoformat(), path=str(directory), error=str(exc))
    sinks = report_sinks(settings)
    if not sinks:
        log.warning("report_not_routed", day=day.isoformat(), route=settings.jobs.daily_report.route)
        return
    queued = await send_report(daemon.alerts, settings, report, rendered)
    log.info(
        "report_queued" if queued else "report_already_queued",
        day=day.isoformat(),
        sinks=sinks,
        notifications=queued,
        checks=report.total.checks,
        alerts=report.alerts.raised,
    )
