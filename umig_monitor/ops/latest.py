"""Every environment's latest state, read once for a whole view: its newest sample, its current
deployment and the version it was first seen running, one query (or two) per kind of fact, never
one per environment. The environments view, drift and the status page share one read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from umig_monitor.core.deployments import DeploymentEvent
from umig_monitor.core.health import HealthSample, VersionSeen
from umig_monitor.storage import Store


@dataclass(frozen=True, slots=True)
class Latest:
    samples: Mapping[str, HealthSample]
    deployments: Mapping[str, DeploymentEvent]
    versions_seen: Mapping[str, VersionSeen]


async def read_latest(store: Store) -> Latest:
    return Latest(
        samples=await store.latest_health_samples(),
        deployments=await store.latest_deployments(),
        versions_seen=await store.versions_seen(),
    )
