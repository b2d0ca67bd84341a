"""Recording deployment events: validate in core, store (idempotent by id), notify through routing,
forward to the central log through the outbox, count in metrics. Used by the API, the CLI (when no
daemon runs), the health job (observed deployments) and deployment watches."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from umig_monitor.config import Settings
from umig_monitor.core.alerts import (
    Alert,
    AlertState,
    Notification,
    NotificationKind,
    alert_key,
)
from umig_monitor.core.deployments import DeploymentEvent, EventError, EventType, Summary, build_event
from umig_monitor.core.history import event_to_record
from umig_monitor.core.rollouts import VERIFIED_BY, Rollout, attach, incident_context, merge
from umig_monitor.core.versions import try_parse
from umig_monitor.metrics import DeploymentMetrics
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.sinks.forward import FORWARD_SINK
from umig_monitor.storage import Store

log = structlog.get_logger("umig_monitor.deployments")


def parse_event_type(value: Any) -> EventType:
    try:
        return EventType.from_cli(str(value))
    except ValueError:
        choices = "start, success, failure, rollback"
        raise EventError("type", f"must be one of {choices}, got '{value}'") from None


@dataclass(frozen=True, slots=True)
class History:
    """A window of deployment history: its events (one page, or all of them), how many it holds,
    and its summary as storage decides it (a deployment that started before an open window and
    ended in it counts by its outcome)."""

    events: list[DeploymentEvent]
    total: int
    summary: Summary


async def history(
    store: Store,
    *,
    environment: str | None,
    since: datetime | None,
    until: datetime | None = None,
    types: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = True,
) -> History:
    """The one read of a history window, for the API and the ``history`` command alike. The page,
    the count and the summary are independent reads, run side by side."""
    filters: dict[str, Any] = {"environment": environment, "since": since, "until": until, "types": types}
    page = store.deployment_events(**filters, limit=limit, offset=offset, newest_first=newest_first)
    summary = store.deployment_summary(environment=environment, since=since, until=until)
    if limit is None and offset == 0:  # every event of the window: the count is the list's length
        events, s = await asyncio.gather(page, summary)
        return History(events, len(events), s)
    events, total, s = await asyncio.gather(page, store.count_deployment_events(**filters), summary)
    return History(events, total, s)


def event_alert(event: DeploymentEvent, settings: Settings) -> Alert:
    """A deployment event as the one-off alert routing and the sinks understand."""
    env = settings.environments.get(event.environment)
    bad = event.type in (EventType.FAILURE, EventType.ROLLBACK)
    severity = (env.alert_severity if env else "warning") if bad else "info"
    details: dict[str, Any] = {"deploymentId": event.deployment_id, "status": event.status}
    if event.duration_seconds is not None:
        details["duration"] = _duration_text(event.duration_seconds)
    if event.error:
        details["error"] = event.error
    if event.to_version:
        details["toVersion"] = event.to_version
    if event.initiated_by:
        details["initiatedBy"] = event.initiated_by
    details.update({k: v for k, v in event.metadata.items() if k in ("commit_sha", "pipeline_url")})
    version = event.version or event.from_version
    labels = {"kind": env.kind if env else "", **({"version": version} if version else {})}
    return Alert(
        key=alert_key(event.type.value, event.environment, event.deployment_id),
        type=event.type.value if event.type is not EventType.OBSERVED else "deployment_observed",
        environment=event.environment,
        severity=severity,
        state=AlertState.FIRING,
        summary=_summary(event),
        starts_at=event.ts,
        details=details,
        labels=labels,
    )


# The events that end a deployment, and with it the notice that it started.
_ENDS_START = (EventType.SUCCESS, EventType.FAILURE, EventType.ROLLBACK)


def superseded_starts(
    event: DeploymentEvent, same_deployment: Iterable[DeploymentEvent], settings: Settings, now: datetime
) -> tuple[Alert, ...]:
    """The start notices ``event`` ends: the deployment's start, resolved when the outcome came
    (not later than now, not before the start), so a receiver that keeps notices active
    (Alertmanager) does not show "deploying" after the deployment finished."""
    if event.type not in _ENDS_START:
        return ()
    ended = min(event.ts, now)
    return tuple(
        replace(event_alert(start, settings), state=AlertState.RESOLVED, ends_at=max(ended, start.ts))
        for start in same_deployment
        if start.type is EventType.START and start.id != event.id
    )


def _duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _summary(e: DeploymentEvent) -> str:
    if e.type is EventType.START:
        return f"Deploying UMIG {e.version} to {e.environment}"
    if e.type is EventType.SUCCESS:
        took = f" in {_duration_text(e.duration_seconds)}" if e.duration_seconds is not None else ""
        return f"UMIG {e.version} successfully deployed to {e.environment}{took}"
    if e.type is EventType.FAILURE:
        return f"UMIG {e.version} deployment to {e.environment} failed: {e.error}"
    if e.type is EventType.ROLLBACK:
        return f"Rolling back {e.environment} from {e.from_version or e.version} to {e.to_version}"
    return f"{e.environment} now runs UMIG {e.version} (no deployment was reported)"


def canonical(version: str | None) -> str | None:
    """``v1.2.0`` and ``1.2.0`` are one version: compare and store the canonical form."""
    parsed = try_parse(version) if version else None
    return str(parsed) if parsed is not None else version


class Recorded(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"  # a re-sent event that added information
    UNCHANGED = "unchanged"  # a re-sent event that said nothing new


def _consistent(
    deployment_id: str,
    same: Sequence[DeploymentEvent],
    event_type: EventType,
    environment: str,
    version: str | None,
) -> None:
    """An event sent with a deployment id must be about that deployment's environment and version."""
    if not same:
        return
    rollout = Rollout(deployment_id, tuple(same))
    if same[0].environment != environment:
        raise EventError("id", f"deployment '{deployment_id}' is in {same[0].environment}, not {environment}")
    if version is not None and rollout.version is not None and version != rollout.version:
        raise EventError("version", f"deployment '{deployment_id}' deploys {rollout.version}, not {version}")


class DeploymentRecorder:
    def __init__(
        self,
        store: Store,
        pipeline: AlertPipeline,
        settings: Settings,
        metrics: DeploymentMetrics | None = None,
        on_verified: Callable[[str], None] | None = None,
    ) -> None:
        self.on_verified = on_verified  # e.g. the daemon scheduling a baseline right away
        self.store = store
        self.pipeline = pipeline
        self.settings = settings
        self.metrics = metrics
        # environment -> (deployment id, version): started deployments polling saw arrive, until a
        # healthy poll of that version completes them. Memory only: after a restart a watch or the
        # pipeline's own outcome still ends them.
        self.awaiting: dict[str, tuple[str, str]] = {}

    async def record(
        self,
        event_type: EventType,
        environment: str,
        now: datetime,
        *,
        version: str | None = None,
        to_version: str | None = None,
        deployment_id: str | None = None,
        event_id: str | None = None,
        initiated_by: str | None = None,
        duration: str | float | None = None,
        error: str | None = None,
        metadata: Mapping[str, str] | None = None,
        timestamp: datetime | None = None,
    ) -> tuple[DeploymentEvent, Recorded]:
        """Validate (EventError names the field), attach to its deployment (``core.rollouts``),
        store and, when new, notify and forward. An event already stored (same id) is updated with
        what it adds, or refused (EventConflict) when it contradicts the stored one."""
        version = canonical(version)
        ts = timestamp or now
        same: Sequence[DeploymentEvent] = ()
        if deployment_id is not None:
            same = await self.store.events_of_deployment(deployment_id)
            _consistent(deployment_id, same, event_type, environment, version)
        elif environment in self.settings.environments and version is not None:
            window = self.settings.deployments.window
            known = await self.store.deployment_events(environment=environment, since=ts - window)
            if event_type is EventType.ROLLBACK:
                known = [*known, *await self.store.latest_deployment_of(environment, version)]
            deployment_id = attach(event_type, environment, version, ts, known, window)
            same = [e for e in known if e.deployment_id == deployment_id] if deployment_id else ()
        event = build_event(
            type=event_type,
            environment=environment,
            now=now,
            known_environments=list(self.settings.environments),
            entropy=uuid.uuid4().hex[:6],
            version=version,
            to_version=to_version,
            event_id=event_id,
            deployment_id=deployment_id,
            initiated_by=initiated_by,
            duration=duration,
            error=error,
            metadata=metadata,
            timestamp=timestamp,
            same_deployment=same,
        )
        if await self.store.add_deployment_event(event, now):
            await self.announce(event, now)
            return event, Recorded.CREATED
        stored = await self.store.get_deployment_event(event.id) or event
        merged = merge(stored, event)  # EventConflict when it contradicts what is stored
        if merged is not None:
            await self.store.update_deployment_event(merged)
            log.info("deployment_event_updated", env=environment, event_id=event.id)
            stored = merged
        # Announcing is idempotent per event id: a re-sent event whose first announcement
        # failed half-way (storage blip after the event was stored) is announced now.
        await self._notify_and_forward(stored, now)
        return stored, Recorded.UPDATED if merged is not None else Recorded.UNCHANGED

    async def announce(self, event: DeploymentEvent, now: datetime) -> None:
        """Notify through routing, forward to the central log, count. Idempotent per event id."""
        log.info(
            "deployment_recorded",
            env=event.environment,
            type=event.type.value,
            version=event.version,
            deployment_id=event.deployment_id,
            flags=list(event.flags) or None,
        )
        if self.metrics is not None:
            self.metrics.count(event, now)  # others' events: counted as the poller follows storage
        await self._notify_and_forward(event, now)

    async def _notify_and_forward(self, event: DeploymentEvent, now: datetime) -> None:
        ended: tuple[Alert, ...] = ()
        if event.type in _ENDS_START:
            same = await self.store.events_of_deployment(event.deployment_id)
            ended = superseded_starts(event, same, self.settings, now)
        await self.pipeline.notify(
            event_alert(event, self.settings), NotificationKind.EVENT, event.id, supersedes=ended
        )
        if self.settings.deployments.forwarding:
            record = event_to_record(event)
            alert = Alert(
                alert_key("deployment_log", event.environment, event.id),
                "deployment_log",
                event.environment,
                "info",
                AlertState.FIRING,
                event.id,
                event.ts,
                details={"record": record},
            )
            note = Notification(f"forward-{event.id}", NotificationKind.EVENT, FORWARD_SINK, (alert,), now)
            await self.pipeline.send_to(note, FORWARD_SINK)

    async def observed(
        self, environment: str, previous: str | None, version: str, now: datetime, *, healthy: bool
    ) -> bool:
        """Polling saw a new version. It belongs to a deployment reported in the window (its start
        is completed once a healthy poll verifies it), or to a rollback to it; otherwise it is a
        deployment nobody reported, recorded as ``observed``. Returns True when one was recorded."""
        if previous is None:
            return False  # first sighting since install: nothing is known to have changed
        version = canonical(version) or version
        window = self.settings.deployments.window
        known = await self.store.deployment_events(environment=environment, since=now - window)
        found = attach(EventType.OBSERVED, environment, version, now, known, window)
        if found is not None:
            rollout = Rollout(found, tuple(e for e in known if e.deployment_id == found))
            if rollout.open and rollout.has(EventType.START):
                self.awaiting[environment] = (found, version)
                await self.polled(environment, version, healthy, now)
            return False
        if any(
            w.environment == environment and w.expected_version == version
            for w in await self.store.active_watches()
        ):
            return False  # a watch is waiting for exactly this: it records the outcome
        stamp = now.strftime("%Y%m%d-%H%M%S")
        await self.record(
            EventType.OBSERVED,
            environment,
            now,
            version=version,
            # entropy: two changes within one second are two deployments
            deployment_id=f"observed-{environment}-{stamp}-{uuid.uuid4().hex[:6]}",
            metadata={"previousVersion": previous},
        )
        return True

    async def incident_context(self, environment: str, at: datetime) -> dict[str, object] | None:
        """The deployment an incident of ``environment`` starting ``at`` belongs to
        (``core.rollouts.incident_context``): read when an incident opens, which is rare."""
        d = self.settings.deployments
        known = await self.store.deployment_events(environment=environment, since=at - d.window)
        watches = [
            (w.deployment_id, w.expected_version, w.started_at)
            for w in await self.store.active_watches()
            if w.environment == environment
        ]
        return incident_context(at, known, watches, d.alert_grace, d.incident_link_window)

    async def polled(self, environment: str, version: str | None, healthy: bool, now: datetime) -> None:
        """Every poll: a started deployment whose version polling now sees answering healthy is
        complete (verified by polling), unless a watch of it is running, which validates it."""
        awaited = self.awaiting.get(environment)
        if awaited is None:
            return
        deployment_id, expected = awaited
        if canonical(version) != expected:
            if version is not None:
                self.awaiting.pop(environment, None)  # another version came: not this deployment's
            return
        if not healthy:
            return
        self.awaiting.pop(environment, None)
        watch = await self.store.get_watch(deployment_id)
        if watch is not None and watch.state == "watching":
            return
        events = await self.store.events_of_deployment(deployment_id)
        if not Rollout(deployment_id, tuple(events)).open:
            return
        start = next((e.ts for e in events if e.type is EventType.START), now)
        await self.record(
            EventType.SUCCESS,
            environment,
            now,
            version=expected,
            deployment_id=deployment_id,
            duration=max((now - start).total_seconds(), 0.0),
            metadata={VERIFIED_BY: "polling"},
        )
