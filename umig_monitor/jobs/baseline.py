"""Performance baselines: N timed requests to the health, teams and users endpoints of each
environment, plus the database and application figures its health payload reports; stored per
environment, version and time, compared in core, and a regression raised as one alert per
environment and version. ``run_baseline`` is the one implementation the daemon's job and the
``baseline`` command share. Nothing is invented: what was not measured is absent."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import structlog

from umig_monitor.config import Environment, Settings
from umig_monitor.core.alerts import AlertEvent
from umig_monitor.core.assess import Documents, Thresholds, assess
from umig_monitor.core.baselines import (
    ENDPOINTS,
    KIND,
    Baseline,
    Comparison,
    LatencyStats,
    Rule,
    alert_event,
    compare,
    latency_stats,
)
from umig_monitor.jobs.spec import JobTable, PerSubject, once
from umig_monitor.metrics import InsightMetrics
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.probes.client import fetch_json
from umig_monitor.storage import Store
from umig_monitor.storage.insights import StoredBaseline

if TYPE_CHECKING:
    from umig_monitor.jobs.health import HealthPoller

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


def rule_for(settings: Settings) -> Rule:
    cfg = settings.jobs.baseline
    return Rule(
        threshold=cfg.regression_threshold,
        floor_ms=cfg.min_delta_ms,
        reference_baselines=cfg.reference_baselines,
        history_baselines=cfg.history_baselines,
        min_baselines=cfg.min_baselines,
    )


async def record(store: Store, settings: Settings, current: Baseline) -> Comparison:
    """Store a baseline and compare it with the previous version's and this version's recent ones
    (read before it is stored)."""
    rule = rule_for(settings)
    earlier: list[StoredBaseline] = []
    if current.version is not None:
        name, ts = current.environment, current.ts
        earlier = await store.baselines(
            environment=name, version=current.version, before=ts, limit=rule.history_baselines
        )
        previous = await store.previous_version(name, current.version, ts)
        if previous is not None:
            earlier += await store.baselines(
                environment=name, version=previous, before=ts, limit=rule.reference_baselines
            )
    await store.add_baseline(
        current.environment, current.version, current.ts, stats_dict(current), dict(current.figures)
    )
    return compare(current, [from_stored(b) for b in earlier], rule)


@dataclass(frozen=True, slots=True)
class BaselineContext:
    """What a baseline run needs: the daemon's own, or the CLI's (its own store connection and an
    alert pipeline delivering from its process). ``metrics`` is the daemon's gauge; the CLI exports
    none, and a daemon shows the stored baseline within a heartbeat. ``slots`` bounds concurrent
    requests to the environments."""

    settings: Settings
    store: Store
    session: aiohttp.ClientSession
    alerts: AlertPipeline
    metrics: InsightMetrics | None = None
    slots: asyncio.Semaphore | None = None


@dataclass(frozen=True, slots=True)
class BaselineRun:
    current: Baseline
    comparison: Comparison | None  # None: not recorded, the environment runs another version
    alert_key: str | None = None  # the regression alert it fired


async def run_baseline(
    ctx: BaselineContext, name: str, *, samples: int | None = None, expect_version: str | None = None
) -> BaselineRun:
    """The one baseline run of the daemon's job and the CLI: measure, record, compare, alert and
    resolve, update the metric. With ``expect_version``, a run finding another version is
    neither recorded nor compared."""
    env = ctx.settings.environments[name]
    async with ctx.slots or contextlib.nullcontext():
        current = await measure(ctx.session, name, env, samples or ctx.settings.jobs.baseline.samples)
    if expect_version is not None and current.version != expect_version:
        return BaselineRun(current, None)
    comparison = await record(ctx.store, ctx.settings, current)
    if ctx.metrics is not None:
        ctx.metrics.set_baseline(name, stats_dict(current))
    event = alert_event(current, comparison, {"kind": env.kind})
    if event is not None:
        await ctx.alerts.submit(event)
    # A run compared with nothing (too few references, nothing measured) says nothing about an
    # earlier regression; a compared one clears every other.
    for alert in await ctx.store.active_alerts(name) if comparison.compared else []:
        if alert.type == KIND and (event is None or alert.key != event.key):
            await ctx.alerts.submit(
                AlertEvent(
                    alert.key,
                    alert.type,
                    name,
                    alert.severity,
                    f"{name}: performance back to baseline",
                    current.ts,
                    firing=False,
                )
            )
    log.info(
        "baseline_recorded",
        env=name,
        version=current.version,
        p95_ms={e: s.p95_ms for e, s in current.endpoints.items()},
        regressions=len(comparison.regressions),
        notes=list(comparison.notes),
        alert_key=event.key if event is not None else None,
    )
    return BaselineRun(current, comparison, event.key if event is not None else None)


class BaselineJobContext(Protocol):
    """What the daemon's baseline jobs use: its own store, session and pipeline, the baseline
    gauge, and the health poller's slots (baselines and polls share the bound on requests)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def session(self) -> aiohttp.ClientSession: ...
    @property
    def alerts(self) -> AlertPipeline: ...
    @property
    def insight_metrics(self) -> InsightMetrics: ...
    @property
    def health(self) -> HealthPoller: ...


def context_of(ctx: BaselineJobContext) -> BaselineContext:
    return BaselineContext(
        ctx.settings,
        ctx.store,
        ctx.session,
        ctx.alerts,
        ctx.insight_metrics,
        ctx.health.poll_slots,
    )


async def baseline_environment(ctx: BaselineJobContext, name: str) -> BaselineRun | None:
    """The daemon's job body for one environment (None: no longer configured)."""
    if name not in ctx.settings.environments:
        return None
    return await run_baseline(context_of(ctx), name)


async def baseline_one(ctx: BaselineJobContext, name: str) -> None:
    """The on-demand job: one environment's baseline, e.g. right after a verified deployment."""
    await baseline_environment(ctx, name)


async def baseline_all(ctx: BaselineJobContext) -> None:
    results = await asyncio.gather(
        *(baseline_environment(ctx, n) for n in list(ctx.settings.environments)), return_exceptions=True
    )
    for name, result in zip(list(ctx.settings.environments), results, strict=False):
        if isinstance(result, BaseException):
            log.error("job_failed", job="baseline", env=name, error=repr(result))


BASELINE_ENV = PerSubject(
    "baseline_env", baseline_one, leader_only=True, on_demand=lambda settings: settings.jobs.baseline.enabled
)


def baseline_soon(jobs: JobTable, settings: Settings, tz: Any, environment: str) -> None:
    """A verified deployment gets its performance baseline right away (not at the next cron)."""
    if not settings.jobs.baseline.enabled:
        return
    jobs.add(BASELINE_ENV.spec(environment, once(datetime.now(tz), tz)))
