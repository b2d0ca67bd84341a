"""The daily report: a day's report (the job's: the previous local day in ``daemon.timezone``),
built from storage, written as ``daily-status-YYYY-MM-DD.{txt,html,json}`` into the reports
directory, and sent once per date as a REPORT notification through ``jobs.daily_report.route``
(or normal routing without one).

The report travels as a resolved ``daily_report`` alert spanning the day it covers: routing matches
its labels (``type=daily_report``, ``severity=info``), and an Alertmanager receiving it never sees a
firing alert. Its event id ``report-YYYY-MM-DD`` makes the outbox rows idempotent per date and route,
so a second run for the same day (or ``report --send``) queues nothing new."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import structlog

from umig_monitor.config import Settings
from umig_monitor.core.alerts import Alert, AlertState, NotificationKind, alert_key
from umig_monitor.core.baselines import Baseline
from umig_monitor.core.report import (
    Counts,
    DriftFinding,
    HourlyCounts,
    Period,
    Report,
    ReportEnvironment,
    ReportInputs,
    hour_floor,
    make_report,
    render_html,
    render_text,
    report_json,
)
from umig_monitor.core.routing import select_routes
from umig_monitor.ops.baselines import from_stored
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.pipeline.policy import route_specs
from umig_monitor.storage import Store
from umig_monitor.storage.records import Delivery, HealthRollup

log = structlog.get_logger("umig_monitor.report")
ALERT_TYPE = "daily_report"
# Generous limits for the unbounded store queries a past day needs (newest first): a day's alerts and
# baselines are far fewer, but "since the day's start" reaches up to now for an old day.
ALERT_LIMIT = 100_000
BASELINE_LIMIT = 5_000
FINDING_LIMIT = 10_000


async def build_report(store: Store, settings: Settings, day: date, now: datetime) -> Report:
    """The report on local day ``day``, from what storage holds, as of ``now``."""
    p = Period.of(day, settings.daemon.timezone)
    since = p.previous().start  # the previous day's baselines are the performance reference
    baselines: list[Baseline] = []
    for name in settings.environments:
        stored = await store.baselines(environment=name, before=p.end, since=since, limit=BASELINE_LIMIT)
        baselines += [from_stored(b) for b in stored]
    # The raw samples as counts per hour, the same shape as the rollups that outlive them; of single
    # samples, only the two per environment the summary shows.
    hours = await store.health_hours(p.start, p.end)
    rollups = await store.health_rollups(hour_floor(p.start), p.end)
    last = await store.last_health_samples(p.start, p.end)
    versioned = await store.last_health_samples(p.start, p.end, versioned=True)
    findings = await store.drift_findings(active_only=False, limit=FINDING_LIMIT)
    return make_report(
        ReportInputs(
            day=day,
            timezone=settings.daemon.timezone,
            generated_at=now,
            environments=[ReportEnvironment(name, env.kind) for name, env in settings.environments.items()],
            hours=[_hourly_counts(h) for h in hours],
            rollups=[_hourly_counts(r) for r in rollups],
            last_samples=list(last.values()),
            last_versioned=list(versioned.values()),
            events=await store.deployment_events(since=p.start, until=p.end, newest_first=False),
            alerts=await store.list_alerts(since=p.start, limit=ALERT_LIMIT),
            baselines=baselines,
            findings=[
                DriftFinding(f.type, f.environment, f.severity, f.summary, f.first_seen, f.resolved_at)
                for f in findings
            ],
            drift_enabled=settings.jobs.drift.enabled,
        )
    )


def _hourly_counts(r: HealthRollup) -> HourlyCounts:
    return HourlyCounts(
        r.environment, r.hour, Counts(r.samples, r.healthy, r.degraded, r.unhealthy, r.failed)
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    """One report in its three forms."""

    day: date
    text: str
    html: str
    json: str

    @classmethod
    def of(cls, report: Report) -> Rendered:
        document = json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n"
        return cls(report.period.day, render_text(report), render_html(report), document)

    def files(self) -> dict[str, str]:
        """File name -> content: the guide's ``daily-status-YYYY-MM-DD.txt``, plus HTML and JSON."""
        stem = f"daily-status-{self.day.isoformat()}"
        return {f"{stem}.txt": self.text, f"{stem}.html": self.html, f"{stem}.json": self.json}


def report_directory(settings: Settings) -> Path | None:
    """``jobs.daily_report.directory``; None (no files) when it is not set."""
    value = getattr(settings.jobs.daily_report, "directory", None)
    return Path(value) if value else None


def write_report_files(directory: Path, files: Mapping[str, str]) -> list[Path]:
    """Write each file whole (a temporary file renamed over it), so a reader never sees half a report."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        path = directory / name
        temporary = directory / f".{name}.tmp"
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)
    return written


def report_alert(report: Report) -> Alert:
    p = report.period
    return Alert(
        key=alert_key(ALERT_TYPE, None, p.day.isoformat()),
        type=ALERT_TYPE,
        environment=None,
        severity="info",
        state=AlertState.RESOLVED,
        summary=report.title,
        starts_at=p.start,
        ends_at=p.end,
        details={"date": p.day.isoformat(), "timezone": p.timezone},
    )


def report_sinks(settings: Settings) -> list[str]:
    """The sinks the report goes to: its route's, or those normal routing picks for it."""
    routes, default = route_specs(settings)
    name = settings.jobs.daily_report.route
    labels = {"alertname": ALERT_TYPE, "type": ALERT_TYPE, "severity": "info"}
    chosen = (
        [r for r in routes if r.key == name] if name is not None else select_routes(routes, default, labels)
    )
    return list(dict.fromkeys(sink for route in chosen for sink in route.sinks))


async def send_report(
    pipeline: AlertPipeline, settings: Settings, report: Report, rendered: Rendered | None = None
) -> int:
    """Queue the report for delivery; returns the outbox rows that are new (0 when already queued)."""
    rendered = rendered or Rendered.of(report)
    return await pipeline.notify(
        report_alert(report),
        NotificationKind.REPORT,
        f"report-{report.period.day.isoformat()}",
        route_name=settings.jobs.daily_report.route,
        title=report.title,
        text=rendered.text,
        html=rendered.html,
    )


async def report_deliveries(store: Store, report: Report, sinks: list[str]) -> dict[str, Delivery]:
    """Per sink, the newest outbox row carrying this report."""
    found: dict[str, Delivery] = {}
    for d in await store.list_deliveries(limit=2_000):  # newest first
        if d.kind == NotificationKind.REPORT.value and d.payload.get("title") == report.title:
            found.setdefault(d.sink, d)
    return {sink: found[sink] for sink in sinks if sink in found}
