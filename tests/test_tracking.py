"""Which alerts a sequence of polls raises and resolves: incidents, the guide's checks, development
churn, the test-data action, version changes, and the state rebuilt after a restart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.alerts import Alert, AlertState
from umig_monitor.core.assess import Check
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.tracking import Policy, Tracker, observe, seed

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
PROD = Policy("production", "production", "critical", failure_threshold=3, success_threshold=2)
DEV = Policy("development", "development", "warning", 3, 2, regenerate_test_data=True)


def sample(i: int, outcome: Outcome = Outcome.HEALTHY, env: str = "production", **kw: object) -> HealthSample:
    base: dict[str, object] = {
        "umig_status": "healthy",
        "version": "1.1.2",
        "components": {"database": "healthy"},
    }
    if not outcome.answered:
        base = {"error": "connection failed: refused"}
    elif outcome is Outcome.UNHEALTHY:
        base["umig_status"] = "unhealthy"
    base.update(kw)
    return HealthSample(env, T0 + timedelta(seconds=30 * i), outcome, **base)  # type: ignore[arg-type]


def feed(
    samples: Iterable[tuple[HealthSample, list[Check]]], policy: Policy = PROD, tracker: Tracker | None = None
) -> tuple[Tracker, list[tuple[int, str, bool]]]:
    tracker = tracker or Tracker()
    seen = []
    for i, (s, checks) in enumerate(samples):
        tracker, out = observe(tracker, s, checks, policy)
        seen += [(i, e.type, e.firing) for e in out.events]
    return tracker, seen


def outcomes(seq: str) -> list[tuple[HealthSample, list[Check]]]:
    kinds = {
        "+": Outcome.HEALTHY,
        "x": Outcome.UNHEALTHY,
        "u": Outcome.UNREACHABLE,
        "t": Outcome.TIMEOUT,
        "a": Outcome.AUTH_ERROR,
        "i": Outcome.INVALID_RESPONSE,
        "d": Outcome.DEGRADED,
    }
    return [(sample(i, kinds[c]), []) for i, c in enumerate(seq)]


@pytest.mark.parametrize(
    ("seq", "events"),
    [
        ("++++", [(1, "environment_recovered", False)]),  # start-up resolves a leftover, if any
        ("++xxxx", [(1, "environment_recovered", False), (4, "environment_unhealthy", True)]),
        ("++uuuuuuuu", [(1, "environment_recovered", False), (4, "environment_unreachable", True)]),
        ("++ttt", [(1, "environment_recovered", False), (4, "environment_unreachable", True)]),
        ("++aaa", [(1, "environment_recovered", False), (4, "environment_unhealthy", True)]),
        ("++iii", [(1, "environment_recovered", False), (4, "environment_unhealthy", True)]),
        ("++ddddd", [(1, "environment_recovered", False)]),  # degraded is up, with failed checks
        ("++uux+", [(1, "environment_recovered", False), (4, "environment_unhealthy", True)]),  # as of now
        (
            "++xxx++",
            [
                (1, "environment_recovered", False),
                (4, "environment_unhealthy", True),
                (6, "environment_recovered", False),
            ],
        ),
        ("++x+x+x+x+", [(1, "environment_recovered", False)]),  # flapping: nothing
    ],
)
def test_incidents(seq: str, events: list[tuple[int, str, bool]]) -> None:
    assert feed(outcomes(seq))[1] == events


def test_one_alert_per_incident_even_for_hours() -> None:
    _, events = feed(outcomes("++" + "u" * 600))  # five hours down at 30 s
    assert [e for e in events if e[2]] == [(4, "environment_unreachable", True)]


def test_incident_event_fields() -> None:
    tracker, _ = feed(outcomes("++"))
    events = []
    for i in range(2, 5):
        tracker, out = observe(tracker, sample(i, Outcome.TIMEOUT, error="no answer within 10s"), [], PROD)
        events += out.events
    [event] = events
    assert event.key == "environment_health/production/"
    assert (event.severity, event.environment) == ("critical", "production")
    assert event.starts_at == T0 + timedelta(seconds=60)  # the first failure, not the third
    assert "no answer within 10s" in event.summary
    assert event.labels["kind"] == "production"


HIGH = [Check("high_error_rate", 0.09, 0.05)]


@pytest.mark.parametrize(
    ("checks", "events"),
    [
        ([[]] * 4, []),
        ([[], [], HIGH, HIGH, HIGH, HIGH], [(4, "high_error_rate", True)]),
        ([HIGH, HIGH, HIGH, [], []], [(2, "high_error_rate", True), (4, "high_error_rate", False)]),
        ([HIGH, [], HIGH, [], HIGH, []], []),
        ([[Check("high_db_connections", 85, 80)]] * 3, [(2, "high_db_connections", True)]),
        ([[Check("component_unhealthy", "database", "healthy")]] * 3, [(2, "component_unhealthy", True)]),
    ],
)
def test_guide_checks_are_incidents_too(
    checks: list[list[Check]], events: list[tuple[int, str, bool]]
) -> None:
    samples = [(sample(i, Outcome.DEGRADED if c else Outcome.HEALTHY), c) for i, c in enumerate(checks)]
    _, seen = feed(samples)
    assert [e for e in seen if e[1] != "environment_recovered"] == events


def test_check_severities() -> None:
    tracker = Tracker()
    got = {}
    checks = [
        Check("high_error_rate", 0.09, 0.05),
        Check("slow_response", 4000, 3000),
        Check("high_db_connections", 99, 80),
        Check("orchestrator_inactive", "stopped", "active"),
    ]
    for i in range(3):
        tracker, out = observe(tracker, sample(i, Outcome.DEGRADED), checks, PROD)
        got.update({e.type: e.severity for e in out.events if e.firing})
    assert got == {
        "high_error_rate": "critical",
        "slow_response": "warning",
        "high_db_connections": "warning",
        "orchestrator_inactive": "critical",
    }


def test_checks_are_not_judged_on_failed_polls() -> None:
    samples = [(sample(0, Outcome.DEGRADED), HIGH), (sample(1, Outcome.DEGRADED), HIGH)]
    samples += [(sample(i, Outcome.UNREACHABLE), []) for i in range(2, 8)]
    tracker, seen = feed(samples)
    assert ("high_error_rate", False) not in [(t, f) for _, t, f in seen]
    assert tracker.states["high_error_rate/production/"].failures == 2


def test_development_version_churn() -> None:
    samples: list[tuple[HealthSample, list[Check]]] = [
        (sample(i, env="development", version=f"1.3.0-dev+ci.{i // 2}"), []) for i in range(14)
    ]
    _, seen = feed(samples, DEV)
    churn = [e for e in seen if e[1] == "version_churn"]
    # The 6th distinct version arrives at poll 10; three polls over the limit open the incident.
    assert churn == [(1, "version_churn", False), (12, "version_churn", True)]


def test_churn_only_in_development() -> None:
    samples: list[tuple[HealthSample, list[Check]]] = [(sample(i, version=f"1.{i}.0"), []) for i in range(20)]
    assert not [e for e in feed(samples)[1] if e[1] == "version_churn"]


def test_test_data_regenerated_once_per_database_incident() -> None:
    tracker = Tracker()
    actions = []
    statuses = [
        "healthy",
        "unhealthy",
        "unhealthy",
        "unhealthy",
        "healthy",
        "healthy",
        "degraded",
        "degraded",
    ]
    for i, db in enumerate(statuses):
        s = sample(
            i,
            Outcome.UNHEALTHY if db != "healthy" else Outcome.HEALTHY,
            env="development",
            components={"database": db},
        )
        tracker, out = observe(tracker, s, [], DEV)
        actions.append(out.regenerate_test_data)
    assert [i for i, a in enumerate(actions) if a] == [1, 6]


@pytest.mark.parametrize("policy", [PROD, replace(DEV, regenerate_test_data=False)])
def test_test_data_action_needs_development_and_opt_in(policy: Policy) -> None:
    s = sample(0, Outcome.UNHEALTHY, env=policy.environment, components={"database": "unhealthy"})
    assert not observe(Tracker(), s, [], policy)[1].regenerate_test_data


def test_version_changes() -> None:
    tracker = Tracker()
    changes = []
    for i, version in enumerate(["1.1.2", "1.1.2", None, "1.2.0", "1.2.0"]):
        s = sample(i, version=version) if version else sample(i, Outcome.UNREACHABLE)
        tracker, out = observe(tracker, s, [], PROD)
        changes.append(out.version_changed)
    assert changes == [(None, "1.1.2"), None, None, ("1.1.2", "1.2.0"), None]


def test_version_changes_are_announced_until_they_flap() -> None:
    """Every poll (30 s apart) a new version: the first sighting and three changes are announced,
    the fourth starts flapping (one notice), the rest fold into the next window's notice."""
    tracker = Tracker()
    said = []
    for i in range(15):
        tracker, out = observe(tracker, sample(i, version=f"1.2.{i}"), [], PROD)
        notice = out.flapping
        said.append((out.announce_version, (notice.changes, notice.first) if notice else None))
    assert said == [(True, None)] * 4 + [(False, (4, True))] + [(False, None)] * 10
    # No change, a window (10 min = 20 polls) after the first notice: the folded ten.
    tracker, out = observe(tracker, sample(24, version="1.2.14"), [], PROD)
    assert out.version_changed is None
    assert out.flapping is not None
    assert (out.flapping.changes, out.flapping.total) == (10, 14)


def test_an_outage_is_no_version_change() -> None:
    tracker = Tracker()
    for i, version in enumerate(["1.1.2", None, "1.1.2", None, "1.1.2", None, "1.1.2"]):
        s = sample(i, version=version) if version else sample(i, Outcome.UNREACHABLE)
        tracker, out = observe(tracker, s, [], PROD)
        assert out.flapping is None
        assert out.version_changed is None or i == 0


def active(key: str, kind: str) -> Alert:
    return Alert(key, kind, "production", "critical", AlertState.FIRING, "left open", T0 - timedelta(hours=1))


def test_restart_resolves_incidents_that_cleared_while_down() -> None:
    tracker = seed([active("environment_health/production/", "environment_unhealthy")], [], "1.1.2", T0)
    _, seen = feed(outcomes("++"), tracker=tracker)
    assert seen == [(1, "environment_recovered", False)]


def test_restart_does_not_raise_an_open_incident_again() -> None:
    tracker = seed([active("environment_health/production/", "environment_unhealthy")], [], "1.1.2", T0)
    _, seen = feed(outcomes("xxxxxx"), tracker=tracker)
    assert seen == []


def test_seed_ignores_alerts_owned_by_other_jobs() -> None:
    tracker = seed([active("version_drift/production/major", "version_drift")], ["1.1.2"], "1.1.2", T0)
    assert tracker.states == {}
    assert tracker.versions == ("1.1.2",)


TLS = replace(PROD, tls=True, certificate_warning=timedelta(days=21), certificate_critical=timedelta(days=7))
DAY = timedelta(days=1)


def cert_polls(days_left: str) -> list[tuple[HealthSample, list[Check]]]:
    """One poll per entry: days until the certificate expires, or '-' when no connection was made
    (the poll failed before TLS)."""
    out: list[tuple[HealthSample, list[Check]]] = []
    for i, left in enumerate(days_left.split()):
        if left == "-":
            out.append((sample(i, Outcome.UNREACHABLE), []))
        else:
            expiry = T0 + timedelta(seconds=30 * i) + float(left) * DAY
            out.append((sample(i, tls_cert_expiry=expiry), []))
    return out


def cert_events(days_left: str, policy: Policy = TLS) -> list[tuple[int, str, bool]]:
    """(poll, severity, firing) of every certificate alert event the polls give."""
    tracker = Tracker()
    seen: list[tuple[int, str, bool]] = []
    for i, (s, checks) in enumerate(cert_polls(days_left)):
        tracker, out = observe(tracker, s, checks, policy)
        seen += [(i, e.severity, e.firing) for e in out.events if e.type == "certificate_expiring"]
    return seen


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [
        ("90 90 90 90", []),
        # three polls within 21 days open the warning (failure_threshold 3), two clear it
        ("20 20 20 20", [(2, "warning", True)]),
        ("20 20 20 90 90", [(2, "warning", True), (4, "warning", False)]),  # renewed
        ("20 20 90 20 20", []),  # one good poll between: no incident yet
        # failed polls read no certificate and change nothing, either way
        ("20 - 20 - 20", [(4, "warning", True)]),
        ("20 20 20 - - - - 90 90", [(2, "warning", True), (8, "warning", False)]),
        # a certificate that turns critical resolves its warning and opens the critical alert
        ("20 20 20 6 6 6", [(2, "warning", True), (4, "warning", False), (5, "critical", True)]),
        ("6 6 6 90 90", [(2, "critical", True), (4, "critical", False)]),
        ("21 21 21", [(2, "warning", True)]),  # at the threshold counts
        ("-1 -1 -1", [(2, "critical", True)]),  # expired (only readable without verification)
    ],
)
def test_certificate_expiring(days_left: str, expected: list[tuple[int, str, bool]]) -> None:
    assert cert_events(days_left) == expected


def test_certificate_thresholds_are_the_environments() -> None:
    short = replace(TLS, certificate_warning=timedelta(days=3), certificate_critical=timedelta(days=1))
    assert cert_events("20 20 20 2 2 2", short) == [(5, "warning", True)]


def test_certificate_alert_fields() -> None:
    tracker, _ = feed(cert_polls("10 10"), TLS)
    s, _ = cert_polls("10 10 10")[2]
    _, out = observe(tracker, s, [], TLS)
    (event,) = out.events
    assert event.key == "certificate_expiring/production/warning"
    assert (event.type, event.severity, event.environment) == (
        "certificate_expiring",
        "warning",
        "production",
    )
    assert event.summary == "production: TLS certificate expires 2026-05-14 08:01 UTC (in 10d)"
    assert s.tls_cert_expiry is not None
    assert event.details["expires_at"] == s.tls_cert_expiry.isoformat()
    assert event.labels == {"kind": "production"}


def test_certificate_alert_resolves_when_no_longer_https() -> None:
    tracker, _ = feed(cert_polls("6 6 6"), TLS)
    plain = replace(TLS, tls=False)
    _, seen = feed(outcomes("++"), plain, tracker)
    assert seen == [(1, "certificate_expiring", False)]


def test_certificate_is_not_a_guide_check() -> None:
    """The guide's checks close when a poll shows them passing; a certificate alert is not one."""
    tracker, _ = feed(cert_polls("6 6 6"), TLS)
    _, seen = feed(outcomes("+++"), TLS, tracker)  # answered polls that read no certificate
    assert seen == []


def test_restart_keeps_an_open_certificate_alert() -> None:
    firing = Alert(
        "certificate_expiring/production/critical",
        "certificate_expiring",
        "production",
        "critical",
        AlertState.FIRING,
        "expires soon",
        T0,
    )
    tracker = seed([firing], [], "1.1.2", T0)
    _, seen = feed(cert_polls("6 6 6"), TLS, tracker)
    assert [e for e in seen if e[1] == "certificate_expiring"] == []  # not raised again
    _, seen = feed(cert_polls("90 90"), TLS, tracker)
    assert [e for e in seen if e[1] == "certificate_expiring"] == [(1, "certificate_expiring", False)]
