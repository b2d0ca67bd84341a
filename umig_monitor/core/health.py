"""Health samples: what one poll of an environment observed, classified into one outcome."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Outcome(enum.StrEnum):
    """Every poll ends in exactly one of these."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    AUTH_ERROR = "auth_error"
    INVALID_RESPONSE = "invalid_response"

    @property
    def ok(self) -> bool:
        return self is Outcome.HEALTHY

    @property
    def answered(self) -> bool:
        """True when the target returned a usable health document."""
        return self in (Outcome.HEALTHY, Outcome.DEGRADED, Outcome.UNHEALTHY)


@dataclass(frozen=True, slots=True)
class VersionSeen:
    """The version polling last saw an environment run, and when it first saw it."""

    version: str
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One stored observation. ``ts`` is timezone-aware UTC."""

    environment: str
    ts: datetime
    outcome: Outcome
    umig_status: str | None = None
    version: str | None = None
    build: str | None = None
    uptime_seconds: int | None = None
    uptime_text: str | None = None
    response_ms: float | None = None
    components: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    component_versions: Mapping[str, str] = field(default_factory=dict)
    # https: the earliest notAfter of the certificates the environment presented on this poll
    tls_cert_expiry: datetime | None = None
    # The version endpoint's own ``deployment.deployedAt`` / ``deployedBy``, when it says them.
    deployed_at: datetime | None = None
    deployed_by: str | None = None
