"""Drift: the versions last seen in every environment (an environment that reports no version now,
an outage, is judged on the version it last reported, so drift does not resolve and re-fire with
reachability), judged by core's drift rules. The drift job, the API and ``umig-monitor drift``
read it here."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from umig_monitor.config import Settings
from umig_monitor.core.deployments import EventType
from umig_monitor.core.drift import DriftPolicy, EnvironmentVersions, Finding, detect, version_matrix
from umig_monitor.core.health import HealthSample, VersionSeen
from umig_monitor.core.status import iso
from umig_monitor.ops.latest import Latest, read_latest
from umig_monitor.storage import Store


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


async def drift_inputs(
    store: Store, settings: Settings, latest: Latest | None = None
) -> tuple[list[EnvironmentVersions], list[str]]:
    if latest is None:
        latest = await read_latest(store)
    envs = []
    for name, env in settings.environments.items():
        sample = latest.samples.get(name)
        last = latest.deployments.get(name)
        last_ts = last.ts if last is not None else None
        seen = latest.versions_seen.get(name)
        if last_ts is None:
            last_ts = seen.first_seen if seen is not None else None
        envs.append(
            EnvironmentVersions(
                name=name,
                kind=env.kind,
                version=sample.version if sample else None,
                components=dict(sample.component_versions) if sample else {},
                last_deployment=last_ts,
            )
        )
    silent = [e.name for e in envs if e.version is None]
    if silent:
        versioned = await store.last_versioned_samples(silent)
        envs = [
            _held(e, versioned.get(e.name), latest.versions_seen.get(e.name)) if e.version is None else e
            for e in envs
        ]
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


def _held(
    env: EnvironmentVersions, sample: HealthSample | None, seen: VersionSeen | None
) -> EnvironmentVersions:
    """An environment that reports no version now, with the version it last reported and when:
    from its newest sample that had one, else (samples pruned) the health job's record of the
    version, seen at least when it first appeared. Unchanged when neither is known."""
    if sample is not None and sample.version is not None:
        return replace(
            env, version=sample.version, components=dict(sample.component_versions), last_seen=sample.ts
        )
    if seen is not None:
        return replace(env, version=seen.version, last_seen=seen.first_seen)
    return env


async def drift_report(
    store: Store, settings: Settings, now: datetime, latest: Latest | None = None
) -> tuple[list[dict[str, Any]], list[Finding]]:
    envs, history = await drift_inputs(store, settings, latest)
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


async def drift_view(store: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    """The version matrix and the findings, each with when it was first seen (the API's and
    ``umig-monitor drift``'s document)."""
    matrix, findings = await drift_report(store, settings, now)
    stored = {f.key: f for f in await store.drift_findings()}
    docs = []
    for f in findings:
        doc = finding_document(f)
        known = stored.get(f.key)
        doc["firstSeen"] = iso(known.first_seen) if known else None
        docs.append(doc)
    return {"generatedAt": iso(now), "matrix": matrix, "findings": docs}
