"""Performance baselines from the ops guide's performance-baseline-monitor: latency statistics per
endpoint and the decision whether a new baseline regressed. Pure; the baseline job measures, stores
and alerts.

The guide compares one averaged response time with the previous record at +20 %. Here:

* **Percentiles** (p50, p95) use linear interpolation between closest ranks, numpy's default
  (Hyndman & Fan method 7): rank ``q * (n - 1)`` over the sorted successful samples. Failed requests
  are counted in ``errors`` and never enter the percentiles; with no successful sample they are None.
* **References** are medians, never a single run: (a) the previous version's, the median of that
  quantile over its last ``Rule.reference_baselines`` baselines in the environment, and (b) this
  version's rolling median over its last ``Rule.history_baselines``. Each needs at least
  ``Rule.min_baselines`` values (the median of one or two runs is just those runs); with fewer,
  that reference is absent and said so ("not enough reference baselines"), never made up. So one
  slow or fast ad-hoc run neither hides nor fakes a regression.
* **Regression**: a quantile grew by more than ``floor_ms`` (absolute) *and* by more than
  ``threshold`` relative to the reference, or to the floor when the reference is below it. A
  percentage is only given against a reference above the floor: against a sub-millisecond
  reference it is an artefact ("+79405%"), so the change is said in ms alone.
* Nothing is compared when either side is missing (endpoint not measured, no successful sample).
  ``Baseline.figures`` (the health document's numbers) are recorded for trends and reports and are
  not compared here.
* **One alert per environment and version**: every regressed endpoint and quantile of one
  baseline is a line of the same alert, so one slow release is one page, not six.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from umig_monitor.core.alerts import AlertEvent, alert_key

KIND = "performance_regression"
ENDPOINTS = ("health", "teams", "users")
FIGURES = ("responseTime", "dbConnections", "dbResponseTime", "errorRate", "activeUsers")
Quantile = Literal["p50", "p95"]
Against = Literal["previous_version", "rolling_median"]
_QUANTILES: tuple[Quantile, ...] = ("p50", "p95")


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """One endpoint in one baseline: ``samples`` successful requests, ``errors`` failed ones."""

    samples: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None

    def quantile(self, q: Quantile) -> float | None:
        return self.p50_ms if q == "p50" else self.p95_ms


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``sorted_values`` non-empty
    and ascending, ``0 <= q <= 1``."""
    rank = q * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def latency_stats(samples_ms: Sequence[float], errors: int) -> LatencyStats:
    """Statistics of the successful requests' durations (ms). Raises ValueError on a negative or
    non-finite duration or error count: those are bugs in the measuring code, not latencies."""
    if errors < 0:
        raise ValueError(f"negative error count {errors}")
    for value in samples_ms:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid latency sample {value!r} ms")
    if not samples_ms:
        return LatencyStats(0, errors, None, None, None)
    ordered = sorted(float(v) for v in samples_ms)
    return LatencyStats(
        len(ordered), errors, percentile(ordered, 0.50), percentile(ordered, 0.95), ordered[-1]
    )


@dataclass(frozen=True, slots=True)
class Baseline:
    """One measurement run. ``figures`` holds only what was measured: an absent key means not
    measured, never 0."""

    environment: str
    version: str | None
    ts: datetime
    endpoints: Mapping[str, LatencyStats] = field(default_factory=dict)
    figures: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    """When a baseline regressed; ``jobs.baseline`` in the config."""

    threshold: float = 0.20  # relative growth, 0.20 for +20 %
    floor_ms: float = 50.0  # absolute growth a regression exceeds; percentages only above it
    reference_baselines: int = 5  # the previous version's recent baselines forming its median
    history_baselines: int = 10  # this version's earlier baselines forming the rolling median
    min_baselines: int = 3  # fewer values: no median, no comparison


@dataclass(frozen=True, slots=True)
class Regression:
    endpoint: str
    quantile: Quantile
    reference: float  # ms: the median
    current: float  # ms
    against: Against
    reference_version: str | None
    reference_baselines: int  # how many baselines formed the median
    # relative growth, 1.29 for +129 %; None when the reference is not above the floor
    change: float | None

    @property
    def change_ms(self) -> float:
        return self.current - self.reference


@dataclass(frozen=True, slots=True)
class Comparison:
    """What one baseline was compared with and what regressed; ``notes`` say which reference was
    absent and why."""

    regressions: tuple[Regression, ...] = ()
    notes: tuple[str, ...] = ()
    compared: bool = False  # against at least one reference: a clean run clears a regression


def median_of(
    baselines: Sequence[Baseline], endpoint: str, q: Quantile, count: int, minimum: int
) -> tuple[float, int] | None:
    """Median of one quantile over the last ``count`` baselines (by ts) that measured it, and how
    many values formed it; None with fewer than ``minimum`` values."""
    values = [
        value
        for b in sorted(baselines, key=lambda b: b.ts)
        if (stats := b.endpoints.get(endpoint)) is not None and (value := stats.quantile(q)) is not None
    ][-count:]
    if not values or len(values) < minimum:
        return None
    return statistics.median(values), len(values)


def previous_version_of(current: Baseline, baselines: Sequence[Baseline]) -> str | None:
    """The version this environment ran before ``current``'s: that of its latest earlier baseline
    on another known version."""
    earlier = [
        b
        for b in baselines
        if b.environment == current.environment
        and b.version is not None
        and b.version != current.version
        and b.ts < current.ts
    ]
    return max(earlier, key=lambda b: b.ts).version if earlier else None


def compare(current: Baseline, earlier: Sequence[Baseline], rule: Rule = Rule()) -> Comparison:
    """Regressions of ``current``, per endpoint (current's order), p50 then p95, against the
    previous version's median and then this version's rolling median.

    ``earlier`` may hold more than needed: only baselines of ``current``'s environment taken before
    ``current.ts`` count, of the previous version (see ``previous_version_of``) and of ``current``'s.
    With ``current.version`` None there is neither: which version ran is unknown."""
    if current.version is None:
        return Comparison(notes=("version unknown: nothing to compare with",))
    if all(s.quantile(q) is None for s in current.endpoints.values() for q in _QUANTILES):
        return Comparison(notes=("no successful request measured: nothing to compare",))
    mine = [b for b in earlier if b.environment == current.environment and b.ts < current.ts]
    previous_version = previous_version_of(current, mine)
    references: list[tuple[Against, str, list[Baseline], int]] = [
        (
            "rolling_median",
            current.version,
            [b for b in mine if b.version == current.version],
            rule.history_baselines,
        )
    ]
    notes: list[str] = []
    if previous_version is None:
        notes.append("no baseline of a previous version")
    else:
        ofprevious = [b for b in mine if b.version == previous_version]
        references.insert(0, ("previous_version", previous_version, ofprevious, rule.reference_baselines))
    out: list[Regression] = []
    any_compared = False
    for against, version, baselines, count in references:
        compared = False
        for endpoint, stats in current.endpoints.items():
            for q in _QUANTILES:
                value = stats.quantile(q)
                median = median_of(baselines, endpoint, q, count, rule.min_baselines)
                if value is None or median is None:
                    continue
                compared = True
                reg = _regression(endpoint, q, median, value, against, version, rule)
                if reg is not None:
                    out.append(reg)
        any_compared |= compared
        if not compared:
            notes.append(_not_enough(against, version, baselines, count, rule.min_baselines))
    order = {e: i for i, e in enumerate(current.endpoints)}
    out.sort(key=lambda r: (r.against != "previous_version", order[r.endpoint], r.quantile))
    return Comparison(tuple(out), tuple(notes), any_compared)


def _regression(
    endpoint: str,
    q: Quantile,
    median: tuple[float, int],
    current: float,
    against: Against,
    version: str,
    rule: Rule,
) -> Regression | None:
    reference, n = median
    grew = current - reference
    if grew <= rule.floor_ms or grew <= rule.threshold * max(reference, rule.floor_ms):
        return None
    change = grew / reference if reference > rule.floor_ms else None
    return Regression(endpoint, q, reference, current, against, version, n, change)


def _not_enough(
    against: Against, version: str, baselines: Sequence[Baseline], count: int, minimum: int
) -> str:
    n = min(len(baselines), count)
    if against == "previous_version":
        return f"not enough reference baselines of {version} ({n}, {minimum} needed)"
    return f"not enough earlier baselines of {version} for its rolling median ({n}, {minimum} needed)"


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if abs(value) < 10 else f"{value:.0f} ms"


def reference_text(reg: Regression) -> str:
    """``the median of 5 baselines of 1.1.2``, ``the rolling median of 10 baselines of 1.2.0``."""
    what = "median" if reg.against == "previous_version" else "rolling median"
    return f"the {what} of {reg.reference_baselines} baselines of {reg.reference_version or 'this version'}"


def summary_line(reg: Regression) -> str:
    """``teams p95 412 ms vs 180 ms (+232 ms, +129%) against the median of 5 baselines of 1.1.2``;
    no percentage against a reference at or below the floor."""
    change = f"+{_ms(reg.change_ms)}" + (f", +{reg.change * 100:.0f}%" if reg.change is not None else "")
    figures = f"{_ms(reg.current)} vs {_ms(reg.reference)} ({change})"
    return f"{reg.endpoint} {reg.quantile} {figures} against {reference_text(reg)}"


def regression_key(environment: str, version: str | None) -> str:
    """Stable alert key: one alert per environment and version, whatever regressed in it."""
    return alert_key(KIND, environment, version or "unknown")


def regression_details(reg: Regression) -> dict[str, object]:
    return {
        "endpoint": reg.endpoint,
        "quantile": reg.quantile,
        "referenceMs": round(reg.reference, 3),
        "currentMs": round(reg.current, 3),
        "changeMs": round(reg.change_ms, 3),
        "changePercent": None if reg.change is None else round(reg.change * 100, 1),
        "against": reg.against,
        "referenceVersion": reg.reference_version,
        "referenceBaselines": reg.reference_baselines,
    }


def alert_event(
    current: Baseline, comparison: Comparison, labels: Mapping[str, str] | None = None
) -> AlertEvent | None:
    """The one alert of a regressed baseline: every regressed endpoint and quantile is a line of
    its summary and an entry of its details; None when nothing regressed."""
    regs = comparison.regressions
    if not regs:
        return None
    endpoints = list(dict.fromkeys(r.endpoint for r in regs))
    version = current.version or "unknown version"
    return AlertEvent(
        regression_key(current.environment, current.version),
        KIND,
        current.environment,
        "warning",
        f"{current.environment} {version}: performance regression in {', '.join(endpoints)}: "
        + "; ".join(summary_line(r) for r in regs),
        current.ts,
        details={
            "version": current.version,
            "endpoints": endpoints,
            "regressions": [regression_details(r) for r in regs],
        },
        labels={**(labels or {}), **({"version": current.version} if current.version else {})},
    )
