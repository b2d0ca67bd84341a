"""Read models shared by the JSON API, the status page and the CLI: the environments (one query per
kind of fact, not one per environment), one environment's detail, and the DORA figures. They
read storage and call core builders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from umig_monitor.config import Settings
from umig_monitor.core.alerts import Alert
from umig_monitor.core.dora import Incident, dora
from umig_monitor.core.status import alert_document, environment_status, iso, sample_document
from umig_monitor.core.tracking import HEALTH
from umig_monitor.ops.latest import Latest, read_latest
from umig_monitor.storage import Store


async def environments_view(
    store: Store,
    settings: Settings,
    latest: Latest | None = None,
    firing: Sequence[Alert] | None = None,
    *,
    only: str | None = None,
) -> dict[str, Any]:
    """The environment documents of every configured environment (``only``: of that one). A caller
    that also needs the latest state or the firing alerts reads them once and passes them in."""
    if latest is None:
        latest = await read_latest(store)
    if firing is None:
        firing = await store.active_alerts()
    incidents = {a.environment: a for a in firing if a.kind == HEALTH}
    out: dict[str, Any] = {}
    for name, env in settings.environments.items():
        if only is not None and name != only:
            continue
        current = latest.deployments.get(name)
        deployment = (
            {"version": current.version, "deployedAt": iso(current.ts), "deployedBy": current.initiated_by}
            if current is not None
            else None
        )
        out[name] = environment_status(
            env.kind,
            latest.samples.get(name),
            latest.versions_seen.get(name),
            incidents.get(name),
            deployment,
            (env.thresholds.certificate_warning, env.thresholds.certificate_critical),
        )
    return {"environments": out}


async def environment_detail(store: Store, settings: Settings, name: str, limit: int = 50) -> dict[str, Any]:
    active = await store.active_alerts(name)
    view = await environments_view(store, settings, firing=active, only=name)
    entry = view["environments"][name]
    incident = next((a for a in active if a.kind == HEALTH), None)
    samples = await store.recent_health_samples(name, limit)
    return {
        "name": name,
        **entry,
        "incident": alert_document(incident) if incident else None,
        "activeAlerts": [alert_document(a) for a in active],
        "recentSamples": [sample_document(s) for s in samples],
    }


async def dora_figures(
    store: Store, settings: Settings, days: float, only: str | None = None
) -> dict[str, Any]:
    """DORA figures per environment over the last ``days`` (``core.dora``), with the
    environment's health incidents of the window; deployments from ``incident_link_window``
    before it are read too, so that an incident early in the window finds its deployment."""
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    link = settings.deployments.incident_link_window
    out = {}
    for name in settings.environments:
        if only is not None and name != only:
            continue
        events = await store.deployment_events(
            environment=name, since=start - link, until=end, newest_first=False
        )
        alerts = await store.list_alerts(environment=name, since=start, limit=5000)
        incidents = sorted(
            (Incident(a.starts_at, a.ends_at) for a in alerts if a.kind == HEALTH),
            key=lambda x: x.starts_at,
        )
        out[name] = asdict(dora(name, events, incidents, start, end, link))
    return {"windowDays": days, "environments": out}
