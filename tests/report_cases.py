"""The seeded day the report tests share: a day in Zurich with samples, rollups, deployments,
alerts, baselines and drift findings, for the golden files (tests/test_report.py) and for the report
job and command in a running daemon (tests/test_report_job.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from umig_monitor.core.alerts import Alert, AlertState
from umig_monitor.core.baselines import Baseline, LatencyStats
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.report import (
    Counts,
    DriftFinding,
    HourlyCounts,
    Period,
    ReportEnvironment,
    ReportInputs,
    hour_floor,
)

TZ = "Europe/Zurich"
DAY = date(2024, 10, 25)


def local(hour: int, minute: int = 0, day: int = 25) -> datetime:
    """A wall-clock time in Zurich (UTC+2 in October 2024), as the UTC instant storage holds."""
    return datetime(2024, 10, day, hour, minute, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


GENERATED_AT = local(7, day=26)
ENVIRONMENTS = (
    ReportEnvironment("development", "development"),
    ReportEnvironment("uat", "uat"),
    ReportEnvironment("production", "production"),
)


def make_sample(env: str, ts: datetime, outcome: Outcome = Outcome.HEALTHY, **kwargs: Any) -> HealthSample:
    answered = outcome.answered
    return HealthSample(
        environment=env,
        ts=ts,
        outcome=outcome,
        umig_status=("healthy" if outcome is not Outcome.UNHEALTHY else "unhealthy") if answered else None,
        response_ms=40.0 if answered else None,
        **kwargs,
    )


def seeded_samples() -> list[HealthSample]:
    """A poll every 30 minutes. uat's first six hours were pruned (see ``seeded_rollups``) and it has
    no data from 13:00 to 14:00; production was unhealthy from 10:00 to 10:40."""
    out = []
    for half_hours in range(48):
        ts = local(0) + timedelta(minutes=30 * half_hours)
        hour = half_hours // 2
        uptime = f"{hour}h {(half_hours % 2) * 30}m"
        dev = Outcome.DEGRADED if hour == 9 else Outcome.HEALTHY
        out.append(make_sample("development", ts, dev, version="1.3.0-dev+ci.1245", uptime_text=uptime))
        prod = {10: Outcome.UNHEALTHY, 11: Outcome.TIMEOUT if half_hours % 2 == 0 else Outcome.HEALTHY}.get(
            hour, Outcome.HEALTHY
        )
        prod_version = "1.1.2" if prod.answered else None
        out.append(make_sample("production", ts, prod, version=prod_version, uptime_text="5d 7h 45m"))
        if hour >= 6 and hour != 13:
            uat_version = "1.2.0-rc.3" if ts >= local(14, 35) else "1.2.0-rc.2"
            last = half_hours == 47
            outcome = Outcome.UNREACHABLE if last else Outcome.HEALTHY
            out.append(
                make_sample(
                    "uat",
                    ts,
                    outcome,
                    version=None if last else uat_version,
                    uptime_text=None if last else "3h",
                )
            )
    out += [
        # the day before, and the day after
        make_sample("production", local(23, 59, day=24), Outcome.UNHEALTHY, version="1.1.1"),
        make_sample("production", local(0, 0, day=26), Outcome.UNHEALTHY, version="1.1.9"),
        make_sample("legacy", local(12), version="0.9.0", uptime_text="40d"),  # no longer configured
    ]
    return out


def sampled(samples: Iterable[HealthSample], day: date = DAY, timezone: str = TZ) -> dict[str, Any]:
    """What the report takes of raw samples (``ReportInputs`` keywords), computed here sample by sample
    as the store computes it in SQL (``Store.health_hours``, ``Store.last_health_samples``): the
    samples of local ``day`` counted per environment and UTC hour, and every sample, of which the
    report keeps each environment's newest (and newest with a version) inside the day."""
    p = Period.of(day, timezone)
    inside = [s for s in samples if p.contains(s.ts)]
    groups: dict[tuple[str, datetime], list[HealthSample]] = {}
    for s in inside:
        groups.setdefault((s.environment, hour_floor(s.ts)), []).append(s)
    hours = [HourlyCounts(env, hour, Counts.of(group)) for (env, hour), group in groups.items()]
    return {"hours": hours, "last_samples": inside, "last_versioned": inside}


def seeded_rollups() -> list[HourlyCounts]:
    """uat 00:00-06:00 survives only as rollups; production's 10:00 rollup repeats its raw samples."""
    uat = [HourlyCounts("uat", local(h), Counts(2, 2, 0, 0, 0)) for h in range(6)]
    return [*uat, HourlyCounts("production", local(10), Counts(2, 0, 0, 2, 0))]


def make_event(
    event_id: str, deployment: str, env: str, type: EventType, ts: datetime, **kw: Any
) -> DeploymentEvent:
    return DeploymentEvent(id=event_id, deployment_id=deployment, environment=env, type=type, ts=ts, **kw)


def seeded_events() -> list[DeploymentEvent]:
    return [
        make_event("d-old-start", "d-old", "uat", EventType.START, local(23, day=24), version="1.2.0-rc.2"),
        make_event(
            "dev-obs",
            "observed-dev-1",
            "development",
            EventType.OBSERVED,
            local(9, 15),
            version="1.3.0-dev+ci.1245",
        ),
        make_event(
            "uat-1-start",
            "deploy-uat-1",
            "uat",
            EventType.START,
            local(14, 30),
            version="1.2.0-rc.3",
            initiated_by="lucas.challamel",
        ),
        make_event(
            "uat-1-success",
            "deploy-uat-1",
            "uat",
            EventType.SUCCESS,
            local(14, 35),
            version="1.2.0-rc.3",
            duration_seconds=300.0,
        ),
        make_event(
            "prod-1-failure",
            "deploy-production-1",
            "production",
            EventType.FAILURE,
            local(16),
            version="1.1.3",
            error="migration 031 failed",
        ),
        make_event(
            "prod-rb",
            "rollback-production-1",
            "production",
            EventType.ROLLBACK,
            local(16, 5),
            version="1.1.3",
            from_version="1.1.3",
            to_version="1.1.2",
        ),
    ]


def make_alert(
    alert_id: int,
    key: str,
    type: str,
    env: str | None,
    severity: str,
    start: datetime,
    end: datetime | None,
    summary: str,
) -> Alert:
    state = AlertState.RESOLVED if end is not None else AlertState.FIRING
    return Alert(key, type, env, severity, state, summary, start, end, id=alert_id)  # type: ignore[arg-type]


def seeded_alerts() -> list[Alert]:
    return [
        make_alert(
            3,
            "environment_health/uat/",
            "environment_unhealthy",
            "uat",
            "warning",
            local(9, day=23),
            local(10, day=23),
            "uat is unhealthy",
        ),
        make_alert(
            5,
            "version_drift/uat/outdated:uat",
            "outdated_environment",
            "uat",
            "warning",
            local(8, day=20),
            None,
            "uat 1.2.0-rc.2 is 3 releases behind production 1.5.0",
        ),
        make_alert(
            10,
            "environment_health/uat/",
            "environment_unreachable",
            "uat",
            "warning",
            local(23, 50, day=24),
            local(0, 20),
            "uat is unreachable: connection refused",
        ),
        make_alert(
            15,
            "component_unhealthy/development/database",
            "component_unhealthy",
            "development",
            "info",
            local(8),
            local(8, 10),
            "development: database unhealthy",
        ),
        make_alert(
            14,
            "version_churn/development/",
            "version_churn",
            "development",
            "info",
            local(9, 20),
            None,
            "development: 6 versions in the last 100 checks",
        ),
        make_alert(
            11,
            "environment_health/production/",
            "environment_unhealthy",
            "production",
            "critical",
            local(10),
            local(10, 40),
            'production is unhealthy: status <unhealthy> & "db" down',
        ),
        make_alert(
            13,
            "high_error_rate/production/",
            "high_error_rate",
            "production",
            "critical",
            local(11),
            local(11, 30),
            "production: error rate 0.08 > 0.05",
        ),
        make_alert(
            12,
            "performance_regression/production/teams:p95:previous_version",
            "performance_regression",
            "production",
            "warning",
            local(12),
            local(13),
            "production: teams p95 400 ms vs 250 ms (+60%) against 1.1.1",
        ),
        make_alert(
            16,
            "environment_health/uat/",
            "environment_unreachable",
            "uat",
            "warning",
            local(23),
            None,
            "uat is unreachable: timeout",
        ),
        make_alert(
            17,
            "environment_health/production/",
            "environment_unhealthy",
            "production",
            "critical",
            local(1, day=26),
            None,
            "production is unhealthy",
        ),
    ]


def make_baseline(env: str, ts: datetime, version: str | None, **endpoints: tuple[float, float]) -> Baseline:
    stats = {name: LatencyStats(5, 0, p50, p95, p95 + 5) for name, (p50, p95) in endpoints.items()}
    return Baseline(env, version, ts, stats, {"activeUsers": 12.0})


def seeded_baselines() -> list[Baseline]:
    return [
        make_baseline("production", local(10, day=24), "1.1.2", health=(20, 30), teams=(150, 250)),
        make_baseline("production", local(18, day=24), "1.1.2", health=(20, 34), teams=(170, 270)),
        make_baseline("production", local(1), "1.1.2", health=(20, 30), teams=(180, 250), users=(100, 140)),
        make_baseline("production", local(9), "1.1.2", health=(22, 35), teams=(190, 260)),
        make_baseline("production", local(17), "1.1.2", health=(30, 40), teams=(200, 400), users=(110, 150)),
        make_baseline("development", local(12), "1.3.0-dev+ci.1245", health=(8, 12)),
        make_baseline("uat", local(12, day=22), "1.2.0-rc.2", health=(30, 50)),  # too old to count
    ]


def seeded_findings() -> list[DriftFinding]:
    return [
        DriftFinding(
            "stale",
            "production",
            "info",
            "production: no deployment for 20 days",
            local(8, day=1),
            local(9, day=24),
        ),
        DriftFinding(
            "outdated",
            "uat",
            "warning",
            "uat 1.2.0-rc.2 is 3 releases behind production 1.5.0",
            local(8, day=20),
        ),
        DriftFinding(
            "component",
            "development",
            "warning",
            "development: ui 1.3.0-dev differs from backend 1.2.9",
            local(10),
            local(12),
        ),
        DriftFinding(
            "ahead",
            "development",
            "info",
            "development 1.3.0-dev+ci.1245 is ahead of production",
            local(3, day=26),
        ),
    ]


def seeded_inputs(**changes: Any) -> ReportInputs:
    inputs = ReportInputs(
        day=DAY,
        timezone=TZ,
        generated_at=GENERATED_AT,
        environments=ENVIRONMENTS,
        **sampled(seeded_samples()),
        rollups=seeded_rollups(),
        events=seeded_events(),
        alerts=seeded_alerts(),
        baselines=seeded_baselines(),
        findings=seeded_findings(),
    )
    return replace(inputs, **changes)
