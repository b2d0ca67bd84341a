"""The alert pipeline every job raises through: record the alert, then (issue 4) route, dedup,
outbox and deliver. Jobs only ever call ``submit``."""

from __future__ import annotations

import structlog

from umig_monitor.core.alerts import AlertEvent
from umig_monitor.storage import Store

log = structlog.get_logger("umig_monitor.pipeline")


class AlertPipeline:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def submit(self, event: AlertEvent) -> None:
        if event.firing:
            alert, new = await self._store.fire_alert(event)
            if new:
                log.warning(
                    "alert_raised",
                    alert_key=alert.key,
                    type=alert.type,
                    env=alert.environment,
                    severity=alert.severity,
                    summary=alert.summary,
                )
            return
        resolved = await self._store.resolve_alert(event.key, event.at)
        if resolved is not None:
            log.info("alert_resolved", alert_key=resolved.key, type=resolved.type, env=resolved.environment)
