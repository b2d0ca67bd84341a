"""Figures over deployment events: the history summary (deployments by outcome) and the DORA
metrics. Pure; the caller picks the events (environment, window) and passes the health recoveries.

A deployment is a deployment id; its outcome is its latest terminal event (success, failure or
rollback) by time, else "in progress" (a start only) or "observed" (polling saw it). The guide
counted starts as the total, so a success reported without a start was missing from it and its
success rate could pass 100%, and it compared timestamps as strings, which is wrong across UTC
offsets. Here a deployment counts once, whatever it reported, and times are datetimes."""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from umig_monitor.core.deployments import (
    TERMINAL,
    DeploymentEvent,
    Dora,
    EventType,
    Summary,
    parse_timestamp,
)
from umig_monitor.core.rollouts import reached_at

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


@dataclass(frozen=True, slots=True)
class Incident:
    """A health incident of the environment: when it started and, once resolved, ended."""

    starts_at: datetime
    ends_at: datetime | None


def linked_deployment(
    incident_start: datetime, reached: Sequence[tuple[datetime, str]], window: timedelta
) -> str | None:
    """The deployment an incident is linked to: the latest one that reached the environment at
    or before the incident started, at most ``window`` before. ``reached`` is sorted by time."""
    i = bisect.bisect_right(reached, (incident_start, "\uffff"))
    if i == 0:
        return None
    ts, deployment_id = reached[i - 1]
    return deployment_id if incident_start - ts <= window else None


def dora(
    environment: str,
    events: Sequence[DeploymentEvent],
    incidents: Sequence[Incident],
    start: datetime,
    end: datetime,
    link_window: timedelta = timedelta(hours=1),
) -> Dora:
    """DORA figures for ``environment`` over ``start <= t < end``, as Four Keys defines them
    (README "DORA figures"):

    - **deployments** (and their frequency per day): deployments that reached the environment
      (succeeded or were observed) in the window;
    - **change failure rate**: of the deployments that finished in the window (reached it, failed
      or were rolled back), those followed by a failure, a rollback or an incident linked to them
      (one that started within ``link_window`` after the deployment reached the environment);
    - **time to restore**: from each incident, and each failure that no incident already covers,
      to the first of a rollback, the environment's next success, or the incident's end, even
      past ``end``; unresolved ones are left out. A rollback is the failed deployment's outcome,
      not a deployment of its own, so a failure rolled back 3 minutes later restores in 3 minutes;
    - **lead time**: from the commit (``metadata["commit_time"]`` of whichever event of the
      deployment carries it) to when the deployment reached the environment; a negative one
      (clock skew) is left out."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError("end must be after start")
    window_days = (end - start).total_seconds() / 86400
    groups: dict[str, list[DeploymentEvent]] = {}
    for e in events:
        if e.environment == environment:
            groups.setdefault(e.deployment_id, []).append(e)
    reached = sorted((t, i) for i, g in groups.items() if (t := reached_at(g)) is not None)
    reach = {i: t for t, i in reached}
    linked = {
        linked_deployment(x.starts_at, reached, link_window) for x in incidents if x.starts_at >= start
    } - {None}

    deployments = finished = failed = 0
    lead: list[float] = []
    for deployment_id, group in groups.items():
        outcome_at = reach.get(deployment_id) or min(
            (e.ts for e in group if e.type in TERMINAL), default=None
        )
        if outcome_at is None or not start <= outcome_at < end:
            continue  # still in progress, or decided outside the window
        finished += 1
        if deployment_id in reach:
            deployments += 1
            commit = next((e.metadata["commit_time"] for e in group if "commit_time" in e.metadata), None)
            try:
                took = (outcome_at - parse_timestamp(commit)).total_seconds() if commit else -1.0
            except ValueError:
                took = -1.0
            if took >= 0:
                lead.append(took)
        if deployment_id in linked or any(e.type in (EventType.FAILURE, EventType.ROLLBACK) for e in group):
            failed += 1

    mine = [e for g in groups.values() for e in g]
    successes = sorted(e.ts for e in mine if e.type is EventType.SUCCESS)
    rollbacks = sorted(e.ts for e in mine if e.type is EventType.ROLLBACK)

    def restored(since: datetime, ends: datetime | None) -> float | None:
        options = [t for t in (_next_after(successes, since), _next_after(rollbacks, since), ends) if t]
        return (min(options) - since).total_seconds() if options else None

    def covered(t: datetime) -> Incident | None:
        return next((x for x in incidents if x.starts_at <= t and (x.ends_at is None or t < x.ends_at)), None)

    restore: list[float | None] = [
        restored(x.starts_at, x.ends_at) for x in incidents if start <= x.starts_at < end
    ]
    for group in groups.values():
        failure = min((e.ts for e in group if e.type is EventType.FAILURE), default=None)
        if failure is not None and start <= failure < end and covered(failure) is None:
            restore.append(restored(failure, None))
    restores = [seconds for seconds in restore if seconds is not None]
    restore_median, restore_mean = _median_mean(restores)
    lead_median, lead_mean = _median_mean(lead)
    return Dora(
        environment=environment,
        window_days=window_days,
        deployments=deployments,
        deployment_frequency_per_day=deployments / window_days,
        change_failure_rate=failed / finished if finished else None,
        time_to_restore_median_s=restore_median,
        time_to_restore_mean_s=restore_mean,
        restores=len(restores),
        lead_time_median_s=lead_median,
        lead_time_mean_s=lead_mean,
        lead_time_samples=len(lead),
        failed_changes=failed,
        incidents=sum(1 for x in incidents if start <= x.starts_at < end),
        linked_incidents=sum(
            1
            for x in incidents
            if start <= x.starts_at < end and linked_deployment(x.starts_at, reached, link_window)
        ),
    )
