"""The daily report job: yesterday's report (``daemon.timezone``) from ``ops.reports``, written to
the reports directory and sent once per date."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

import structlog

from umig_monitor.config import Settings
from umig_monitor.core.report import previous_day
from umig_monitor.ops.reports import (
    Rendered,
    build_report,
    report_directory,
    report_sinks,
    send_report,
    write_report_files,
)
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.storage import Store

log = structlog.get_logger("umig_monitor.report")


class ReportContext(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def alerts(self) -> AlertPipeline: ...


async def daily_report(ctx: ReportContext, now: datetime | None = None) -> None:
    """The scheduled job: report on yesterday, write the files, queue the notification. An unwritable
    directory is logged and the report is still sent."""
    settings = ctx.settings
    now = now or datetime.now(UTC)
    day = previous_day(now, settings.daemon.timezone)
    report = await build_report(ctx.store, settings, day, now)
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
    queued = await send_report(ctx.alerts, settings, report, rendered)
    log.info(
        "report_queued" if queued else "report_already_queued",
        day=day.isoformat(),
        sinks=sinks,
        notifications=queued,
        checks=report.total.checks,
        alerts=report.alerts.raised,
    )
