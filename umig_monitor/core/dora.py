"""Figures over deployment events: the history summary (deployments by outcome) and the DORA
metrics. Pure; the caller picks the events (environment, window) and passes the health recoveries.
``core.deployments`` re-exports ``summarize`` and ``dora``.

A deployment is a deployment id; its outcome is its latest terminal event (success, failure or
rollback) by time, else "in progress" (a start only) or "observed" (polling saw it). The guide
counted starts as the total, so a success reported without a start was missing from it and its
success rate could pass 100%, and it compared timestamps as strings, which is wrong across UTC
offsets. Here a deployment counts once, whatever it reported, and times are datetimes."""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime

from umig_monitor.core.deployments import (
    TERMINAL,
    DeploymentEvent,
    Dora,
    EventType,
    Summary,
    parse_timestamp,
)

TIE_RANK = {EventType.SUCCESS: 0, EventType.FAILURE: 1, EventType.ROLLBACK: 2}


def _outcomes(events: Iterable[DeploymentEvent]) -> list[EventType]:
    """Per deployment: its latest terminal event by time, else START (still in progress) or
    OBSERVED. On equal times rollback wins over failure over success (as the store's SQL summary
    decides), so the answer never depends on the order events arrive in."""
    groups: dict[str, list[tuple[datetime, int, DeploymentEvent]]] = {}
    for e in events:
        groups.setdefault(e.deployment_id, []).append((e.ts, TIE_RANK.get(e.type, -1), e))
    out = []
    for group in groups.values():
        terminal = [item for item in group if item[2].type in TERMINAL]
        if terminal:
            out.append(max(terminal, key=lambda item: item[:2])[2].type)
        elif any(item[2].type is EventType.START for item in group):
            out.append(EventType.START)
        else:
            out.append(EventType.OBSERVED)
    return out


def summarize(events: Sequence[DeploymentEvent]) -> Summary:
    """Deployments (distinct ids): ``successful`` by outcome, ``failed`` and ``rollbacks`` the
    deployments that had a failure or were rolled back (a failed deployment then rolled back is
    in both, as the guide counted it); the success rate is successful over finished ones (those
    with any outcome), None if none."""
    outcomes = _outcomes(events)
    count = {t: outcomes.count(t) for t in EventType}
    had: dict[EventType, set[str]] = {EventType.FAILURE: set(), EventType.ROLLBACK: set()}
    for e in events:
        if e.type in had:
            had[e.type].add(e.deployment_id)
    successful = count[EventType.SUCCESS]
    finished = successful + count[EventType.FAILURE] + count[EventType.ROLLBACK]
    return Summary(
        total=len(outcomes),
        successful=successful,
        failed=len(had[EventType.FAILURE]),
        rollbacks=len(had[EventType.ROLLBACK]),
        in_progress=count[EventType.START],
        observed=count[EventType.OBSERVED],
        success_rate=successful / finished if finished else None,
    )


def _next_after(times: Sequence[datetime], t: datetime) -> datetime | None:
    i = bisect.bisect_right(times, t)
    return times[i] if i < len(times) else None


def _median_mean(samples: Sequence[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    return float(statistics.median(samples)), float(statistics.fmean(samples))


def dora(
    environment: str,
    events: Sequence[DeploymentEvent],
    recoveries: Sequence[datetime],
    start: datetime,
    end: datetime,
) -> Dora:
    """DORA figures for ``environment`` over ``start <= ts < end``.

    A deployment counts when it reached the environment (succeeded or was observed); the change
    failure rate is failed and rolled back over all finished ones. Time to restore runs from each
    failure or rollback to the next success in the environment or the next health recovery
    (``recoveries``), whichever is first, even past ``end``; unresolved ones are left out. Lead time
    is success time minus ``metadata["commit_time"]``; a negative one (clock skew) is left out."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError("end must be after start")
    window_days = (end - start).total_seconds() / 86400
    mine = [e for e in events if e.environment == environment]
    inside = [e for e in mine if start <= e.ts < end]
    s = summarize(inside)
    deployments = s.successful + s.observed
    finished = deployments + s.failed + s.rollbacks

    successes = sorted(e.ts for e in mine if e.type is EventType.SUCCESS)
    recovered = sorted(recoveries)
    restore: list[float] = []
    for e in inside:
        if e.type in (EventType.FAILURE, EventType.ROLLBACK):
            ends = [t for t in (_next_after(successes, e.ts), _next_after(recovered, e.ts)) if t is not None]
            if ends:
                restore.append((min(ends) - e.ts).total_seconds())
    lead: list[float] = []
    for e in inside:
        if e.type is EventType.SUCCESS and "commit_time" in e.metadata:
            try:
                seconds = (e.ts - parse_timestamp(e.metadata["commit_time"])).total_seconds()
            except ValueError:
                continue
            if seconds >= 0:
                lead.append(seconds)
    restore_median, restore_mean = _median_mean(restore)
    lead_median, lead_mean = _median_mean(lead)
    return Dora(
        environment=environment,
        window_days=window_days,
        deployments=deployments,
        deployment_frequency_per_day=deployments / window_days,
        change_failure_rate=(s.failed + s.rollbacks) / finished if finished else None,
        time_to_restore_median_s=restore_median,
        time_to_restore_mean_s=restore_mean,
        restores=len(restore),
        lead_time_median_s=lead_median,
        lead_time_mean_s=lead_mean,
        lead_time_samples=len(lead),
    )
