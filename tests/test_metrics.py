"""UmigMetrics keeps labelled children per environment; the exposed series must be exactly those
the calls imply, including after series are removed (no uptime, an environment forgotten)."""

from __future__ import annotations

from prometheus_client import generate_latest

from umig_monitor.jobs.health import ALL_OUTCOMES
from umig_monitor.metrics import UmigMetrics


def series(metrics: UmigMetrics) -> set[str]:
    text = generate_latest(metrics.registry).decode()
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def observe(metrics: UmigMetrics, env: str, outcome: str = "healthy", uptime: int | None = 60) -> None:
    metrics.observe(env, outcome, "healthy", "1.1.2", "b1", uptime, ALL_OUTCOMES)


def test_uptime_series_goes_and_comes_back() -> None:
    m = UmigMetrics()
    observe(m, "uat", uptime=60)
    assert 'umig_uptime_seconds{environment="uat"} 60.0' in series(m)
    observe(m, "uat", outcome="timeout", uptime=None)
    assert not any(s.startswith("umig_uptime_seconds") for s in series(m))
    assert 'umig_health_status{environment="uat"} 0.0' in series(m)
    observe(m, "uat", uptime=120)
    assert 'umig_uptime_seconds{environment="uat"} 120.0' in series(m)
    assert 'umig_health_status{environment="uat"} 1.0' in series(m)


def test_forgotten_environment_is_exposed_again_when_observed() -> None:
    m = UmigMetrics()
    observe(m, "uat")
    observe(m, "production")
    m.observe_duration("uat", "health", 0.02)
    m.observe_duration("uat", "health", 0.03)
    assert 'umig_probe_duration_seconds_count{endpoint="health",environment="uat"} 2.0' in series(m)
    m.forget("uat")
    assert not any('environment="uat"' in s for s in series(m))
    assert 'umig_health_status{environment="production"} 1.0' in series(m)
    observe(m, "uat")
    m.observe_duration("uat", "health", 0.02)
    exposed = series(m)
    assert 'umig_health_status{environment="uat"} 1.0' in exposed
    assert 'umig_uptime_seconds{environment="uat"} 60.0' in exposed
    assert 'umig_probe_duration_seconds_count{endpoint="health",environment="uat"} 1.0' in exposed
