"""The environment status document, in the guide's "Current Environment Status" shape, built
from plain stored data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from umig_monitor.core import certificates
from umig_monitor.core.alerts import Alert
from umig_monitor.core.health import HealthSample, VersionSeen
from umig_monitor.core.silences import Silence

# The guide's lifecycle words per kind of environment.
KIND_STATUS = {"development": "active", "uat": "testing", "production": "stable", "hotfix": "hotfix"}


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


def sample_document(sample: HealthSample) -> dict[str, Any]:
    return {
        "timestamp": iso(sample.ts),
        "outcome": sample.outcome.value,
        "umigStatus": sample.umig_status,
        "version": sample.version,
        "build": sample.build,
        "uptime": sample.uptime_text,
        "uptimeSeconds": sample.uptime_seconds,
        "responseTimeMs": sample.response_ms,
        "components": dict(sample.components),
        "componentVersions": dict(sample.component_versions),
        "metrics": dict(sample.metrics),
        "error": sample.error,
        "tlsCertExpiry": iso(sample.tls_cert_expiry),
    }


def alert_document(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "key": alert.key,
        "type": alert.type,
        "environment": alert.environment,
        "severity": alert.severity,
        "state": alert.state.value,
        "summary": alert.summary,
        "details": dict(alert.details),
        "labels": dict(alert.labels),
        "startsAt": iso(alert.starts_at),
        "endsAt": iso(alert.ends_at),
        "lastNotifiedAt": iso(alert.last_notified_at),
        "ackedAt": iso(alert.acked_at),
        "ackedBy": alert.acked_by,
    }


def environment_status(
    kind: str,
    sample: HealthSample | None,
    version_seen: VersionSeen | None,
    incident: Alert | None,
    deployment: Mapping[str, Any] | None = None,
    certificate_thresholds: tuple[timedelta, timedelta] | None = None,
) -> dict[str, Any]:
    """One environment's entry. ``deployedAt``/``deployedBy`` are what the environment's version
    endpoint says (its ``deployment`` block), else what deployment tracking recorded for the
    running version (``deployedSource`` says which), else unknown: the version's first sighting by
    this monitor is ``firstSeen``, never a deployment time.
    ``tlsCertExpiry`` is the earliest certificate expiry the last poll saw (https only) and
    ``tlsCertState`` (ok, warning, critical) how close it was then, against the (warning,
    critical) thresholds."""
    version = sample.version if sample else None
    expiry = sample.tls_cert_expiry if sample else None
    deployed_at = deployed_by = source = first_seen = None
    if sample is not None and (sample.deployed_at is not None or sample.deployed_by is not None):
        deployed_at, deployed_by, source = iso(sample.deployed_at), sample.deployed_by, "environment"
    elif deployment is not None and deployment.get("version") == version:
        deployed_at, deployed_by = deployment.get("deployedAt"), deployment.get("deployedBy")
        source = "recorded"
    if version_seen is not None and version_seen.version == version:
        first_seen = iso(version_seen.first_seen)
    return {
        "umigVersion": version,
        "deployedAt": deployed_at,
        "deployedBy": deployed_by,
        "deployedSource": source,
        "firstSeen": first_seen,
        "status": "incident" if incident is not None else KIND_STATUS.get(kind, kind),
        "health": sample.outcome.value if sample else "unknown",
        "uptime": sample.uptime_text if sample else None,
        "components": dict(sample.component_versions) if sample else {},
        "kind": kind,
        "build": sample.build if sample else None,
        "uptimeSeconds": sample.uptime_seconds if sample else None,
        "lastCheck": iso(sample.ts) if sample else None,
        "error": sample.error if sample else None,
        "tlsCertExpiry": iso(expiry),
        "tlsCertState": _certificate_state(expiry, sample, certificate_thresholds),
    }


def _certificate_state(
    expiry: datetime | None, sample: HealthSample | None, thresholds: tuple[timedelta, timedelta] | None
) -> str | None:
    if expiry is None or sample is None:
        return None
    if thresholds is None:
        return "ok"
    return certificates.level(expiry, sample.ts, *thresholds) or "ok"


def silence_document(s: Silence, now: datetime) -> dict[str, Any]:
    return {
        "id": s.id,
        "matchers": [str(m) for m in s.matchers],
        "startsAt": iso(s.starts_at),
        "endsAt": iso(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
        "state": "active" if s.active(now) else ("pending" if now < s.starts_at else "expired"),
    }
