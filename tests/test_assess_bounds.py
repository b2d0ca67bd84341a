"""The UMIG documents are hostile input: whatever a target sends, the classified sample holds
bounded strings, at most MAX_COMPONENTS components and finite figures in range, and assess never
raises (property tests with hypothesis, plus the cases seen in the field)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from umig_monitor.core.assess import (
    CUT_MARK,
    MAX_COMPONENTS,
    MAX_DETAIL,
    MAX_FIGURE,
    MAX_TEXT,
    MAX_UPTIME_SECONDS,
    Documents,
    Thresholds,
    assess,
    parse_uptime,
)
from umig_monitor.core.health import HealthSample

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def check_bounded(sample: HealthSample) -> None:
    for text in (sample.umig_status, sample.version, sample.build, sample.uptime_text):
        assert text is None or len(text) <= MAX_TEXT
    assert sample.error is None or len(sample.error) <= MAX_DETAIL
    assert len(sample.components) <= MAX_COMPONENTS
    assert len(sample.component_versions) <= MAX_COMPONENTS
    for key, value in [*sample.components.items(), *sample.component_versions.items()]:
        assert len(key) <= MAX_TEXT
        assert len(value) <= MAX_TEXT
    assert sample.uptime_seconds is None or 0 <= sample.uptime_seconds <= MAX_UPTIME_SECONDS
    for value in sample.metrics.values():
        if isinstance(value, float):
            assert math.isfinite(value)
            assert abs(value) <= MAX_FIGURE
        else:
            assert len(str(value)) <= MAX_TEXT


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
KEYS = st.sampled_from(
    [
        "umig",
        "status",
        "version",
        "uptime",
        "components",
        "metrics",
        "errorRate",
        "responseTime",
        "database",
        "connections",
        "orchestrator",
        "build",
        "x",
    ]
)
SHAPED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["healthy", "active", "5d 7h", "99999999999999999999w", "x" * 5000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(health=SHAPED | JSON, version=SHAPED, components=SHAPED)
def test_assess_never_raises_and_bounds_everything(health: Any, version: Any, components: Any) -> None:
    sample, checks = assess("production", NOW, Documents(health, version, components), Thresholds())
    check_bounded(sample)
    for check in checks:
        assert len(check.describe()) <= 3 * MAX_TEXT


def health_with(**umig: Any) -> dict[str, Any]:
    return {"umig": {"status": "healthy", "version": "1.2.0", "uptime": "5d", **umig}, "components": {}}


def test_a_megabyte_version_is_cut_and_marked() -> None:
    sample, _ = assess("p", NOW, Documents(health_with(version="9" * 1_000_000)), Thresholds())
    assert sample.version is not None
    assert len(sample.version) == MAX_TEXT
    assert sample.version.endswith(CUT_MARK)


def test_a_huge_status_gives_a_bounded_error() -> None:
    sample, _ = assess("p", NOW, Documents(health_with(status="x" * 300_000)), Thresholds())
    assert sample.error is not None
    assert len(sample.error) <= MAX_DETAIL


def test_thousands_of_components_are_capped() -> None:
    health = health_with()
    health["components"] = {f"c{i}": {"status": "down"} for i in range(10_000)}
    sample, checks = assess("p", NOW, Documents(health), Thresholds())
    assert len(sample.components) == MAX_COMPONENTS
    assert len(checks) == MAX_COMPONENTS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("99999999999999999999w", None),  # past the 64-bit range: poisoned the sample writer
        ("5300w", None),  # a century and more
        ("5000w", 5000 * 604800),
        ("9" * 5000 + "s", None),  # past Python's int-from-str digit limit
        ("1d " * 200, None),
    ],
)
def test_absurd_uptimes_are_unknown(text: str, seconds: int | None) -> None:
    assert parse_uptime(text) == seconds


@pytest.mark.parametrize("value", [1e308, -1e300, 2**80])
def test_absurd_figures_are_absent(value: float) -> None:
    health = health_with()
    health["metrics"] = {"errorRate": value, "responseTime": value}
    sample, _ = assess("p", NOW, Documents(health), Thresholds())
    assert "errorRate" not in sample.metrics
    assert "responseTime" not in sample.metrics
