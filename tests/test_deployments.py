"""Deployment events: ids, validation (every error names its field), idempotent event ids, a
success without a start (accepted and flagged) and the duration and timestamp formats."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from umig_monitor.core.deployments import (
    SUCCESS_WITHOUT_START,
    DeploymentEvent,
    EventError,
    EventType,
    build_event,
    format_timestamp,
    new_deployment_id,
    parse_duration_seconds,
    parse_timestamp,
)

NOW = datetime(2024, 10, 24, 12, 30, 0, tzinfo=UTC)
ENVS = ("development", "uat", "production", "hotfix")
CEST = timezone(timedelta(hours=2))


def event(type: EventType, **kwargs: Any) -> DeploymentEvent:
    args: dict[str, Any] = {
        "environment": "uat",
        "now": NOW,
        "known_environments": ENVS,
        "entropy": "a1b2c3",
        "version": "1.2.0-rc.2",
    }
    args.update(kwargs)
    return build_event(type=type, **args)


@pytest.mark.parametrize(
    ("environment", "now", "entropy", "rollback", "expected"),
    [
        ("uat", NOW, "a1b2c3", False, "deploy-uat-20241024-123000-a1b2c3"),
        ("uat", NOW.astimezone(CEST), "a1b2c3", False, "deploy-uat-20241024-123000-a1b2c3"),  # UTC
        ("production", NOW, "a1b2c3", True, "rollback-production-20241024-123000-a1b2c3"),
        ("uat", NOW, "", False, "deploy-uat-20241024-123000"),  # the guide's exact form
    ],
)
def test_new_deployment_id(
    environment: str, now: datetime, entropy: str, rollback: bool, expected: str
) -> None:
    assert new_deployment_id(environment, now, entropy, rollback=rollback) == expected


def test_two_deployments_in_the_same_second_do_not_collide() -> None:
    assert new_deployment_id("uat", NOW, "aaaaaa") != new_deployment_id("uat", NOW, "bbbbbb")


@pytest.mark.parametrize(("now", "entropy"), [(NOW.replace(tzinfo=None), "abc"), (NOW, "a-b"), (NOW, "a b")])
def test_new_deployment_id_rejects_bad_input(now: datetime, entropy: str) -> None:
    with pytest.raises(ValueError, match=r"timezone-aware|letters and digits"):
        new_deployment_id("uat", now, entropy)


@pytest.mark.parametrize(
    ("type", "kwargs", "field", "says"),
    [
        (EventType.START, {"environment": "staging"}, "environment", "unknown environment 'staging'"),
        (EventType.START, {"known_environments": ()}, "environment", "none configured"),
        (EventType.START, {"version": None}, "version", "required for deployment_start"),
        (EventType.START, {"version": "  "}, "version", "required"),
        (EventType.SUCCESS, {"version": None}, "version", "required for deployment_success"),
        (EventType.FAILURE, {"version": None, "error": "x"}, "version", "required for deployment_failure"),
        (EventType.OBSERVED, {"version": None}, "version", "required for observed"),
        (EventType.START, {"version": "one.two"}, "version", "not a UMIG version"),
        (EventType.START, {"version": "01.2.3"}, "version", "leading zero"),
        (EventType.START, {"version": 123}, "version", "must be a string"),
        (EventType.START, {"to_version": "1.1.2"}, "toVersion", "only a rollback"),
        (EventType.START, {"from_version": "nope"}, "fromVersion", "not a UMIG version"),
        (EventType.ROLLBACK, {"version": None}, "fromVersion", "required for rollback"),
        (EventType.ROLLBACK, {"to_version": None}, "toVersion", "required for rollback"),
        (EventType.ROLLBACK, {"to_version": "1.2"}, "toVersion", "not a UMIG version"),
        (EventType.ROLLBACK, {"to_version": "1.2.0-rc.2"}, "toVersion", "changes nothing"),
        (
            EventType.ROLLBACK,
            {"from_version": "1.2.0-rc.1", "to_version": "1.1.2"},
            "fromVersion",
            "differs from version",
        ),
        (EventType.FAILURE, {}, "error", "required for deployment_failure"),
        (EventType.FAILURE, {"error": "  "}, "error", "required"),
        (EventType.FAILURE, {"error": 42}, "error", "must be a string"),
        (EventType.SUCCESS, {"duration": "soon"}, "duration", "invalid duration"),
        (EventType.SUCCESS, {"duration": -1}, "duration", "negative"),
        (EventType.SUCCESS, {"duration": "-4m"}, "duration", "invalid duration"),
        (EventType.SUCCESS, {"duration": "99999999999d"}, "duration", "longer than a century"),
        (EventType.SUCCESS, {"duration": float("nan")}, "duration", "finite"),
        (EventType.SUCCESS, {"duration": True}, "duration", "invalid duration of type bool"),
        (EventType.START, {"timestamp": datetime(2024, 10, 24, 12, 30)}, "timestamp", "UTC offset"),
        (EventType.START, {"now": datetime(2024, 10, 24, 12, 30)}, "timestamp", "UTC offset"),
        (EventType.START, {"metadata": {"commit_time": "yesterday"}}, "metadata.commit_time", "ISO-8601"),
        (
            EventType.START,
            {"metadata": {"commit_time": "2024-10-24T10:00:00"}},  # no offset
            "metadata.commit_time",
            "UTC offset",
        ),
        (EventType.START, {"metadata": {"commit_sha": 123}}, "metadata", "must be strings"),
        (EventType.START, {"metadata": ["commit_sha"]}, "metadata", "mapping"),
        (EventType.START, {"deployment_id": ""}, "id", "1-200 characters"),
        (EventType.START, {"deployment_id": "a/b"}, "id", "without spaces or '/'"),
        (EventType.START, {"deployment_id": "x" * 201}, "id", "1-200"),
        (EventType.START, {"event_id": "has space"}, "eventId", "without spaces"),
        (EventType.START, {"initiated_by": ["ci"]}, "initiatedBy", "must be a string"),
    ],
)
def test_validation_names_the_field(type: EventType, kwargs: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(EventError) as info:
        event(type, **kwargs)
    assert info.value.field == field
    assert says in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_a_valid_start() -> None:
    e = event(
        EventType.START,
        version="v1.2.0-rc.2",
        initiated_by=" lucas.challamel ",
        timestamp=datetime(2024, 10, 24, 14, 30, tzinfo=CEST),
        metadata={"commit_sha": "5114f85", "commit_time": "2024-10-24T10:00:00+02:00", "pipeline_url": "x"},
    )
    assert e == DeploymentEvent(
        id="deploy-uat-20241024-123000-a1b2c3-start",
        deployment_id="deploy-uat-20241024-123000-a1b2c3",
        environment="uat",
        type=EventType.START,
        ts=NOW,
        version="1.2.0-rc.2",  # canonical: the v is dropped
        initiated_by="lucas.challamel",
        metadata={"commit_sha": "5114f85", "commit_time": "2024-10-24T10:00:00+02:00", "pipeline_url": "x"},
    )
    assert e.ts.tzinfo is UTC
    assert e.status == "in_progress"


def test_a_valid_rollback() -> None:
    e = event(EventType.ROLLBACK, environment="production", version="1.2.0", to_version="v1.1.2")
    assert (e.deployment_id, e.id) == (
        "rollback-production-20241024-123000-a1b2c3",
        "rollback-production-20241024-123000-a1b2c3-rollback",
    )
    assert (e.version, e.from_version, e.to_version) == ("1.2.0", "1.2.0", "1.1.2")
    assert e.status == "rollback_initiated"
    same = event(EventType.ROLLBACK, version=None, from_version="1.2.0", to_version="1.1.2")
    assert (same.version, same.from_version) == ("1.2.0", "1.2.0")


def test_from_version_on_other_events() -> None:
    e = event(EventType.OBSERVED, version="1.2.0-rc.5", from_version="1.2.0-rc.2")
    assert (e.version, e.from_version, e.to_version) == ("1.2.0-rc.5", "1.2.0-rc.2", None)


def test_an_event_id_names_its_deployment_and_type_so_resending_is_idempotent() -> None:
    started = event(EventType.START, deployment_id="deploy-uat-1")
    assert started.id == "deploy-uat-1-start"
    first = event(EventType.SUCCESS, deployment_id="deploy-uat-1", same_deployment=[started])
    again = event(
        EventType.SUCCESS,
        deployment_id="deploy-uat-1",
        same_deployment=[started, first],
        now=NOW + timedelta(minutes=5),
        entropy="zzzzzz",
    )
    assert first.id == again.id == "deploy-uat-1-success"
    assert event(EventType.START, deployment_id="deploy-uat-1").id == started.id
    assert event(EventType.START, event_id="mine-1").id == "mine-1"


def start_for(
    version: str, deployment_id: str, minutes: int = 0, environment: str = "uat"
) -> DeploymentEvent:
    return event(
        EventType.START,
        environment=environment,
        version=version,
        deployment_id=deployment_id,
        timestamp=NOW - timedelta(minutes=minutes),
    )


@pytest.mark.parametrize(
    ("type", "deployment_id", "same", "expected_id", "flagged"),
    [
        # no id: join the open start that storage found for this environment and version
        (EventType.SUCCESS, None, [start_for("1.2.0-rc.2", "d1")], "d1", False),
        (EventType.FAILURE, None, [start_for("1.2.0-rc.2", "d1")], "d1", False),
        (EventType.SUCCESS, None, [start_for("v1.2.0-rc.2", "d1")], "d1", False),  # same version
        (
            EventType.SUCCESS,
            None,
            [start_for("1.2.0-rc.2", "old", 30), start_for("1.2.0-rc.2", "new", 10)],
            "new",
            False,
        ),
        # no id and no start: a new deployment, accepted and flagged
        (EventType.SUCCESS, None, [], "deploy-uat-20241024-123000-a1b2c3", True),
        (EventType.FAILURE, None, [], "deploy-uat-20241024-123000-a1b2c3", True),
        (EventType.SUCCESS, None, [start_for("1.2.0-rc.1", "d1")], "deploy-uat-20241024-123000-a1b2c3", True),
        (
            EventType.SUCCESS,
            None,
            [start_for("1.2.0-rc.2", "d1", environment="production")],
            "deploy-uat-20241024-123000-a1b2c3",
            True,
        ),
        # an id: that deployment; flagged when storage knows no start of it
        (EventType.SUCCESS, "d1", [start_for("1.2.0-rc.2", "d1")], "d1", False),
        (EventType.SUCCESS, "d1", [], "d1", True),
        (EventType.FAILURE, "d1", [], "d1", True),
        (EventType.SUCCESS, "d1", [start_for("1.2.0-rc.2", "d2")], "d1", True),
        # starts, observed changes and rollbacks are never "without a start"
        (EventType.START, "d1", [], "d1", False),
        (EventType.OBSERVED, None, [], "deploy-uat-20241024-123000-a1b2c3", False),
    ],
)
def test_success_without_start_is_accepted_and_flagged(
    type: EventType,
    deployment_id: str | None,
    same: Sequence[DeploymentEvent],
    expected_id: str,
    flagged: bool,
) -> None:
    e = event(type, deployment_id=deployment_id, same_deployment=same, error="boom")
    assert e.deployment_id == expected_id
    assert (SUCCESS_WITHOUT_START in e.flags) is flagged


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),  # the guide's script writes "" when no duration was given
        ("  ", None),
        (270, 270.0),
        (270.5, 270.5),
        (0, 0.0),
        ("270", 270.0),
        ("270s", 270.0),
        ("4m", 240.0),
        ("4m30s", 270.0),
        ("4m 30s", 270.0),
        ("1h", 3600.0),
        ("1h2m3s", 3723.0),
        ("2h 45m", 9900.0),  # the guide's uptime style
        ("1d", 86400.0),
        ("1.5m", 90.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(value: str | float | None, seconds: float | None) -> None:
    assert parse_duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["soon", "4x", "m4", "4m30", "-5", "-4m", "4m-30s", "inf", "nan", -1, True])
def test_parse_duration_invalid(value: str | float) -> None:
    with pytest.raises(ValueError, match=r"duration|seconds"):
        parse_duration_seconds(value)


def test_duration_is_stored_in_seconds() -> None:
    assert event(EventType.SUCCESS, duration="4m30s").duration_seconds == 270.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10-24T14:30:00+02:00", NOW),  # date -Iseconds
        ("2024-10-24T12:30:00Z", NOW),
        ("2024-10-24T12:30:00+00:00", NOW),
        ("2024-10-24T07:30:00-05:00", NOW),
        ("2024-10-24T12:30:00.250000Z", NOW + timedelta(milliseconds=250)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    ts = parse_timestamp(text)
    assert ts == expected
    assert ts.tzinfo is UTC


@pytest.mark.parametrize("text", ["2024-10-24T12:30:00", "2024-10-24", "yesterday", ""])
def test_parse_timestamp_invalid(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - fromisoformat's own messages vary
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (NOW, "2024-10-24T12:30:00Z"),
        (NOW.astimezone(CEST), "2024-10-24T12:30:00Z"),
        (NOW + timedelta(microseconds=7), "2024-10-24T12:30:00.000007Z"),
    ],
)
def test_format_timestamp(ts: datetime, text: str) -> None:
    assert format_timestamp(ts) == text
    assert parse_timestamp(text) == ts
