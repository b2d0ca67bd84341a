"""Turn the documents one poll fetched into a classified HealthSample and the failed checks.

The guide's checks (errorRate > 0.05, responseTime > 3000 ms, database connections > 80,
orchestrator not active) are applied here, with per-environment thresholds."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from umig_monitor.core.health import HealthSample, Outcome

_UPTIME_PART = re.compile(r"(\d+)\s*([wdhms])")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_uptime(text: Any) -> int | None:
    """'5d 7h 45m' -> 459900. Anything that is not entirely such parts is unknown (None), never 0."""
    if not isinstance(text, str) or not text.strip():
        return None
    pos = 0
    total = 0
    compact = text.strip()
    for m in _UPTIME_PART.finditer(compact):
        if compact[pos : m.start()].strip():
            return None
        total += int(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos == 0 or compact[pos:].strip():
        return None
    return total


@dataclass(frozen=True, slots=True)
class Thresholds:
    error_rate: float = 0.05
    response_time_ms: float = 3000
    db_connections: int = 80


@dataclass(frozen=True, slots=True)
class Check:
    """A failed check from the guide, e.g. ``high_error_rate`` with the value that crossed."""

    name: str
    value: Any
    limit: Any
    severity: str = "warning"

    def describe(self) -> str:
        return f"{self.name}: {self.value} (limit {self.limit})"


@dataclass(frozen=True, slots=True)
class Documents:
    """What the probe fetched. A failed fetch is given as (failure outcome, detail)."""

    health: Any
    version: Any = None
    components: Any = None
    health_failure: tuple[Outcome, str] | None = None
    response_ms: float | None = None


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _number(value: Any) -> float | None:
    """A finite number, or None: NaN and Infinity (which json.loads accepts) are not figures."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().removesuffix("ms"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def assess(
    environment: str, now: datetime, docs: Documents, limits: Thresholds
) -> tuple[HealthSample, list[Check]]:
    """Classify one poll. Pure: the same documents and thresholds always give the same sample."""
    if docs.health_failure is not None:
        outcome, detail = docs.health_failure
        return HealthSample(environment, now, outcome, response_ms=docs.response_ms, error=detail), []
    health = docs.health
    umig = _get(health, "umig")
    status = _get(umig, "status")
    if not isinstance(umig, Mapping) or not isinstance(status, str):
        return (
            HealthSample(
                environment,
                now,
                Outcome.INVALID_RESPONSE,
                response_ms=docs.response_ms,
                error="health document has no umig.status",
            ),
            [],
        )
    version = _get(docs.version, "umig", "version") or umig.get("version")
    build = _get(docs.version, "umig", "build")
    uptime_text = umig.get("uptime") if isinstance(umig.get("uptime"), str) else None
    components: dict[str, str] = {}
    raw_components = _get(health, "components")
    if isinstance(raw_components, Mapping):
        for name, comp in raw_components.items():
            comp_status = _get(comp, "status")
            components[str(name)] = str(comp_status) if comp_status is not None else "unknown"
    versions: dict[str, str] = {}
    raw_versions = _get(docs.version, "components")
    if isinstance(raw_versions, Mapping):
        for name, comp in raw_versions.items():
            v = _get(comp, "version") if isinstance(comp, Mapping) else comp
            if isinstance(v, str | int | float) and not isinstance(v, bool):
                versions[str(name)] = str(v)
    orchestrator = _get(docs.components, "orchestrator", "status")
    metrics: dict[str, Any] = {}
    for key in ("errorRate", "activeUsers", "responseTime"):
        value = _number(_get(health, "metrics", key))
        if value is not None:
            metrics[key] = value
    db_connections = _number(_get(health, "components", "database", "connections"))
    if db_connections is not None:
        metrics["dbConnections"] = db_connections
    db_response = _number(_get(health, "components", "database", "responseTime"))
    if db_response is not None:
        metrics["dbResponseTime"] = db_response
    if orchestrator is not None:
        metrics["orchestrator"] = str(orchestrator)

    checks = []
    if metrics.get("errorRate", 0) > limits.error_rate:
        checks.append(Check("high_error_rate", metrics["errorRate"], limits.error_rate))
    if metrics.get("responseTime", 0) > limits.response_time_ms:
        checks.append(Check("slow_response", metrics["responseTime"], limits.response_time_ms))
    if metrics.get("dbConnections", 0) > limits.db_connections:
        checks.append(Check("high_db_connections", metrics["dbConnections"], limits.db_connections))
    if orchestrator is not None and orchestrator != "active":
        checks.append(Check("orchestrator_inactive", orchestrator, "active"))
    for name, comp_status in components.items():
        if comp_status != "healthy":
            checks.append(Check(f"component_{comp_status}", name, "healthy"))

    if status != "healthy":
        outcome = Outcome.UNHEALTHY
    elif checks:
        outcome = Outcome.DEGRADED
    else:
        outcome = Outcome.HEALTHY
    error = "; ".join(c.describe() for c in checks) or (
        None if status == "healthy" else f"umig.status is {status}"
    )
    sample = HealthSample(
        environment=environment,
        ts=now,
        outcome=outcome,
        umig_status=status,
        version=str(version) if version is not None else None,
        build=str(build) if build is not None else None,
        uptime_seconds=parse_uptime(uptime_text),
        uptime_text=uptime_text,
        response_ms=docs.response_ms,
        components=components,
        metrics=metrics,
        error=error,
        component_versions=versions,
    )
    return sample, checks
