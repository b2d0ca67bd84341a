"""Deployment identity: which deployment an event belongs to, and what a re-sent event changes.
Pure; the recorder passes what storage knows.

A deployment is one environment moving to one version. Whatever reports it (a pipeline's start,
success or failure, a watch, a rollback, polling seeing the version change) attaches to the same
deployment when it is about the same environment and version within ``window`` of that
deployment's latest event, with or without an id:

- a **start** joins a deployment of that version that has not finished (a re-sent start, or
  polling saw the version before the pipeline said it started);
- a **success** joins one of that version that has neither failed nor been rolled back (its start,
  the deployment polling observed, or the success a watch already verified);
- a **failure** joins one of that version that has not been rolled back (even one a watch verified:
  the pipeline's smoke tests may find what the watch's checks did not);
- a **rollback** is the outcome of the latest deployment of the version it rolls back, however old
  (it is not a deployment of its own: the version it returns to was deployed before);
- a version **observed** by polling belongs to a deployment of that version in the window, or to
  a rollback to that version in the window; only otherwise is it a deployment nobody reported.

Anything else starts a new deployment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from umig_monitor.core.deployments import DeploymentEvent, EventType

# Monitor-made events (a watch's or polling's verification) carry this metadata key; what a
# pipeline reports later for the same event fills in or overrides their fields.
VERIFIED_BY = "verifiedBy"


@dataclass(frozen=True, slots=True)
class Rollout:
    """One deployment as storage knows it: its id and its events, oldest first."""

    deployment_id: str
    events: tuple[DeploymentEvent, ...]

    @property
    def version(self) -> str | None:
        """The version deployed: a rollback names it as the version it rolls back."""
        for e in self.events:
            if e.type is not EventType.ROLLBACK and e.version is not None:
                return e.version
        return next((e.from_version or e.version for e in self.events), None)

    @property
    def last_ts(self) -> datetime:
        return max(e.ts for e in self.events)

    def has(self, *types: EventType) -> bool:
        return any(e.type in types for e in self.events)

    @property
    def open(self) -> bool:
        """Started or observed, with no outcome yet."""
        return not self.has(EventType.SUCCESS, EventType.FAILURE, EventType.ROLLBACK)


def reached_at(events: Iterable[DeploymentEvent]) -> datetime | None:
    """When a deployment reached its environment: its first success or observation."""
    return min((e.ts for e in events if e.type in (EventType.SUCCESS, EventType.OBSERVED)), default=None)


def rollouts(events: Iterable[DeploymentEvent]) -> list[Rollout]:
    """Events grouped by deployment, latest deployment first."""
    groups: dict[str, list[DeploymentEvent]] = {}
    for e in events:
        groups.setdefault(e.deployment_id, []).append(e)
    out = [Rollout(i, tuple(sorted(g, key=lambda e: (e.ts, e.id)))) for i, g in groups.items()]
    return sorted(out, key=lambda r: r.last_ts, reverse=True)


def attach(
    type: EventType,
    environment: str,
    version: str | None,
    ts: datetime,
    known: Iterable[DeploymentEvent],
    window: timedelta,
) -> str | None:
    """The deployment an event without an id belongs to, or None for a new one. ``version`` is the
    canonical version the event is about (a rollback's: the version rolled back). ``known`` holds
    the environment's events of the window before ``ts`` and, for a rollback, the events of the
    latest deployment of the version rolled back."""
    if version is None:
        return None
    mine = [r for r in rollouts(e for e in known if e.environment == environment) if r.events]

    def recent(r: Rollout) -> bool:
        return ts - window <= r.last_ts <= ts + window

    same = [r for r in mine if r.version == version and not r.has(EventType.ROLLBACK)]
    if type is EventType.START:
        found = next((r for r in same if r.open and recent(r)), None)
    elif type is EventType.SUCCESS:
        found = next((r for r in same if not r.has(EventType.FAILURE) and recent(r)), None)
    elif type is EventType.FAILURE:
        found = next((r for r in same if recent(r)), None)
    elif type is EventType.ROLLBACK:
        found = same[0] if same else None
    else:  # OBSERVED
        found = next((r for r in same if recent(r)), None)
        if found is None:
            found = next(
                (
                    r
                    for r in mine
                    if recent(r)
                    and any(e.type is EventType.ROLLBACK and e.to_version == version for e in r.events)
                ),
                None,
            )
    return found.deployment_id if found is not None else None


class EventConflict(ValueError):
    """A re-sent event (same id) that contradicts the stored one; ``fields`` names what differs,
    in the API's names."""

    def __init__(self, event_id: str, fields: Sequence[str]) -> None:
        self.event_id = event_id
        self.fields = tuple(fields)
        super().__init__(
            f"event '{event_id}' is already recorded with other values for {', '.join(self.fields)}; "
            "send it with its own eventId to record another event, or the same values to confirm it"
        )


# (attribute, the API's name) of the fields a re-sent event may fill in.
_FIELDS = (
    ("version", "version"),
    ("from_version", "fromVersion"),
    ("to_version", "toVersion"),
    ("initiated_by", "initiatedBy"),
    ("duration_seconds", "duration"),
    ("error", "error"),
)


def merge(stored: DeploymentEvent, incoming: DeploymentEvent) -> DeploymentEvent | None:
    """What storing ``incoming`` again (same id) changes: None when it says nothing new, else the
    stored event with the new information. A pipeline's report overrides what the monitor itself
    measured (an event ``verifiedBy`` a watch or polling); between two reports a contradiction is
    an ``EventConflict``, never a silent drop. The time stays the first report's."""
    if incoming.type is not stored.type or incoming.deployment_id != stored.deployment_id:
        raise EventConflict(stored.id, ["type" if incoming.type is not stored.type else "deploymentId"])
    monitor_made = VERIFIED_BY in stored.metadata and VERIFIED_BY not in incoming.metadata
    changes: dict[str, object] = {}
    conflicts: list[str] = []
    for attribute, name in _FIELDS:
        old, new = getattr(stored, attribute), getattr(incoming, attribute)
        if new is None or new == old:
            continue
        if old is None or monitor_made:
            changes[attribute] = new
        else:
            conflicts.append(name)
    metadata = dict(stored.metadata)
    for key, value in incoming.metadata.items():
        if metadata.get(key, value) != value and not monitor_made:
            conflicts.append(f"metadata.{key}")
        metadata[key] = value
    if conflicts:
        raise EventConflict(stored.id, conflicts)
    if metadata != dict(stored.metadata):
        changes["metadata"] = metadata
    if not changes:
        return None
    return replace(stored, **changes)  # type: ignore[arg-type]


def incident_context(
    at: datetime,
    known: Iterable[DeploymentEvent],
    watches: Iterable[tuple[str, str, datetime]],
    grace: timedelta,
    link_window: timedelta,
) -> dict[str, object] | None:
    """The deployment an incident of one environment starting ``at`` belongs to, for the alert's
    ``details["deployment"]``: one in progress (started with no outcome yet, or being watched:
    ``watches`` are (id, version, started at)), whose incident is held until ``heldUntil``
    (``at + grace``) instead of paging; else the latest one that reached the environment at most
    ``link_window`` before ``at``. None when neither."""
    candidates: list[
        tuple[datetime, str, str | None, str | None, bool]
    ] = []  # since, id, version, by, running
    for r in rollouts(known):
        started = min(e.ts for e in r.events)
        if started > at:
            continue
        by = next((e.initiated_by for e in r.events if e.initiated_by), None)
        if r.open and r.has(EventType.START):
            candidates.append((started, r.deployment_id, r.version, by, True))
            continue
        reached = reached_at(r.events)
        if (
            reached is not None
            and reached <= at
            and at - reached <= link_window
            and not r.has(EventType.ROLLBACK)
        ):
            candidates.append((reached, r.deployment_id, r.version, by, False))
    for watch_id, expected, started in watches:
        if started <= at:
            candidates.append((started, watch_id, expected, None, True))
    if not candidates:
        return None
    # A deployment in progress wins over one that finished; among equals, the latest.
    since, deployment_id, version, by, running = max(candidates, key=lambda c: (c[4], c[0]))
    minutes = int((at - since).total_seconds() // 60)
    what = f"deployment {deployment_id} of {version or 'an unknown version'}"
    text = f"started {minutes} min after {what}"
    return {
        "id": deployment_id,
        "version": version,
        "by": by,
        "since": since.isoformat(),
        "minutesAfter": minutes,
        "inProgress": running,
        "heldUntil": (at + grace).isoformat() if running and grace > timedelta(0) else None,
        "text": text + (f" by {by}" if by else "") + (", still in progress" if running else ""),
    }


def held_until(details: Mapping[str, object]) -> datetime | None:
    """When an alert raised during a deployment may page (``incident_context``), or None."""
    deployment = details.get("deployment")
    value = deployment.get("heldUntil") if isinstance(deployment, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
