"""Plain values the store returns besides the core types: callers never see SQLAlchemy rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class HealthRollup:
    """One environment's polls during one UTC hour.

    ``failed`` counts every poll without a usable answer (unreachable, timeout, HTTP, auth and
    invalid-response outcomes). Response times average over the polls that measured one.
    """

    environment: str
    hour: datetime
    samples: int
    healthy: int
    degraded: int
    unhealthy: int
    failed: int
    response_ms_avg: float | None
    response_ms_max: float | None


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one ``Store.prune`` call did: rollup rows written first, then rows deleted per table."""

    rolled_up: int
    health_samples: int
    health_rollups_hourly: int
    alerts: int
    outbox: int

    @property
    def deleted(self) -> int:
        return self.health_samples + self.health_rollups_hourly + self.alerts + self.outbox


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification to deliver to one sink, before it is stored."""

    sink: str
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    created_at: datetime
    deadline: datetime
    alert_id: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A stored outbox row."""

    id: int
    sink: str
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    deadline: datetime | None
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    alert_id: int | None


@dataclass(frozen=True, slots=True)
class LogUpdate:
    """What was just enqueued for one alert on one route (the dedup stage's memory)."""

    alert_id: int
    route_key: str
    kind: str
    at: datetime
    count: int
    escalated_at: datetime | None
