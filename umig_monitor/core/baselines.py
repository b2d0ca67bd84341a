"""Performance baselines from the ops guide's performance-baseline-monitor: latency statistics per
endpoint and the decision whether a new baseline regressed. Pure; the baseline job measures, stores
and alerts.

The guide compares one averaged response time with the previous record at +20 %. Here:

* **Percentiles** (p50, p95) use linear interpolation between closest ranks, numpy's default
  (Hyndman & Fan method 7): rank ``q * (n - 1)`` over the sorted successful samples. Failed requests
  are counted in ``errors`` and never enter the percentiles; with no successful sample they are None.
* **Regression**: a quantile grew by more than ``threshold`` (relative) *and* by more than
  ``min_delta_ms`` (absolute), so 10 ms -> 25 ms on a fast endpoint is noise, not a regression.
  It is checked against (a) the previous version's baseline in the same environment and (b) the
  rolling median of this version's earlier baselines there: the median of that quantile over the
  last ``window`` of them, formed only from at least ``MIN_HISTORY`` (3) values, because the median
  of one or two runs is just those runs.
* Nothing is compared when either side is missing (endpoint not measured, no successful sample) or
  the reference is not positive (a 0 ms reference has no ratio; it is a measurement artefact).
  ``Baseline.figures`` (the health document's numbers) are recorded for trends and reports and are
  not compared here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from umig_monitor.core.alerts import alert_key

KIND = "performance_regression"
ENDPOINTS = ("health", "teams", "users")
FIGURES = ("responseTime", "dbConnections", "dbResponseTime", "errorRate", "activeUsers")
MIN_HISTORY = 3
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
class Regression:
    endpoint: str
    quantile: Quantile
    reference: float  # ms
    current: float  # ms
    change: float  # relative growth: (current - reference) / reference, 1.29 for +129 %
    against: Against
    reference_version: str | None


def rolling_median(
    history: Sequence[Baseline], endpoint: str, q: Quantile, window: int = 10
) -> tuple[float, int] | None:
    """Median of one quantile over the last ``window`` baselines (by ts) that measured it, and how
    many values formed it; None with fewer than ``MIN_HISTORY`` values."""
    values = [
        value
        for b in sorted(history, key=lambda b: b.ts)
        if (stats := b.endpoints.get(endpoint)) is not None and (value := stats.quantile(q)) is not None
    ][-window:]
    if len(values) < MIN_HISTORY:
        return None
    return statistics.median(values), len(values)


def compare(
    current: Baseline,
    previous_version: Baseline | None,
    same_version_history: Sequence[Baseline],
    threshold: float = 0.20,
    min_delta_ms: float = 50.0,
    *,
    window: int = 10,
) -> list[Regression]:
    """Regressions of ``current``, per endpoint (current's order), p50 then p95, against the
    previous version's baseline and then the rolling median of the same version.

    ``same_version_history`` may hold more than needed: only baselines of ``current``'s
    environment and version taken before ``current.ts`` count (so the job can pass recent
    baselines of the environment as they come). With ``current.version`` None there is no "same
    version" and no median comparison."""
    history = [
        b
        for b in same_version_history
        if current.version is not None
        and b.version == current.version
        and b.environment == current.environment
        and b.ts < current.ts
    ]
    out: list[Regression] = []
    for endpoint, stats in current.endpoints.items():
        for q in _QUANTILES:
            value = stats.quantile(q)
            if value is None:
                continue
            previous = previous_version.endpoints.get(endpoint) if previous_version is not None else None
            reference = previous.quantile(q) if previous is not None else None
            if previous_version is not None and reference is not None:
                out += _check(endpoint, q, reference, value, "previous_version", previous_version.version)
            median = rolling_median(history, endpoint, q, window)
            if median is not None:
                out += _check(endpoint, q, median[0], value, "rolling_median", current.version)
    return [r for r in out if r.change > threshold and r.current - r.reference > min_delta_ms]


def _check(
    endpoint: str, q: Quantile, reference: float, current: float, against: Against, version: str | None
) -> list[Regression]:
    """The candidate comparison; a non-positive reference has no ratio and is not compared."""
    if reference <= 0:
        return []
    return [Regression(endpoint, q, reference, current, (current - reference) / reference, against, version)]


def summary_line(reg: Regression) -> str:
    """``teams p95 412 ms vs 180 ms (+129%) against 1.1.2``."""
    if reg.against == "previous_version":
        against = reg.reference_version or "the previous version"
    else:
        against = f"the rolling median of {reg.reference_version or 'this version'}"
    return (
        f"{reg.endpoint} {reg.quantile} {reg.current:.0f} ms vs {reg.reference:.0f} ms "
        f"(+{reg.change * 100:.0f}%) against {against}"
    )


def regression_key(environment: str, reg: Regression) -> str:
    """Stable alert key: one alert per environment, endpoint, quantile and reference kind."""
    return alert_key(KIND, environment, f"{reg.endpoint}:{reg.quantile}:{reg.against}")
