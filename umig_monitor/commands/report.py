"""``report``: the daily status report (the guide's daily-status-report.sh) for any past day, from
storage, as text, HTML or JSON; ``--send`` also delivers it from here, as the daemon's job would (the
daemon has no endpoint for it): enqueued once per date, then delivered while the command waits.

``--send`` is refused (exit 2) for a day that is not over in ``daemon.timezone``: each date is sent
once, so a partial day sent by hand would leave the scheduled report of that day nothing to send.
Printing or writing a partial day is fine; it is only never sent."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp

from umig_monitor.commands.common import open_store
from umig_monitor.config import Settings
from umig_monitor.core.report import Period, Report, previous_day
from umig_monitor.metrics import AlertMetrics, SelfMetrics
from umig_monitor.ops.reports import Rendered, build_report, report_deliveries, report_sinks, send_report
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.pipeline.actions import ActionError
from umig_monitor.storage import Store

DEFAULT_WAIT = 30.0  # seconds to wait for delivery with --send


def report_day(text: str | None, now: datetime, timezone: str) -> date:
    """``--date`` (YYYY-MM-DD, not after today in ``timezone``), by default yesterday there."""
    if text is None:
        return previous_day(now, timezone)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ActionError(f"--date: '{text}' is not a date (use YYYY-MM-DD)") from None
    if day > now.astimezone(ZoneInfo(timezone)).date():
        raise ActionError(f"--date: {day} has not started yet in {timezone}")
    return day


def check_sendable(day: date, now: datetime, timezone: str) -> None:
    """``--send`` only for a day that is over: the once-per-date slot belongs to the whole day."""
    end = Period.of(day, timezone).end
    if now < end:
        local_end = end.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
        raise ActionError(
            f"--send: {day} is not over yet in {timezone} (it ends at {local_end}); each date is "
            "sent once, and the daily job sends this one after it ends. Leave out --send to see "
            "the day so far"
        )


async def report(settings: Settings, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    day = report_day(args.date, now, settings.daemon.timezone)
    if args.send:
        check_sendable(day, now, settings.daemon.timezone)
    async with open_store(settings) as store:
        built = await build_report(store, settings, day, now)
        rendered = Rendered.of(built)
        output: str = getattr(rendered, args.format or "text")
        if args.output:
            await asyncio.to_thread(Path(args.output).write_text, output, encoding="utf-8")
        else:
            sys.stdout.write(output)
            sys.stdout.flush()
        if not args.send:
            return 0
        return await _send(store, settings, built, rendered, getattr(args, "wait", DEFAULT_WAIT))


async def _send(store: Store, settings: Settings, built: Report, rendered: Rendered, wait: float) -> int:
    """Enqueue (idempotent per date) and deliver; progress goes to stderr, as stdout may hold the report."""
    sinks = report_sinks(settings)
    if not sinks:
        route = settings.jobs.daily_report.route
        where = f"route '{route}'" if route else "routing (default_route has no sinks)"
        print(f"error: no sink takes the report: {where}", file=sys.stderr)
        return 1
    async with aiohttp.ClientSession() as session:
        pipeline = AlertPipeline(store, AlertMetrics(SelfMetrics().registry))
        pipeline.configure(settings, session)
        try:
            queued = await send_report(pipeline, settings, built, rendered)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while True:
                deliveries = await report_deliveries(store, built, sinks)
                pending = [d for d in deliveries.values() if d.status == "pending"]
                if not pending or loop.time() >= deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            await pipeline.close()
    if not queued:
        print(f"{built.title} was queued before (once per date); its deliveries:", file=sys.stderr)
    for sink in sinks:
        d = deliveries.get(sink)
        state = "not queued" if d is None else d.status + (f" - {d.last_error}" if d.last_error else "")
        if d is not None and d.status == "pending":
            state += " (left in the outbox: the daemon keeps trying)"
        print(f"  {sink}: {state}", file=sys.stderr)
    return 0 if all(d.status == "sent" for d in deliveries.values()) and len(deliveries) == len(sinks) else 1
