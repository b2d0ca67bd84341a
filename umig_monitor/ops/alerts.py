"""Alerts and silences as the API and the CLI show them: one read model each, computed from storage
and the config the same way whoever asks (which silence or maintenance window holds a firing
alert back is decided as the dispatcher decides it, not read from one daemon's memory)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from umig_monitor.config import Settings
from umig_monitor.core.alerts import Alert, AlertState
from umig_monitor.core.silences import silenced_by
from umig_monitor.core.status import alert_document, silence_document
from umig_monitor.pipeline.policy import config_silences, maintenance_windows
from umig_monitor.storage import Store


async def alerts_view(
    store: Store,
    settings: Settings,
    now: datetime,
    *,
    state: AlertState | None = None,
    environment: str | None = None,
    type: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> dict[str, Any]:
    """Newest first; each firing alert says which silence or window holds it back (``silencedBy``)."""
    found = await store.list_alerts(state=state, environment=environment, type=type, since=since, limit=limit)
    held = await held_back(store, settings, now, found)
    docs = []
    for alert in found:
        doc = alert_document(alert)
        doc["silencedBy"] = held.get(alert.key) if alert.state is AlertState.FIRING else None
        docs.append(doc)
    return {"alerts": docs}


async def held_back(
    store: Store, settings: Settings, now: datetime, alerts: Iterable[Alert]
) -> dict[str, str]:
    """Which silence or maintenance window holds each firing alert back (alert key -> its id): the
    API's, the CLI's and the status page's answer, on every replica alike."""
    silences = [*config_silences(settings), *await store.list_silences(now)]
    windows = maintenance_windows(settings)
    held = {}
    for alert in alerts:
        if alert.state is AlertState.FIRING:
            by = silenced_by(alert.all_labels(), now, silences, windows)
            if by is not None:
                held[alert.key] = by
    return held


async def silences_view(
    store: Store, settings: Settings, now: datetime, include_all: bool = False
) -> dict[str, Any]:
    """Silences (the config's and the stored ones; expired ones too with ``include_all``) and the
    maintenance windows."""
    stored = await store.list_silences(None if include_all else now)
    return {
        "silences": [
            silence_document(s, now)
            for s in [*config_silences(settings), *stored]
            if include_all or s.ends_at > now
        ],
        "maintenanceWindows": [
            {
                "id": w.id,
                "matchers": [str(m) for m in w.matchers],
                "days": list(w.days),
                "start": str(w.start),
                "duration": str(w.duration),
                "timezone": w.timezone,
                "active": w.active(now),
                "comment": w.comment,
            }
            for w in maintenance_windows(settings)
        ],
    }
