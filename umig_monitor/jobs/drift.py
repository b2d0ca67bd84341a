"""The drift job: ``ops.drift``'s findings are stored, raised as ``version_drift`` alerts, and
resolved when fixed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import structlog

from umig_monitor.config import Settings
from umig_monitor.core.alerts import AlertEvent
from umig_monitor.core.drift import alert_event
from umig_monitor.metrics import InsightMetrics
from umig_monitor.ops.drift import drift_report
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.storage import Store
from umig_monitor.storage.insights import FindingRow

log = structlog.get_logger("umig_monitor.drift")
# Shown in the matrix, the API and the report, but not notified: a development or UAT build ahead
# of production is the normal state of a release pipeline (the guide only prints it).
REPORT_ONLY = frozenset({"ahead"})


class DriftContext(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def alerts(self) -> AlertPipeline: ...
    @property
    def insight_metrics(self) -> InsightMetrics: ...


async def detect_drift(ctx: DriftContext) -> None:
    now = datetime.now(UTC)
    _, findings = await drift_report(ctx.store, ctx.settings, now)
    rows = [
        FindingRow(f.key, f.type, f.environment, f.severity, f.summary, dict(f.details)) for f in findings
    ]
    new, resolved = await ctx.store.sync_findings(rows, now)
    ctx.insight_metrics.set_drift(findings)
    for finding in findings:
        if finding.type not in REPORT_ONLY:
            await ctx.alerts.submit(alert_event(finding, now))
    for gone in resolved:
        await ctx.alerts.submit(
            AlertEvent(
                gone.key,
                "version_drift",
                gone.environment,
                "info",
                f"resolved: {gone.summary}",
                now,
                firing=False,
            )
        )
    for f in new:
        log.warning("drift_detected", env=f.environment, type=f.type, severity=f.severity, summary=f.summary)
    for f in resolved:
        log.info("drift_resolved", env=f.environment, type=f.type, summary=f.summary)
