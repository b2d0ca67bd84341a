"""Baseline rules as tables: the percentile method; the reference (the median of the previous
version's recent baselines, so one outlier neither hides nor fakes a regression; too few baselines
give no reference; the absolute floor); the rolling median of the same version; and one alert per
environment and version listing every regressed endpoint, without percentages against references
below the floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.baselines import (
    Baseline,
    Comparison,
    LatencyStats,
    Regression,
    Rule,
    alert_event,
    compare,
    latency_stats,
    median_of,
    percentile,
    previous_version_of,
    regression_key,
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


# -- references and regressions -------------------------------------------------------------------

Figures = tuple[float | None, float | None]


def stats(p50: float | None, p95: float | None) -> LatencyStats:
    return LatencyStats(10, 0, p50, p95, p95)


def baseline(
    version: str | None = "1.2.0", hours: float = 0, env: str = "production", **endpoints: Figures
) -> Baseline:
    return Baseline(
        env, version, T0 + timedelta(hours=hours), {name: stats(*qs) for name, qs in endpoints.items()}
    )


def runs(version: str, *teams: Figures, env: str = "production", end: float = 0) -> list[Baseline]:
    """Baselines of ``version`` measuring teams, one an hour, the last an hour before ``end``."""
    return [baseline(version, hours=end - len(teams) + i, env=env, teams=t) for i, t in enumerate(teams)]


def p95s(version: str, *values: float, end: float = 0) -> list[Baseline]:
    return runs(version, *((100.0, v) for v in values), end=end)


def found(c: Comparison) -> list[tuple[str, str, float, float, float | None, str]]:
    return [
        (
            r.endpoint,
            r.quantile,
            r.reference,
            r.current,
            None if r.change is None else round(r.change, 4),
            r.against,
        )
        for r in c.regressions
    ]


@pytest.mark.parametrize(
    ("earlier", "current_p95", "expected", "note"),
    [
        # the median of the previous version's last five
        (p95s("1.1.2", 180.0, 190.0, 200.0, 210.0, 220.0), 412.0, 200.0, None),
        # one slow ad-hoc run last: the guide (and the latest baseline alone) hid this regression
        (p95s("1.1.2", 180.0, 180.0, 185.0, 180.0, 900.0), 400.0, 180.0, None),
        (p95s("1.1.2", 900.0, 180.0, 185.0, 180.0), 400.0, 182.5, None),  # anywhere in the window
        # one fast ad-hoc run last: the latest alone would fake a regression
        (p95s("1.1.2", 400.0, 410.0, 405.0, 400.0, 100.0), 410.0, None, None),
        (p95s("1.1.2", 400.0, 100.0, 405.0), 410.0, None, None),
        # too few: no reference, said so, never made up
        ([], 900.0, None, "no baseline of a previous version"),
        (p95s("1.1.2", 180.0), 900.0, None, "not enough reference baselines of 1.1.2 (1, 3 needed)"),
        (p95s("1.1.2", 180.0, 190.0), 900.0, None, "not enough reference baselines of 1.1.2 (2, 3 needed)"),
        (p95s("1.1.2", 180.0, 190.0, 200.0), 900.0, 190.0, None),  # exactly the minimum
        # only the last five count: older slow runs have aged out
        (p95s("1.1.2", 900.0, 900.0, 900.0, 180.0, 180.0, 180.0, 190.0, 200.0), 412.0, 180.0, None),
        # the previous version is the latest other one; older versions do not count
        (
            [*p95s("1.1.1", 180.0, 180.0, 180.0, end=-3), *p95s("1.1.2", 400.0, 400.0, 400.0)],
            410.0,
            None,
            None,
        ),
        (
            [*p95s("1.1.1", 180.0, 180.0, 180.0, end=-2), *p95s("1.1.2", 400.0, 400.0)],
            900.0,
            None,
            "not enough reference baselines of 1.1.2 (2, 3 needed)",
        ),
        # the floor: +49 ms is not a regression however large the ratio
        (p95s("1.1.2", 100.0, 100.0, 100.0), 149.0, None, None),
        (p95s("1.1.2", 100.0, 100.0, 100.0), 151.0, 100.0, None),
        (p95s("1.1.2", 0.4, 0.4, 0.5), 40.0, None, None),  # +9900 % of a sub-millisecond reference
        (p95s("1.1.2", 0.4, 0.4, 0.5), 60.0, 0.4, None),  # +59.6 ms: a regression, said in ms
        (p95s("1.1.2", 0.0, 0.0, 0.0), 400.0, 0.0, None),  # a 0 ms reference: still compared in ms
        # the relative threshold above the floor
        (p95s("1.1.2", 500.0, 500.0, 500.0), 590.0, None, None),  # +18 %, +90 ms
        (p95s("1.1.2", 500.0, 500.0, 500.0), 610.0, 500.0, None),  # +22 %
        (p95s("1.1.2", 180.0, 180.0, 180.0), 120.0, None, None),  # faster is never a regression
    ],
)
def test_previous_version_reference(
    earlier: list[Baseline], current_p95: float, expected: float | None, note: str | None
) -> None:
    c = compare(baseline(hours=1, teams=(100.0, current_p95)), earlier)
    regs = [r for r in c.regressions if r.against == "previous_version"]
    assert [r.reference for r in regs] == ([] if expected is None else [expected])
    assert all(r.reference_version == "1.1.2" and r.quantile == "p95" for r in regs)
    assert [n for n in c.notes if "previous" in n or "reference" in n] == ([note] if note else [])
    assert c.compared is (note is None)  # a run compared with nothing clears nothing


@pytest.mark.parametrize(
    ("reference", "current", "change"),
    [
        (180.0, 412.0, 232.0 / 180.0),  # above the floor: a percentage
        (50.5, 110.0, 59.5 / 50.5),
        (50.0, 110.0, None),  # at the floor: none
        (0.4, 318.0, None),  # the "+79405%"
        (0.0, 400.0, None),
    ],
)
def test_percentages_only_against_references_above_the_floor(
    reference: float, current: float, change: float | None
) -> None:
    (reg,) = compare(
        baseline(hours=1, teams=(None, current)), p95s("1.1.2", reference, reference, reference)
    ).regressions
    assert reg.change == (None if change is None else pytest.approx(change))
    assert reg.change_ms == pytest.approx(current - reference)
    assert ("%" in summary_line(reg)) is (change is not None)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (Rule(), ["p95"]),
        (Rule(threshold=0.10), ["p95"]),
        (Rule(threshold=0.10, floor_ms=5.0), ["p50", "p95"]),
        (Rule(threshold=2.00, floor_ms=5.0), []),
        (Rule(floor_ms=300.0), []),
        (Rule(min_baselines=4), []),  # three reference baselines only
        (Rule(reference_baselines=1, min_baselines=1), ["p95"]),  # the latest alone: 180
        (Rule(reference_baselines=2, min_baselines=2), []),  # median of 180 and 900: 540
    ],
)
def test_rule_is_parameters(rule: Rule, expected: list[str]) -> None:
    earlier = runs("1.1.2", (100.0, 180.0), (100.0, 900.0), (100.0, 180.0))
    c = compare(baseline(hours=1, teams=(115.0, 412.0)), earlier, rule)
    assert [r.quantile for r in c.regressions] == expected


def test_missing_endpoint_or_quantile_on_either_side_is_not_compared() -> None:
    earlier = [baseline("1.1.2", hours=-h, health=(10.0, 20.0), teams=(100.0, None)) for h in (1, 2, 3)]
    current = baseline(hours=1, health=(None, None), teams=(900.0, 2000.0), users=(900.0, 2000.0))
    assert found(compare(current, earlier)) == [("teams", "p50", 100.0, 900.0, 8.0, "previous_version")]


def test_later_baselines_and_other_environments_do_not_count() -> None:
    current = baseline(hours=0, teams=(100.0, 412.0))
    later = [baseline("1.1.2", hours=h, teams=(100.0, 100.0)) for h in (1, 2, 3)]
    elsewhere = [baseline("1.1.2", hours=-h, env="uat", teams=(100.0, 100.0)) for h in (1, 2, 3)]
    c = compare(current, [current, *later, *elsewhere])
    assert c == Comparison(
        (),
        (
            "no baseline of a previous version",
            "not enough earlier baselines of 1.2.0 for its rolling median (0, 3 needed)",
        ),
    )


def test_previous_version_is_the_latest_other_known_version() -> None:
    now = baseline(hours=1)
    assert (
        previous_version_of(now, [*p95s("1.1.1", 1.0, end=-5), *p95s("1.1.2", 1.0), *p95s("1.2.0", 1.0)])
        == "1.1.2"
    )
    assert previous_version_of(now, [*p95s("1.1.2", 1.0, end=-5), baseline(None, hours=0)]) == "1.1.2"
    assert previous_version_of(now, [*p95s("1.2.0", 1.0), *p95s("1.1.2", 1.0, end=5)]) is None


def test_unknown_version_is_not_compared() -> None:
    c = compare(baseline(None, hours=1, teams=(100.0, 412.0)), p95s("1.1.2", 180.0, 180.0, 180.0))
    assert c == Comparison((), ("version unknown: nothing to compare with",))


def test_a_run_without_a_successful_request_is_not_compared() -> None:
    c = compare(baseline(hours=1, teams=(None, None), users=(None, None)), p95s("1.1.2", 180.0, 180.0, 180.0))
    assert c == Comparison((), ("no successful request measured: nothing to compare",))


@pytest.mark.parametrize(
    ("past", "current_p95", "expected"),
    [
        ([], 412.0, []),
        (p95s("1.2.0", 180.0), 412.0, []),  # fewer than 3: no median yet
        (p95s("1.2.0", 180.0, 190.0), 412.0, []),
        (p95s("1.2.0", 180.0, 190.0, 500.0), 412.0, [(190.0, 412.0)]),  # the median shrugs off one outlier
        (p95s("1.2.0", 180.0, 190.0, 200.0, 210.0), 412.0, [(195.0, 412.0)]),  # even: mean of the middle two
        (p95s("1.2.0", 180.0, 190.0, 200.0), 230.0, []),  # +15 %
        (p95s("1.2.0", 180.0, 190.0, 200.0), 240.0, []),  # +26 % but exactly +50 ms
        (p95s("1.2.0", 180.0, 190.0, 200.0), 241.0, [(190.0, 241.0)]),
        ([*p95s("1.2.0", 180.0, 190.0), *p95s("1.2.0", 200.0, end=-5)], 412.0, [(190.0, 412.0)]),
        ([baseline(hours=-5, teams=(100.0, None))] * 2 + p95s("1.2.0", 180.0, 190.0), 412.0, []),  # 2 values
    ],
)
def test_against_rolling_median(
    past: list[Baseline], current_p95: float, expected: list[tuple[float, float]]
) -> None:
    c = compare(baseline(hours=1, teams=(100.0, current_p95)), past)
    regs = [r for r in c.regressions if r.quantile == "p95"]
    assert [(r.reference, r.current) for r in regs] == expected
    assert all((r.against, r.reference_version) == ("rolling_median", "1.2.0") for r in regs)


def test_rolling_median_uses_the_last_window() -> None:
    past = p95s("1.2.0", 900.0, 900.0, 900.0, 180.0, 190.0, 200.0)
    assert median_of(past, "teams", "p95", 3, 3) == (190.0, 3)
    assert median_of(past, "teams", "p95", 6, 3) == (550.0, 6)
    assert median_of(past, "teams", "p95", 6, 7) is None
    (reg,) = compare(baseline(hours=1, teams=(None, 412.0)), past, Rule(history_baselines=3)).regressions
    assert (reg.reference, reg.reference_baselines) == (190.0, 3)
    assert compare(baseline(hours=1, teams=(100.0, 412.0)), past, Rule(history_baselines=6)).regressions == ()


def test_both_references_can_regress_at_once() -> None:
    c = compare(
        baseline(hours=1, teams=(100.0, 412.0)),
        [*p95s("1.1.2", 180.0, 180.0, 180.0, end=-3), *p95s("1.2.0", 200.0, 210.0, 220.0)],
    )
    assert found(c) == [
        ("teams", "p95", 180.0, 412.0, round(232.0 / 180.0, 4), "previous_version"),
        ("teams", "p95", 210.0, 412.0, round(202.0 / 210.0, 4), "rolling_median"),
    ]


# -- one alert per environment and version --------------------------------------------------------


def slow_release() -> tuple[Baseline, Comparison]:
    """The issue's case: all three endpoints of 1.2.0 slower at p50 and p95, against references
    some of which are sub-millisecond."""
    earlier = [
        baseline("1.1.2", hours=-h, health=(0.3, 0.4), teams=(0.4, 0.6), users=(120.0, 180.0))
        for h in (1, 2, 3, 4, 5)
    ]
    current = baseline(hours=1, health=(300.0, 318.0), teams=(310.0, 330.0), users=(420.0, 480.0))
    return current, compare(current, earlier)


def test_one_regression_of_one_release_is_one_alert_listing_every_figure() -> None:
    current, c = slow_release()
    assert len(c.regressions) == 6
    event = alert_event(current, c, {"kind": "production"})
    assert event is not None
    assert (event.key, event.type, event.environment, event.severity) == (
        "performance_regression/production/1.2.0",
        "performance_regression",
        "production",
        "warning",
    )
    assert event.labels == {"kind": "production", "version": "1.2.0"}
    assert event.details["version"] == "1.2.0"
    assert event.details["endpoints"] == ["health", "teams", "users"]
    rows = event.details["regressions"]
    assert [(r["endpoint"], r["quantile"]) for r in rows] == [
        ("health", "p50"),
        ("health", "p95"),
        ("teams", "p50"),
        ("teams", "p95"),
        ("users", "p50"),
        ("users", "p95"),
    ]
    assert rows[0] == {
        "endpoint": "health",
        "quantile": "p50",
        "referenceMs": 0.3,
        "currentMs": 300.0,
        "changeMs": 299.7,
        "changePercent": None,  # against 0.3 ms a percentage says nothing
        "against": "previous_version",
        "referenceVersion": "1.1.2",
        "referenceBaselines": 5,
    }
    assert rows[5]["changePercent"] == pytest.approx(166.7)
    assert event.summary == (
        "production 1.2.0: performance regression in health, teams, users: "
        "health p50 300 ms vs 0.3 ms (+300 ms) against the median of 5 baselines of 1.1.2; "
        "health p95 318 ms vs 0.4 ms (+318 ms) against the median of 5 baselines of 1.1.2; "
        "teams p50 310 ms vs 0.4 ms (+310 ms) against the median of 5 baselines of 1.1.2; "
        "teams p95 330 ms vs 0.6 ms (+329 ms) against the median of 5 baselines of 1.1.2; "
        "users p50 420 ms vs 120 ms (+300 ms, +250%) against the median of 5 baselines of 1.1.2; "
        "users p95 480 ms vs 180 ms (+300 ms, +167%) against the median of 5 baselines of 1.1.2"
    )


def test_no_regression_is_no_alert() -> None:
    current = baseline(hours=1, teams=(100.0, 180.0))
    assert alert_event(current, compare(current, p95s("1.1.2", 180.0, 180.0, 180.0))) is None


@pytest.mark.parametrize(
    ("reg", "line"),
    [
        (
            Regression("teams", "p95", 180.0, 412.0, "previous_version", "1.1.2", 5, 232.0 / 180.0),
            "teams p95 412 ms vs 180 ms (+232 ms, +129%) against the median of 5 baselines of 1.1.2",
        ),
        (
            Regression("health", "p50", 0.42, 130.4, "previous_version", "1.1.2", 3, None),
            "health p50 130 ms vs 0.4 ms (+130 ms) against the median of 3 baselines of 1.1.2",
        ),
        (
            Regression("users", "p95", 190.0, 241.0, "rolling_median", "1.2.0", 10, 51.0 / 190.0),
            "users p95 241 ms vs 190 ms (+51 ms, +27%) against the rolling median of 10 baselines of 1.2.0",
        ),
    ],
)
def test_summary_line(reg: Regression, line: str) -> None:
    assert summary_line(reg) == line


def test_regression_key_is_per_environment_and_version() -> None:
    assert regression_key("production", "1.2.0") == "performance_regression/production/1.2.0"
    assert regression_key("uat", None) == "performance_regression/uat/unknown"
