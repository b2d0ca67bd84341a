"""Deployment events, their validation, history summaries and DORA figures. Pure: plain values in,
plain values out; storage and HTTP live elsewhere.

The wire/JSONL format is the guide's ``deployment-history.jsonl`` record: ``id``, ``type``,
``timestamp``, ``environment``, ``version``, ``initiatedBy``, ``duration``, ``error``, ``status``,
``fromVersion``, ``toVersion`` (plus ``deploymentId``, ``metadata`` and ``flags``, which we add).
We write ``timestamp`` in UTC with ``Z`` and ``duration`` as a number of seconds (unambiguous for
other tools); on import we also take the guide's ``date -Iseconds`` offsets and ``"4m30s"`` strings.
Keys whose value is empty are left out, as the guide's records do. Reading and writing the file
is in ``core/history.py``, the figures in ``core/dora.py``.

Ids: a deployment is ``deploy-{env}-%Y%m%d-%H%M%S-{entropy}`` (UTC; ``rollback-…`` for a rollback),
the guide's form plus a few random characters so that two in the same second do not collide. An
event's id defaults to ``{deployment_id}-{start|success|failure|rollback|observed}``, so re-sending
the same event for the same deployment gives the same id and storage can ignore it."""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from umig_monitor.core import timetext
from umig_monitor.core.versions import InvalidVersion, parse_version


class EventType(enum.StrEnum):
    START = "deployment_start"
    SUCCESS = "deployment_success"
    FAILURE = "deployment_failure"
    ROLLBACK = "rollback"
    OBSERVED = "observed"  # polling saw the version change with no reported deployment

    @classmethod
    def from_cli(cls, word: str) -> EventType:
        """``start|success|failure|rollback|observed`` or the full type names."""
        aliases = {"start": cls.START, "success": cls.SUCCESS, "failure": cls.FAILURE}
        if word in aliases:
            return aliases[word]
        return cls(word)


# The guide's status word for each event type.
STATUS = {
    EventType.START: "in_progress",
    EventType.SUCCESS: "completed",
    EventType.FAILURE: "failed",
    EventType.ROLLBACK: "rollback_initiated",
    EventType.OBSERVED: "observed",
}


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    id: str
    deployment_id: str
    environment: str
    type: EventType
    ts: datetime  # timezone-aware
    version: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    initiated_by: str | None = None
    duration_seconds: float | None = None
    error: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()  # e.g. "success_without_start", "imported"

    @property
    def status(self) -> str:
        return STATUS[self.type]


class EventError(ValueError):
    """A bad event; ``field`` names the offending field in the API's names (``toVersion``,
    ``initiatedBy``, ``id`` for the deployment id, ``eventId``), for a 400 or exit 2."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass(frozen=True, slots=True)
class Summary:
    """The guide's history summary, done with datetimes and without dividing by zero."""

    total: int  # deployments (distinct deployment ids) in the window
    successful: int
    failed: int
    rollbacks: int
    in_progress: int
    observed: int
    success_rate: float | None  # successful / (successful + failed + rollbacks); None when none finished

    def to_record(self) -> dict[str, Any]:
        """The API's and ``history --json``'s summary object."""
        return {
            "total": self.total,
            "successful": self.successful,
            "failed": self.failed,
            "rollbacks": self.rollbacks,
            "inProgress": self.in_progress,
            "observed": self.observed,
            "successRate": self.success_rate,
        }


@dataclass(frozen=True, slots=True)
class Dora:
    """DORA figures for one environment over a window; None where there is no data to measure."""

    environment: str
    window_days: float
    deployments: int
    deployment_frequency_per_day: float
    change_failure_rate: float | None
    time_to_restore_median_s: float | None
    time_to_restore_mean_s: float | None
    restores: int
    lead_time_median_s: float | None
    lead_time_mean_s: float | None
    lead_time_samples: int
    failed_changes: int = 0  # finished deployments followed by a failure, rollback or linked incident
    incidents: int = 0  # health incidents that started in the window
    linked_incidents: int = 0  # of those, started soon after a deployment (linked to it)


SHORT_NAME = {  # the word in event ids and the CLI
    EventType.START: "start",
    EventType.SUCCESS: "success",
    EventType.FAILURE: "failure",
    EventType.ROLLBACK: "rollback",
    EventType.OBSERVED: "observed",
}
TERMINAL = frozenset({EventType.SUCCESS, EventType.FAILURE, EventType.ROLLBACK})
SUCCESS_WITHOUT_START = "success_without_start"  # a success/failure whose deployment has no start
IMPORTED = "imported"  # read from a guide-format record (no deploymentId); ids were derived
_ENTROPY = re.compile(r"[0-9A-Za-z]*", re.ASCII)
_ID = re.compile(r"[^\s/]{1,200}")  # ids end up in URLs (/api/v1/deployments/{id}) and file lines


def new_deployment_id(environment: str, now: datetime, entropy: str, *, rollback: bool = False) -> str:
    """``deploy-uat-20241024-143000-3f9a1c``; ``rollback-…`` when ``rollback``. An empty entropy
    gives the guide's exact form."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not _ENTROPY.fullmatch(entropy):
        raise ValueError(f"entropy must be letters and digits, got '{entropy}'")
    stamp = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    suffix = f"-{entropy}" if entropy else ""
    return f"{'rollback' if rollback else 'deploy'}-{environment}-{stamp}{suffix}"


def parse_duration_seconds(value: str | float | None) -> float | None:
    """Seconds as a number, or text: ``270``, ``270s``, ``4m``, ``4m30s``, ``1h 5m``, ``1d``.
    None or blank (the guide's script writes ``""`` when no duration was given) -> None.
    Raises ValueError for anything else, including negative, non-finite or absurd values."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return timetext.parse_duration(value).total_seconds()


def parse_timestamp(text: str) -> datetime:
    """ISO-8601 with a UTC offset (``Z``, ``+02:00`` as ``date -Iseconds`` writes) -> aware UTC."""
    return timetext.parse_timestamp(text)


def format_timestamp(ts: datetime) -> str:
    """UTC with ``Z``: ``2024-10-24T12:30:00Z``; microseconds kept when present (lossless)."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


MAX_EVENT_TEXT = 4096  # characters of an error, a name or a metadata value
MAX_METADATA = 32  # metadata entries
MAX_METADATA_KEY = 64


def shown(value: object) -> str:
    """``value`` for an error message: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


def _text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(name, f"must be a string, got {shown(value)}")
    if len(value) > MAX_EVENT_TEXT:
        raise EventError(name, f"longer than {MAX_EVENT_TEXT} characters")
    return value.strip() or None


def _version(value: object, name: str, required_for: EventType | None) -> str | None:
    """The canonical version string (``v`` prefix dropped), so that a start reported as ``v1.2.0``
    and a success reported as ``1.2.0`` are the same version."""
    text = _text(value, name)
    if text is None:
        if required_for is not None:
            raise EventError(name, f"required for {required_for.value}")
        return None
    try:
        return str(parse_version(text))
    except InvalidVersion as exc:
        raise EventError(name, str(exc)) from None


def _identifier(value: object, name: str) -> str:
    text = _text(value, name)
    if text is None or not _ID.fullmatch(text):
        raise EventError(name, f"must be 1-200 characters without spaces or '/', got {shown(value)}")
    return text


def _metadata(metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise EventError("metadata", "must be a mapping of strings to strings")
    if len(metadata) > MAX_METADATA:
        raise EventError("metadata", f"more than {MAX_METADATA} entries")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise EventError("metadata", f"{shown(key)}: keys and values must be strings, got {shown(value)}")
        if not 0 < len(key) <= MAX_METADATA_KEY or len(value) > MAX_EVENT_TEXT:
            raise EventError(
                "metadata",
                f"{shown(key)}: keys are 1-{MAX_METADATA_KEY} characters, values at most {MAX_EVENT_TEXT}",
            )
        out[key] = value
    if "commit_time" in out:
        try:
            parse_timestamp(out["commit_time"])
        except ValueError:
            raise EventError(
                "metadata.commit_time",
                f"{shown(out['commit_time'])} is not ISO-8601 with a UTC offset, e.g. 2024-10-24T12:30:00Z",
            ) from None
    return out


def build_event(
    *,
    type: EventType,
    environment: str,
    now: datetime,
    known_environments: Collection[str],
    entropy: str,
    version: str | None = None,
    to_version: str | None = None,
    from_version: str | None = None,
    event_id: str | None = None,
    deployment_id: str | None = None,
    initiated_by: str | None = None,
    duration: str | float | None = None,
    error: str | None = None,
    metadata: Mapping[str, str] | None = None,
    timestamp: datetime | None = None,
    same_deployment: Sequence[DeploymentEvent] = (),
) -> DeploymentEvent:
    """Validate one reported event; EventError names the offending field.

    ``same_deployment`` is what storage knows of this deployment: its events when ``deployment_id``
    is given, else the latest open start for this environment and version. A success or failure
    whose deployment has no start is accepted and flagged ``success_without_start``, never refused:
    the deployment happened whether or not the pipeline reported its start. A rollback goes from
    ``version`` (or ``from_version``; the event's ``version`` is the one rolled back) to
    ``to_version``; any event may carry ``from_version`` (e.g. the version an observed change
    replaced). ``timestamp`` defaults to ``now``; both are stored in UTC."""
    if environment not in known_environments:
        known = ", ".join(sorted(known_environments)) or "none configured"
        raise EventError("environment", f"unknown environment '{environment}' (known: {known})")
    ts = timestamp if timestamp is not None else now
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise EventError("timestamp", "must carry a UTC offset (a timezone-aware time)")
    ts = ts.astimezone(UTC)

    from_v = _version(from_version, "fromVersion", None)
    to_v: str | None = None
    if type is EventType.ROLLBACK:
        ver = _version(version, "version", None)
        if from_v is not None and ver is not None and from_v != ver:
            raise EventError(
                "fromVersion", f"'{from_v}' differs from version '{ver}' (both name the version rolled back)"
            )
        ver = from_v = from_v or ver
        if ver is None:
            raise EventError("fromVersion", "required for rollback: the version being rolled back")
        to_v = _version(to_version, "toVersion", type)
        if to_v == ver:
            raise EventError("toVersion", f"a rollback from {ver} to {to_v} changes nothing")
    else:
        ver = _version(version, "version", type)
        if _text(to_version, "toVersion") is not None:
            raise EventError("toVersion", "only a rollback has a to_version")

    err = _text(error, "error")
    if type is EventType.FAILURE and err is None:
        raise EventError("error", "required for deployment_failure: say what went wrong")
    try:
        seconds = parse_duration_seconds(duration)
    except ValueError as exc:
        raise EventError("duration", str(exc)) from None

    flags: list[str] = []
    if deployment_id is not None:
        deployment_id = _identifier(deployment_id, "id")
        started = any(
            e.type in (EventType.START, EventType.OBSERVED) and e.deployment_id == deployment_id
            for e in same_deployment
        )
        if type in (EventType.SUCCESS, EventType.FAILURE) and not started:
            flags.append(SUCCESS_WITHOUT_START)
    elif type in (EventType.SUCCESS, EventType.FAILURE):
        starts = [
            e
            for e in same_deployment
            if e.type is EventType.START and e.environment == environment and e.version == ver
        ]
        if starts:
            deployment_id = max(starts, key=lambda e: e.ts).deployment_id
        else:
            deployment_id = new_deployment_id(environment, ts, entropy)
            flags.append(SUCCESS_WITHOUT_START)
    else:
        deployment_id = new_deployment_id(environment, ts, entropy, rollback=type is EventType.ROLLBACK)

    return DeploymentEvent(
        id=_identifier(event_id, "eventId")
        if event_id is not None
        else f"{deployment_id}-{SHORT_NAME[type]}",
        deployment_id=deployment_id,
        environment=environment,
        type=type,
        ts=ts,
        version=ver,
        from_version=from_v,
        to_version=to_v,
        initiated_by=_text(initiated_by, "initiatedBy"),
        duration_seconds=seconds,
        error=err,
        metadata=_metadata(metadata),
        flags=tuple(flags),
    )
