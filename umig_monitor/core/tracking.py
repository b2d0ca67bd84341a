"""What one poll means for an environment's alerts: the health incident, the guide's checks,
development version churn, the test-data action and version changes (announced one by one, or
folded into one flapping notice per window, see core/flapping.py). Pure; the job keeps the
``Tracker`` between polls and seeds it from storage after a restart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from umig_monitor.core import certificates
from umig_monitor.core.alerts import Alert, AlertEvent, Severity, alert_key
from umig_monitor.core.assess import Check
from umig_monitor.core.flapping import Flap, FlapNotice, FlapPolicy
from umig_monitor.core.flapping import step as flap_step
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.health_state import Change, Phase, State, step

HEALTH = "environment_health"
_CHECK_NAMES = ("high_error_rate", "orchestrator_inactive", "slow_response", "high_db_connections")
CHURN_WINDOW = 100  # the guide: distinct versions in the last 100 checks
CHURN_LIMIT = 5  # ... more than 5 is worth an info alert
_UNREACHABLE = (Outcome.UNREACHABLE, Outcome.TIMEOUT)
# Alert kinds this module raises and resolves (other jobs own drift, baselines, deployments).
OWNED_KINDS = frozenset(
    {HEALTH, "version_churn", "component_unhealthy", certificates.CERTIFICATE_EXPIRING, *_CHECK_NAMES}
)
_CERT_PREFIX = f"{certificates.CERTIFICATE_EXPIRING}/"
# The alert types those kinds fire as (the health incident is unhealthy or unreachable).
RAISED_TYPES = (
    "environment_unhealthy",
    "environment_unreachable",
    "component_unhealthy",
    "version_churn",
    certificates.CERTIFICATE_EXPIRING,
    *_CHECK_NAMES,
)
# The guide's own severities for its checks; None means the environment's severity.
_CHECK_SEVERITY: Mapping[str, Severity | None] = {
    "high_error_rate": None,
    "orchestrator_inactive": None,
    "slow_response": "warning",
    "high_db_connections": "warning",
}


@dataclass(frozen=True, slots=True)
class Policy:
    environment: str
    kind: str
    severity: Severity
    failure_threshold: int
    success_threshold: int
    regenerate_test_data: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    tls: bool = False  # an https environment: its certificate expiry is watched
    certificate_warning: timedelta = timedelta(days=21)
    certificate_critical: timedelta = timedelta(days=7)
    flapping: FlapPolicy = field(default_factory=FlapPolicy)


@dataclass(frozen=True, slots=True)
class Tracker:
    states: Mapping[str, State] = field(default_factory=dict)
    versions: tuple[str, ...] = ()
    last_version: str | None = None
    regenerated: bool = False  # test data regenerated during the current database incident
    flap: Flap = field(default_factory=Flap)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What the job must do after a poll."""

    events: list[AlertEvent]
    regenerate_test_data: bool = False
    version_changed: tuple[str | None, str] | None = None  # (previous, new)
    announce_version: bool = False  # version_changed is announced on its own (not flapping)
    flapping: FlapNotice | None = None  # a window of flapping to notify


def seed(
    active: Iterable[Alert], versions: Iterable[str], last_version: str | None, now: datetime
) -> Tracker:
    """Rebuild a tracker after a restart: alerts still firing in storage start as open incidents,
    so the next good polls resolve them and bad ones do not raise them again."""
    states = {
        a.key: State(phase=Phase.DOWN, since=a.starts_at, first_failure=a.starts_at)
        for a in active
        if a.key.split("/", 1)[0] in OWNED_KINDS
    }
    return Tracker(states=states, versions=tuple(versions)[-CHURN_WINDOW:], last_version=last_version)


def _labels(policy: Policy) -> dict[str, str]:
    return {**policy.labels, "kind": policy.kind}


def observe(
    tracker: Tracker, sample: HealthSample, checks: list[Check], policy: Policy
) -> tuple[Tracker, Outcomes]:
    env = policy.environment
    now = sample.ts
    states = dict(tracker.states)
    events: list[AlertEvent] = []

    def advance(key: str, ok: bool, detail: str | None) -> Change | None:
        new, transition = step(
            states.get(key, State()),
            ok,
            now,
            failure_threshold=policy.failure_threshold,
            success_threshold=policy.success_threshold,
            detail=detail,
        )
        states[key] = new
        return transition.change if transition else None

    def emit(
        key: str, change: Change | None, kind: str, severity: Severity, summary: str, **details: object
    ) -> None:
        if change is Change.OPENED:
            started = states[key].first_failure or now
            events.append(
                AlertEvent(key, kind, env, severity, summary, now, True, details, _labels(policy), started)
            )
        elif change is Change.CLOSED:
            events.append(AlertEvent(key, kind, env, severity, summary, now, False, details, _labels(policy)))

    # The incident: the environment answers with a usable health document and umig.status healthy.
    health_key = alert_key(HEALTH, env)
    up = sample.outcome in (Outcome.HEALTHY, Outcome.DEGRADED)
    change = advance(health_key, up, sample.error or sample.outcome.value)
    if change is Change.OPENED:
        kind = "environment_unreachable" if sample.outcome in _UNREACHABLE else "environment_unhealthy"
        emit(
            health_key,
            change,
            kind,
            policy.severity,
            f"{env} is {sample.outcome.value}: {sample.error or ''}".rstrip(": "),
            outcome=sample.outcome.value,
            error=sample.error,
            version=sample.version,
        )
    elif change is Change.CLOSED:
        emit(
            health_key,
            change,
            "environment_recovered",
            policy.severity,
            f"{env} recovered",
            version=sample.version,
        )

    # The guide's checks, each its own incident with the same flap control.
    if sample.outcome.answered:
        failing = {_check_key(env, c): c for c in checks}
        known = {k for k in states if k != health_key and not k.startswith(("version_churn/", _CERT_PREFIX))}
        for key in sorted(known | set(failing)):
            check = failing.get(key)
            change = advance(key, check is None, check.describe() if check else None)
            name = key.split("/", 1)[0]
            severity = _CHECK_SEVERITY.get(name, "warning") or policy.severity
            if change is Change.OPENED and check is not None:
                emit(
                    key,
                    change,
                    name,
                    severity,
                    f"{env}: {check.describe()}",
                    value=check.value,
                    limit=check.limit,
                )
            elif change is Change.CLOSED:
                emit(key, change, name, severity, f"{env}: {name} cleared")

    # Development: many distinct versions in the last checks is worth knowing (info).
    versions = tracker.versions
    if policy.kind == "development" and sample.version:
        versions = (*versions, sample.version)[-CHURN_WINDOW:]
        distinct = len(set(versions))
        key = alert_key("version_churn", env)
        change = advance(key, distinct <= CHURN_LIMIT, None)
        emit(
            key,
            change,
            "version_churn",
            "info",
            f"{env}: {distinct} versions in the last {len(versions)} checks"
            if change is Change.OPENED
            else f"{env}: version churn back to normal",
            distinct_versions=distinct,
        )

    # TLS: the earliest expiry of the certificates the environment presented, against two
    # thresholds, one alert per level (a certificate that turns critical resolves its warning).
    # A poll that read no certificate (no connection) changes nothing; an environment that is no
    # longer https resolves what it had.
    expiry = sample.tls_cert_expiry
    if expiry is not None or not policy.tls:
        current = (
            certificates.level(expiry, now, policy.certificate_warning, policy.certificate_critical)
            if expiry is not None and policy.tls
            else None
        )
        for cert_level in certificates.LEVELS:
            key = alert_key(certificates.CERTIFICATE_EXPIRING, env, cert_level)
            if key not in states and current != cert_level:
                continue  # nothing open, nothing to open
            change = advance(key, current != cert_level, None)
            when = certificates.expiry_text(expiry, now) if expiry is not None else None
            summary = f"{env}: TLS certificate expires {when}" if when else f"{env}: no longer https"
            emit(
                key,
                change,
                certificates.CERTIFICATE_EXPIRING,
                cert_level,
                summary,
                expires_at=expiry.isoformat() if expiry is not None else None,
            )

    # Development: regenerate test data once per database incident.
    database = sample.components.get("database")
    regenerated = tracker.regenerated and database != "healthy"
    regenerate = False
    if (
        database not in (None, "healthy")
        and policy.kind == "development"
        and policy.regenerate_test_data
        and not regenerated
    ):
        regenerate = regenerated = True

    version_changed = None
    last_version = tracker.last_version
    if sample.version and sample.version != last_version:
        version_changed = (last_version, sample.version)
        last_version = sample.version
    # Every poll, so that a window of flapping is notified when it ends; a first sighting is no change.
    changed = version_changed is not None and version_changed[0] is not None
    flap, decision = flap_step(tracker.flap, changed, now, policy.flapping)

    new = Tracker(
        states=states, versions=versions, last_version=last_version, regenerated=regenerated, flap=flap
    )
    announce = version_changed is not None and (decision.announce or not changed)
    return new, Outcomes(events, regenerate, version_changed, announce, decision.notice)


def _check_key(env: str, check: Check) -> str:
    if check.component is not None:
        return alert_key("component_unhealthy", env, check.component)
    return alert_key(check.name, env)


def incident(tracker: Tracker, environment: str) -> State | None:
    """The open health incident, if any."""
    state = tracker.states.get(alert_key(HEALTH, environment))
    return state if state is not None and state.phase is Phase.DOWN else None
