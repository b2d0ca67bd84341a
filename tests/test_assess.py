"""Classification of one poll and the guide's checks, as tables over plain documents."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from umig_monitor.core.assess import Documents, Thresholds, assess, parse_uptime
from umig_monitor.core.health import Outcome

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HEALTH: dict[str, Any] = {
    "umig": {"status": "healthy", "version": "1.1.2", "uptime": "5d 7h 45m"},
    "components": {
        "database": {"status": "healthy", "connections": 12, "responseTime": 25},
        "api": {"status": "healthy"},
        "ui": {"status": "healthy"},
        "authentication": {"status": "healthy"},
    },
    "metrics": {"errorRate": 0.01, "activeUsers": 42, "responseTime": 180},
}
VERSION = {
    "umig": {"version": "1.1.2", "build": "b-77"},
    "components": {
        "database": {"version": "030"},
        "api": {"version": "2.3.0"},
        "ui": {"version": "1.1.2"},
        "backend": {"version": "1.1.2"},
    },
}
COMPONENTS = {"orchestrator": {"status": "active"}}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5d 7h 45m", 5 * 86400 + 7 * 3600 + 45 * 60),
        ("2h 45m", 2 * 3600 + 45 * 60),
        ("1d 2h 15m", 86400 + 2 * 3600 + 15 * 60),
        ("45s", 45),
        ("0m", 0),
        ("1w 1d", 8 * 86400),
        ("unknown", None),
        ("", None),
        ("5 days", None),
        ("5d and more", None),
        (None, None),
        (42, None),
    ],
)
def test_parse_uptime(text: Any, seconds: int | None) -> None:
    assert parse_uptime(text) == seconds


def with_changes(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(HEALTH)
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("health", "outcome", "checks"),
    [
        (HEALTH, Outcome.HEALTHY, []),
        (with_changes("umig.status", "unhealthy"), Outcome.UNHEALTHY, []),
        (with_changes("metrics.errorRate", 0.06), Outcome.DEGRADED, ["high_error_rate"]),
        (with_changes("metrics.errorRate", 0.05), Outcome.HEALTHY, []),  # the guide's test is strictly >
        (with_changes("metrics.responseTime", 3001), Outcome.DEGRADED, ["slow_response"]),
        (with_changes("components.database.connections", 81), Outcome.DEGRADED, ["high_db_connections"]),
        (with_changes("components.database.status", "unhealthy"), Outcome.DEGRADED, ["component_unhealthy"]),
        (with_changes("umig", {"version": "1.1.2"}), Outcome.INVALID_RESPONSE, []),
        ({"status": "healthy"}, Outcome.INVALID_RESPONSE, []),
        ([1, 2, 3], Outcome.INVALID_RESPONSE, []),
        (with_changes("metrics", {}), Outcome.HEALTHY, []),  # absent figures are not invented as 0
    ],
)
def test_assess_health(health: Any, outcome: Outcome, checks: list[str]) -> None:
    sample, failed = assess(
        "production", NOW, Documents(health, VERSION, COMPONENTS, response_ms=12.5), Thresholds()
    )
    assert sample.outcome is outcome
    assert [c.name for c in failed] == checks


def test_orchestrator_inactive() -> None:
    sample, failed = assess(
        "uat", NOW, Documents(HEALTH, VERSION, {"orchestrator": {"status": "stopped"}}), Thresholds()
    )
    assert sample.outcome is Outcome.DEGRADED
    assert [c.name for c in failed] == ["orchestrator_inactive"]


def test_thresholds_are_per_environment() -> None:
    doc = with_changes("metrics.errorRate", 0.2)
    assert assess("dev", NOW, Documents(doc), Thresholds(error_rate=0.5))[0].outcome is Outcome.HEALTHY


def test_sample_fields() -> None:
    sample, _ = assess(
        "production", NOW, Documents(HEALTH, VERSION, COMPONENTS, response_ms=12.5), Thresholds()
    )
    assert sample.version == "1.1.2"
    assert sample.build == "b-77"
    assert sample.uptime_seconds == 459900
    assert sample.uptime_text == "5d 7h 45m"
    assert sample.response_ms == 12.5
    assert sample.components["database"] == "healthy"
    assert sample.component_versions == {"database": "030", "api": "2.3.0", "ui": "1.1.2", "backend": "1.1.2"}
    assert sample.metrics["errorRate"] == 0.01
    assert sample.metrics["dbConnections"] == 12
    assert sample.metrics["orchestrator"] == "active"
    assert sample.error is None


def test_unparseable_uptime_is_null_not_zero() -> None:
    sample, _ = assess("p", NOW, Documents(with_changes("umig.uptime", "a while")), Thresholds())
    assert sample.uptime_seconds is None
    assert sample.uptime_text == "a while"


def test_failed_fetch_becomes_the_outcome() -> None:
    docs = Documents(None, health_failure=(Outcome.TIMEOUT, "no answer within 10s"), response_ms=10000)
    sample, failed = assess("p", NOW, docs, Thresholds())
    assert (sample.outcome, sample.error, failed) == (Outcome.TIMEOUT, "no answer within 10s", [])


def test_version_falls_back_to_health_document() -> None:
    sample, _ = assess("p", NOW, Documents(HEALTH, None, None), Thresholds())
    assert sample.version == "1.1.2"
    assert sample.build is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "NaN", "-Infinity"])
def test_non_finite_figures_are_absent(value: Any) -> None:
    """json.loads accepts NaN and Infinity; they are not figures and must never reach storage."""
    sample, checks = assess("p", NOW, Documents(with_changes("metrics.errorRate", value)), Thresholds())
    assert "errorRate" not in sample.metrics
    assert checks == []
