"""Turn the documents one poll fetched into a classified HealthSample and the failed checks.

The guide's checks (errorRate > 0.05, responseTime > 3000 ms, database connections > 80,
orchestrator not active) are applied here, with per-environment thresholds."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from umig_monitor.core import timetext
from umig_monitor.core.health import HealthSample, Outcome

_UPTIME_PART = re.compile(r"(\d{1,12})\s*([wdhms])")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}

# Everything a target sends is cut to these bounds before anything else sees it: storage, metric
# labels, the page, mails and the log all get bounded values. A cut string ends with CUT_MARK.
MAX_TEXT = 256
MAX_DETAIL = 4096
MAX_COMPONENTS = 64
MAX_UPTIME_SECONDS = 100 * 365 * 86400  # a century: more is a broken answer, not an uptime
MAX_FIGURE = 1e15
CUT_MARK = "…[cut]"


def bounded(value: Any, limit: int = MAX_TEXT) -> str:
    """``str(value)`` of at most ``limit`` characters; a longer one is cut and marked."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return text[: limit - len(CUT_MARK)] + CUT_MARK


def parse_uptime(text: Any) -> int | None:
    """'5d 7h 45m' -> 459900. Anything that is not entirely such parts is unknown (None), never 0."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return None
    pos = 0
    total = 0
    compact = text.strip()
    for m in _UPTIME_PART.finditer(compact):
        if compact[pos : m.start()].strip():
            return None
        total += int(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos == 0 or compact[pos:].strip() or total > MAX_UPTIME_SECONDS:
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
    component: str | None = None  # a component's own check: its name (one incident per component)

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
    tls_cert_expiry: datetime | None = None  # the earliest expiry of the peer's certificates


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
    return number if math.isfinite(number) and abs(number) <= MAX_FIGURE else None


def assess(
    environment: str, now: datetime, docs: Documents, limits: Thresholds
) -> tuple[HealthSample, list[Check]]:
    """Classify one poll. Pure: the same documents and thresholds always give the same sample."""
    if docs.health_failure is not None:
        outcome, detail = docs.health_failure
        sample = HealthSample(
            environment,
            now,
            outcome,
            response_ms=docs.response_ms,
            error=bounded(detail, MAX_DETAIL),
            tls_cert_expiry=docs.tls_cert_expiry,
        )
        return sample, []
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
                tls_cert_expiry=docs.tls_cert_expiry,
            ),
            [],
        )
    status = bounded(status)
    version = _get(docs.version, "umig", "version") or umig.get("version")
    build = _get(docs.version, "umig", "build")
    uptime_text = bounded(umig["uptime"]) if isinstance(umig.get("uptime"), str) else None
    components: dict[str, str] = {}
    raw_components = _get(health, "components")
    if isinstance(raw_components, Mapping):
        for name, comp in list(raw_components.items())[:MAX_COMPONENTS]:
            comp_status = _get(comp, "status")
            components[bounded(name)] = bounded(comp_status) if comp_status is not None else "unknown"
    versions: dict[str, str] = {}
    raw_versions = _get(docs.version, "components")
    if isinstance(raw_versions, Mapping):
        for name, comp in list(raw_versions.items())[:MAX_COMPONENTS]:
            v = _get(comp, "version") if isinstance(comp, Mapping) else comp
            if isinstance(v, str | int | float) and not isinstance(v, bool):
                versions[bounded(name)] = bounded(v)
    orchestrator = _get(docs.components, "orchestrator", "status")
    if orchestrator is not None:
        orchestrator = bounded(orchestrator)
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
            checks.append(Check(f"component_{comp_status}", name, "healthy", component=name))

    if status != "healthy":
        outcome = Outcome.UNHEALTHY
    elif checks:
        outcome = Outcome.DEGRADED
    else:
        outcome = Outcome.HEALTHY
    error = "; ".join(c.describe() for c in checks) or (
        None if status == "healthy" else f"umig.status is {status}"
    )
    error = bounded(error, MAX_DETAIL) if error is not None else None
    sample = HealthSample(
        environment=environment,
        ts=now,
        outcome=outcome,
        umig_status=status,
        version=bounded(version) if version is not None else None,
        build=bounded(build) if build is not None else None,
        uptime_seconds=parse_uptime(uptime_text),
        uptime_text=uptime_text,
        response_ms=docs.response_ms,
        components=components,
        metrics=metrics,
        error=error,
        component_versions=versions,
        tls_cert_expiry=docs.tls_cert_expiry,
        deployed_at=_instant(_get(docs.version, "deployment", "deployedAt"), now),
        deployed_by=bounded(by)
        if isinstance(by := _get(docs.version, "deployment", "deployedBy"), str)
        else None,
    )
    return sample, checks


def _instant(value: Any, now: datetime) -> datetime | None:
    """An ISO-8601 time with an offset, not after ``now`` (a target's clock may be wrong, but a
    deployment in the future is not one to show), else None."""
    if not isinstance(value, str):
        return None
    try:
        ts = timetext.parse_timestamp(value)
    except ValueError:
        return None
    return ts if ts <= now + timedelta(minutes=5) else None
