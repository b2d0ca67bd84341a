"""The health timeline of the status page: stored polls (hourly rollups for finished hours, raw samples
for the rest) folded into spans coloured by the worst outcome in them. Pure: window and data passed in."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from umig_monitor.core.health import HealthSample, Outcome

# Worst first: a span takes the first of these any of its polls had. "failed" is every poll without a
# usable answer (unreachable, timeout, HTTP, auth, invalid response), as the hourly rollups count it.
STATES = ("failed", "unhealthy", "degraded", "healthy")
NO_DATA = "no_data"
STATE_LABELS: Mapping[str, str] = {
    "healthy": "healthy",
    "degraded": "degraded",
    "unhealthy": "unhealthy",
    "failed": "no answer",
    NO_DATA: "no data",
}
SLOT = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def state_of(outcome: Outcome) -> str:
    return outcome.value if outcome.answered else "failed"


@dataclass(frozen=True, slots=True)
class Tally:
    """Polls counted by state over ``[start, end)``: one hourly rollup, or one slot of raw samples."""

    start: datetime
    end: datetime
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Span:
    """One drawn segment: adjacent slots of the same state, their polls summed."""

    start: datetime
    end: datetime
    state: str
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def polls(self) -> int:
        return sum(self.counts.values())


def worst(counts: Mapping[str, int]) -> str:
    return next((s for s in STATES if counts.get(s)), NO_DATA)


def build_timeline(
    rollups: Iterable[Tally],
    samples: Iterable[HealthSample],
    start: datetime,
    end: datetime,
    slot: timedelta = SLOT,
) -> list[Span]:
    """Spans covering ``[start, end)`` exactly, oldest first.

    Rollups are taken as they are (clipped to the window); a sample inside a rollup's range is
    skipped (the rollup already counts it); other samples are counted in ``slot``-long slots aligned
    to the epoch (``slot`` should divide an hour so slots never straddle a rollup). Time without polls
    is a ``no_data`` span; neighbours of the same state merge, so a quiet day is one span.
    """
    tallies: dict[datetime, tuple[datetime, Counter[str]]] = {}
    covered: list[tuple[datetime, datetime]] = []
    for r in rollups:
        lo, hi = max(r.start, start), min(r.end, end)
        if lo < hi:
            covered.append((lo, hi))
            tallies.setdefault(lo, (hi, Counter()))[1].update(r.counts)
    covered.sort()
    starts = [lo for lo, _ in covered]
    for sample in samples:
        ts = sample.ts
        if not start <= ts < end:
            continue
        i = bisect.bisect_right(starts, ts) - 1
        if i >= 0 and ts < covered[i][1]:
            continue
        slot_start = ts - (ts - _EPOCH) % slot
        lo, hi = max(slot_start, start), min(slot_start + slot, end)
        tallies.setdefault(lo, (hi, Counter()))[1][state_of(sample.outcome)] += 1

    spans: list[Span] = []
    cursor = start
    for lo in sorted(tallies):
        hi, counts = tallies[lo]
        lo = max(lo, cursor)  # overlapping input: never draw backwards
        if hi <= lo:
            continue
        if cursor < lo:
            _append(spans, Span(cursor, lo, NO_DATA))
        _append(spans, Span(lo, hi, worst(counts), dict(counts)))
        cursor = hi
    if cursor < end:
        _append(spans, Span(cursor, end, NO_DATA))
    return spans


def _append(spans: list[Span], span: Span) -> None:
    last = spans[-1] if spans else None
    if last is not None and last.state == span.state and last.end == span.start:
        merged = Counter(last.counts)
        merged.update(span.counts)
        spans[-1] = Span(last.start, span.end, span.state, dict(merged))
    else:
        spans.append(span)


def healthy_share(spans: Sequence[Span]) -> float | None:
    """Healthy polls over all polls in the spans; None without polls (never a division by zero)."""
    total = sum(s.polls for s in spans)
    if not total:
        return None
    return sum(s.counts.get("healthy", 0) for s in spans) / total
