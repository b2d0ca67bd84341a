"""Performance baselines: N timed requests to the health, teams and users endpoints of each
environment, plus the database and application figures its health payload reports; stored per
environment, version and time, compared in core, and regressions raised as alerts. Nothing is
invented: what was not measured is absent."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from umig_monitor.config import Environment, Settings
from umig_monitor.core.alerts import AlertEvent
from umig_monitor.core.assess import Documents, Thresholds, assess
from umig_monitor.core.baselines import (
    ENDPOINTS,
    Baseline,
    LatencyStats,
    Regression,
    compare,
    latency_stats,
    regression_key,
    summary_line,
)
from umig_monitor.probes.client import fetch_json
from umig_monitor.storage import Store
from umig_monitor.storage.insights import StoredBaseline

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

log = structlog.get_logger("umig_monitor.baseline")
PATHS = {"health": "/admin/health", "teams": "/teams", "users": "/users"}
FIGURE_KEYS = ("responseTime", "dbConnections", "dbResponseTime", "errorRate", "activeUsers")


async def measure(session: aiohttp.ClientSession, name: str, env: Environment, samples: int) -> Baseline:
    """Time ``samples`` requests per endpoint, one after another, so they do not queue on each other."""
    endpoints: dict[str, LatencyStats] = {}
    health_body: Any = None
    for endpoint in ENDPOINTS:
        timings: list[float] = []
        errors = 0
        for _ in range(samples):
            f = await fetch_json(session, env, PATHS[endpoint])
            if f.ok:
                timings.append(f.elapsed_ms)
                if endpoint == "health":
                    health_body = f.body
            else:
                errors += 1
        endpoints[endpoint] = latency_stats(timings, errors)
    now = datetime.now(UTC)
    figures: dict[str, float] = {}
    version = None
    if health_body is not None:
        sample, _ = assess(name, now, Documents(health_body), Thresholds())
        version = sample.version
        figures = {
            k: float(v) for k, v in sample.metrics.items() if k in FIGURE_KEYS and isinstance(v, int | float)
        }
    return Baseline(name, version, now, endpoints, figures)


def stats_dict(b: Baseline) -> dict[str, Any]:
    return {name: asdict(s) for name, s in b.endpoints.items()}


def from_stored(b: StoredBaseline) -> Baseline:
    return Baseline(
        b.environment,
        b.version,
        b.ts,
        {n: LatencyStats(**s) for n, s in b.endpoints.items()},
        dict(b.figures),
    )


async def record(store: Store, settings: Settings, current: Baseline) -> list[Regression]:
    """Store a baseline and compare it with the previous version's and the same version's history."""
    cfg = settings.jobs.baseline
    previous = await store.previous_version_baseline(current.environment, current.version)
    history = (
        await store.baselines(
            environment=current.environment, version=current.version, before=current.ts, limit=10
        )
        if current.version
        else []
    )
    await store.add_baseline(
        current.environment, current.version, current.ts, stats_dict(current), dict(current.figures)
    )
    return compare(
        current,
        from_stored(previous) if previous else None,
        [from_stored(b) for b in history],
        threshold=cfg.regression_threshold,
        min_delta_ms=cfg.min_delta_ms,
    )


async def baseline_environment(daemon: Daemon, name: str) -> list[Regression]:
    env = daemon.settings.environments.get(name)
    if env is None:
        return []
    async with daemon.poll_slots:
        current = await measure(daemon.session, name, env, daemon.settings.jobs.baseline.samples)
    regressions = await record(daemon.store, daemon.settings, current)
    daemon.insight_metrics.set_baseline(name, stats_dict(current))
    now = current.ts
    keys = set()
    for reg in regressions:
        key = regression_key(name, reg)
        keys.add(key)
        await daemon.alerts.submit(
            AlertEvent(
                key,
                "performance_regression",
                name,
                "warning",
                f"{name}: {summary_line(reg)}",
                now,
                details={
                    "endpoint": reg.endpoint,
                    "quantile": reg.quantile,
                    "referenceMs": reg.reference,
                    "currentMs": reg.current,
                    "change": reg.change,
                    "against": reg.against,
                    "referenceVersion": reg.reference_version,
                    "version": current.version,
                },
                labels={"kind": env.kind, **({"version": current.version} if current.version else {})},
            )
        )
    for alert in await daemon.store.active_alerts(name):
        if alert.type == "performance_regression" and alert.key not in keys:
            await daemon.alerts.submit(
                AlertEvent(
                    alert.key,
                    alert.type,
                    name,
                    alert.severity,
                    f"{name}: performance back to baseline",
                    now,
                    firing=False,
                )
            )
    log.info(
        "baseline_recorded",
        env=name,
        version=current.version,
        p95_ms={e: s.p95_ms for e, s in current.endpoints.items()},
        regressions=len(regressions),
    )
    return regressions


async def baseline_all(daemon: Daemon) -> None:
    results = await asyncio.gather(
        *(baseline_environment(daemon, n) for n in list(daemon.settings.environments)), return_exceptions=True
    )
    for name, result in zip(list(daemon.settings.environments), results, strict=False):
        if isinstance(result, BaseException):
            log.error("job_failed", job="baseline", env=name, error=repr(result))
