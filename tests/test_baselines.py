"""Baseline rules as tables: the percentile method, and when a new baseline regressed against the
previous version and against the rolling median of its own version (jitter, the minimum delta, a
missing or zero reference, too little history)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.baselines import (
    Baseline,
    LatencyStats,
    Regression,
    compare,
    latency_stats,
    percentile,
    regression_key,
    rolling_median,
    summary_line,
)

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


# -- percentiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "errors", "expected"),
    [
        # expected values are numpy.percentile(samples, [50, 95]) (method "linear")
        ([10.0], 0, LatencyStats(1, 0, 10.0, 10.0, 10.0)),
        ([10.0, 20.0], 1, LatencyStats(2, 1, 15.0, 19.5, 20.0)),
        ([1.0, 2.0, 3.0, 4.0], 0, LatencyStats(4, 0, 2.5, 3.85, 4.0)),
        ([100.0, 200.0, 300.0, 400.0, 500.0], 0, LatencyStats(5, 0, 300.0, 480.0, 500.0)),
        (
            [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0],
            0,
            LatencyStats(10, 0, 5.5, 9.55, 10.0),
        ),  # unsorted
        ([float(i) for i in range(1, 21)], 0, LatencyStats(20, 0, 10.5, 19.05, 20.0)),
        ([7.0, 7.0, 7.0], 0, LatencyStats(3, 0, 7.0, 7.0, 7.0)),
        ([0.0, 0.0], 0, LatencyStats(2, 0, 0.0, 0.0, 0.0)),
        ([], 0, LatencyStats(0, 0, None, None, None)),
        ([], 5, LatencyStats(0, 5, None, None, None)),  # all failed: no latency, not 0 ms
    ],
)
def test_latency_stats(samples: list[float], errors: int, expected: LatencyStats) -> None:
    got = latency_stats(samples, errors)
    assert (got.samples, got.errors) == (expected.samples, expected.errors)
    for q in ("p50_ms", "p95_ms", "max_ms"):
        want = getattr(expected, q)
        assert getattr(got, q) == (pytest.approx(want) if want is not None else None), q


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 0.25, 1.75),
        ([1.0, 2.0, 3.0, 4.0], 0.75, 3.25),
        ([10.0, 30.0], 0.9, 28.0),
    ],
)
def test_percentile_interpolates_between_ranks(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("samples", "errors"), [([1.0, -2.0], 0), ([float("nan")], 0), ([float("inf")], 0), ([1.0], -1)]
)
def test_latency_stats_rejects_impossible_input(samples: list[float], errors: int) -> None:
    with pytest.raises(ValueError, match=r"negative error count|invalid latency sample"):
        latency_stats(samples, errors)


# -- regressions ----------------------------------------------------------------------------------


def stats(p50: float | None, p95: float | None) -> LatencyStats:
    return LatencyStats(10, 0, p50, p95, p95)


def baseline(
    version: str | None = "1.2.0",
    hours: int = 0,
    env: str = "production",
    **endpoints: tuple[float | None, float | None],
) -> Baseline:
    return Baseline(
        env, version, T0 + timedelta(hours=hours), {name: stats(*qs) for name, qs in endpoints.items()}
    )


def found(regs: Sequence[Regression]) -> list[tuple[str, str, float, float, str]]:
    return [(r.endpoint, r.quantile, r.reference, r.current, r.against) for r in regs]


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ((100.0, 180.0), (102.0, 186.0), []),  # jitter
        ((100.0, 180.0), (100.0, 412.0), [("teams", "p95", 180.0, 412.0, "previous_version")]),
        (
            (100.0, 180.0),
            (300.0, 412.0),
            [
                ("teams", "p50", 100.0, 300.0, "previous_version"),
                ("teams", "p95", 180.0, 412.0, "previous_version"),
            ],
        ),
        ((100.0, 180.0), (80.0, 120.0), []),  # faster is never a regression
        ((10.0, 12.0), (25.0, 30.0), []),  # +150 % but +15 ms: noise on a fast endpoint
        (
            (10.0, 12.0),
            (61.0, 70.0),
            [
                ("teams", "p50", 10.0, 61.0, "previous_version"),
                ("teams", "p95", 12.0, 70.0, "previous_version"),
            ],
        ),
        ((100.0, 200.0), (150.0, 250.0), []),  # exactly +50 ms: not more than min_delta_ms
        (
            (100.0, 200.0),
            (151.0, 251.0),
            [
                ("teams", "p50", 100.0, 151.0, "previous_version"),
                ("teams", "p95", 200.0, 251.0, "previous_version"),
            ],
        ),
        ((500.0, 1000.0), (600.0, 1190.0), []),  # +20 % exactly and +19 %: not more than threshold
        ((500.0, 1000.0), (601.0, 1100.0), [("teams", "p50", 500.0, 601.0, "previous_version")]),
        ((0.0, 0.0), (400.0, 900.0), []),  # a zero reference has no ratio
        ((None, None), (400.0, 900.0), []),  # previous version measured no successful request
        ((100.0, 180.0), (None, None), []),  # this run measured no successful request
        ((None, 180.0), (400.0, 412.0), [("teams", "p95", 180.0, 412.0, "previous_version")]),
    ],
)
def test_against_previous_version(
    previous: tuple[float | None, float | None],
    current: tuple[float | None, float | None],
    expected: list[tuple[str, str, float, float, str]],
) -> None:
    regs = compare(baseline(hours=1, teams=current), baseline("1.1.2", teams=previous), [])
    assert found(regs) == expected
    assert all(r.reference_version == "1.1.2" for r in regs)


def test_missing_endpoint_on_either_side_is_not_compared() -> None:
    previous = baseline("1.1.2", health=(10.0, 20.0), teams=(100.0, 180.0))
    current = baseline(hours=1, teams=(100.0, 182.0), users=(900.0, 2000.0))
    assert compare(current, previous, []) == []
    assert compare(current, None, []) == []


@pytest.mark.parametrize(
    ("threshold", "min_delta_ms", "expected"),
    [
        (0.20, 50.0, ["p95"]),
        (0.10, 50.0, ["p95"]),
        (0.10, 5.0, ["p50", "p95"]),
        (2.00, 5.0, []),
        (0.20, 300.0, []),
    ],
)
def test_threshold_and_min_delta_are_parameters(
    threshold: float, min_delta_ms: float, expected: list[str]
) -> None:
    regs = compare(
        baseline(hours=1, teams=(115.0, 412.0)),
        baseline("1.1.2", teams=(100.0, 180.0)),
        [],
        threshold,
        min_delta_ms,
    )
    assert [r.quantile for r in regs] == expected


def history(*p95s: float, version: str = "1.2.0", env: str = "production") -> list[Baseline]:
    return [
        baseline(version, hours=-len(p95s) + i, env=env, teams=(100.0, p95)) for i, p95 in enumerate(p95s)
    ]


@pytest.mark.parametrize(
    ("past", "current_p95", "expected"),
    [
        ([], 412.0, []),
        (history(180.0), 412.0, []),  # fewer than 3: no median yet
        (history(180.0, 190.0), 412.0, []),
        (history(180.0, 190.0, 500.0), 412.0, [(190.0, 412.0)]),  # the median shrugs off one outlier
        (history(180.0, 190.0, 200.0, 210.0), 412.0, [(195.0, 412.0)]),  # even count: mean of the middle two
        (history(180.0, 190.0, 200.0), 230.0, []),  # +15 %
        (history(180.0, 190.0, 200.0), 240.0, []),  # +26 % but exactly +50 ms
        (history(180.0, 190.0, 200.0), 241.0, [(190.0, 241.0)]),
        (history(180.0, 190.0, 200.0, version="1.1.2"), 412.0, []),  # another version's runs do not count
        (history(180.0, 190.0, 200.0, env="uat"), 412.0, []),  # another environment's runs do not count
        ([*history(180.0, 190.0), *history(200.0, version="1.1.2")], 412.0, []),  # 2 of this version
        ([baseline(teams=(100.0, None))] * 2 + history(180.0, 190.0), 412.0, []),  # 2 values of p95
    ],
)
def test_against_rolling_median(
    past: list[Baseline], current_p95: float, expected: list[tuple[float, float]]
) -> None:
    regs = [
        r for r in compare(baseline(hours=1, teams=(100.0, current_p95)), None, past) if r.quantile == "p95"
    ]
    assert [(r.reference, r.current) for r in regs] == expected
    assert all((r.against, r.reference_version) == ("rolling_median", "1.2.0") for r in regs)


def test_later_or_current_baselines_do_not_form_the_median() -> None:
    current = baseline(hours=0, teams=(100.0, 412.0))
    later = [baseline(hours=h, teams=(100.0, 400.0)) for h in (1, 2, 3)]
    assert compare(current, None, [current, current, current, *later]) == []


def test_rolling_median_uses_the_last_window() -> None:
    past = history(900.0, 900.0, 900.0, 180.0, 190.0, 200.0)
    assert rolling_median(past, "teams", "p95", window=3) == (190.0, 3)
    assert rolling_median(past, "teams", "p95", window=6) == (550.0, 6)
    assert compare(baseline(hours=1, teams=(100.0, 412.0)), None, past, window=3)[0].reference == 190.0
    assert compare(baseline(hours=1, teams=(100.0, 412.0)), None, past, window=6) == []


def test_unknown_version_has_no_median() -> None:
    past = [baseline(None, hours=-h, teams=(100.0, 180.0)) for h in (1, 2, 3)]
    assert compare(baseline(None, teams=(100.0, 412.0)), None, past) == []


def test_both_references_can_regress_at_once() -> None:
    regs = compare(
        baseline(hours=1, teams=(100.0, 412.0)),
        baseline("1.1.2", teams=(100.0, 180.0)),
        history(200.0, 210.0, 220.0),
    )
    assert found(regs) == [
        ("teams", "p95", 180.0, 412.0, "previous_version"),
        ("teams", "p95", 210.0, 412.0, "rolling_median"),
    ]


# -- wording and keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reg", "line"),
    [
        (
            Regression("teams", "p95", 180.0, 412.0, 412.0 / 180.0 - 1, "previous_version", "1.1.2"),
            "teams p95 412 ms vs 180 ms (+129%) against 1.1.2",
        ),
        (
            Regression("health", "p50", 60.0, 130.4, 130.4 / 60.0 - 1, "previous_version", None),
            "health p50 130 ms vs 60 ms (+117%) against the previous version",
        ),
        (
            Regression("users", "p95", 190.0, 241.0, 241.0 / 190.0 - 1, "rolling_median", "1.2.0"),
            "users p95 241 ms vs 190 ms (+27%) against the rolling median of 1.2.0",
        ),
    ],
)
def test_summary_line(reg: Regression, line: str) -> None:
    assert summary_line(reg) == line


def test_summary_line_of_a_computed_regression() -> None:
    (reg,) = compare(baseline(hours=1, teams=(100.0, 412.0)), baseline("1.1.2", teams=(100.0, 180.0)), [])
    assert reg.change == pytest.approx(232.0 / 180.0)
    assert summary_line(reg) == "teams p95 412 ms vs 180 ms (+129%) against 1.1.2"


def test_regression_key_is_stable_per_endpoint_quantile_and_reference() -> None:
    reg = Regression("teams", "p95", 180.0, 412.0, 1.29, "previous_version", "1.1.2")
    assert regression_key("production", reg) == "performance_regression/production/teams:p95:previous_version"
