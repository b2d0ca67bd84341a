"""The drift job: the versions last seen in every environment, judged by core's drift rules;
findings are stored, raised as ``version_drift`` alerts, and resolved when fixed. An environment
that reports no version now (an outage) is judged on the version it last reported, so drift does
not resolve and re-fire with reachability."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from umig_monitor.config import Settings
from umig_monitor.core.alerts import AlertEvent
from umig_monitor.core.deployments import EventType
from umig_monitor.core.drift import (
    DriftPolicy,
    EnvironmentVersions,
    Finding,
    alert_event,
    detect,
    version_matrix,
)
from umig_monitor.core.health import HealthSample
from umig_monitor.jobs.health import version_key
from umig_monitor.metrics import InsightMetrics
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.storage import Store
from umig_monitor.storage.insights import FindingRow

log = structlog.get_logger("umig_monitor.drift")
# Shown in the matrix, the API and the report, but not notified: a development or UAT build ahead
# of production is the normal state of a release pipeline (the guide only prints it).
REPORT_ONLY = frozenset({"ahead"})


def policy_for(settings: Settings) -> DriftPolicy:
    d = settings.jobs.drift
    production = [n for n, e in settings.environments.items() if e.kind == "production"]
    return DriftPolicy(
        max_versions_behind=d.max_versions_behind,
        component_pairs=tuple((a, b) for a, b in d.component_pairs),
        stale_after={str(k): v for k, v in d.stale_after.items()},
        production_env="production"
        if "production" in production
        else (production[0] if production else None),
    )


async def drift_inputs(store: Store, settings: Settings) -> tuple[list[EnvironmentVersions], list[str]]:
    latest = await store.latest_health_samples()
    deployed = await store.latest_deployments()
    envs = []
    for name, env in settings.environments.items():
        sample = latest.get(name)
        last = deployed.get(name)
        last_ts = last.ts if last is not None else None
        seen = await store.kv_get(version_key(name))
        first_seen = _first_seen(seen)
        if last_ts is None:
            last_ts = first_seen
        versions = EnvironmentVersions(
            name=name,
            kind=env.kind,
            version=sample.version if sample else None,
            components=dict(sample.component_versions) if sample else {},
            last_deployment=last_ts,
        )
        if versions.version is None:
            versions = await _held(store, versions, seen, first_seen)
        envs.append(versions)
    production = policy_for(settings).production_env
    history: list[str] = []
    if production is not None:
        events = await store.deployment_events(
            environment=production,
            types=[EventType.SUCCESS.value, EventType.OBSERVED.value],
            newest_first=False,
        )
        for event in events:
            if event.version and event.version not in history:
                history.append(event.version)
        current = next((e.version for e in envs if e.name == production), None)
        if current and current not in history:
            history.append(current)
    return envs, history


def _first_seen(seen: object) -> datetime | None:
    """When the health job first saw the environment's current version (kv ``version_seen``)."""
    if isinstance(seen, dict) and isinstance(seen.get("first_seen"), str):
        try:
            return datetime.fromisoformat(seen["first_seen"])
        except ValueError:
            return None
    return None


async def _held(
    store: Store, env: EnvironmentVersions, seen: object, first_seen: datetime | None
) -> EnvironmentVersions:
    """An environment that reports no version now, with the version it last reported and when:
    from its newest sample that had one, else (samples pruned) the health job's record of the
    version, seen at least when it first appeared. Unchanged when neither is known."""
    sample: HealthSample | None = await store.last_versioned_sample(env.name)
    if sample is not None and sample.version is not None:
        return replace(
            env, version=sample.version, components=dict(sample.component_versions), last_seen=sample.ts
        )
    if isinstance(seen, dict) and isinstance(seen.get("version"), str) and first_seen is not None:
        return replace(env, version=seen["version"], last_seen=first_seen)
    return env


async def drift_report(
    store: Store, settings: Settings, now: datetime
) -> tuple[list[dict[str, Any]], list[Finding]]:
    envs, history = await drift_inputs(store, settings)
    return version_matrix(envs), detect(envs, policy_for(settings), now, history)


def finding_document(f: Finding) -> dict[str, Any]:
    return {
        "key": f.key,
        "type": f.type,
        "environment": f.environment,
        "severity": f.severity,
        "summary": f.summary,
        "details": dict(f.details),
    }


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
