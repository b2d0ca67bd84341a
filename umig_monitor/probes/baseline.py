"""A performance baseline's measurement: N timed requests to the health, teams and users endpoints,
one after another so that they do not queue on each other, plus the database and application
figures the health payload reports. Nothing is invented: what was not measured is absent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp

from umig_monitor.config import Environment
from umig_monitor.core.assess import Documents, Thresholds, assess
from umig_monitor.core.baselines import ENDPOINTS, Baseline, LatencyStats, latency_stats
from umig_monitor.probes.client import fetch_json

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
