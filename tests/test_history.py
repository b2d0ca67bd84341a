"""The deployment-history file: our records round-trip exactly, the guide's own records (as its
bash writes them) import with derived deployment ids, and every malformed record is reported with
its line number while the rest import."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from umig_monitor.core.deployments import (
    IMPORTED,
    SUCCESS_WITHOUT_START,
    DeploymentEvent,
    EventType,
    build_event,
)
from umig_monitor.core.dora import summarize
from umig_monitor.core.history import event_to_record, parse_history

T0 = datetime(2024, 10, 24, 12, 30, tzinfo=UTC)
ENVS = ("development", "uat", "production", "hotfix")

# Exactly what the guide's log_deployment_event writes on a machine in CEST: `echo "$log_entry"` of
# an indented multi-line literal, `date -Iseconds` timestamps and a new id per event.
#   log_deployment_event start 1.2.0-rc.2 uat;  ... success 1.2.0-rc.2 uat 4m30s
#   log_deployment_event start 1.1.3 production; ... failure 1.1.3 production "Migration 031 failed"
#   log_deployment_event rollback 1.1.3 production 1.1.2
GUIDE_FILE = """\
{
                "id": "deploy-uat-20241024-143000",
                "type": "deployment_start",
                "timestamp": "2024-10-24T14:30:00+02:00",
                "environment": "uat",
                "version": "1.2.0-rc.2",
                "initiatedBy": "lucas.challamel",
                "status": "in_progress"
            }
{
                "id": "deploy-uat-20241024-143430",
                "type": "deployment_success",
                "timestamp": "2024-10-24T14:34:30+02:00",
                "environment": "uat",
                "version": "1.2.0-rc.2",
                "duration": "4m30s",
                "status": "completed"
            }
{
                "id": "deploy-production-20241025-090000",
                "type": "deployment_start",
                "timestamp": "2024-10-25T09:00:00+02:00",
                "environment": "production",
                "version": "1.1.3",
                "initiatedBy": "deployment-automation",
                "status": "in_progress"
            }
{
                "id": "deploy-production-20241025-090610",
                "type": "deployment_failure",
                "timestamp": "2024-10-25T09:06:10+02:00",
                "environment": "production",
                "version": "1.1.3",
                "error": "Migration 031 failed",
                "status": "failed"
            }
{
                "id": "rollback-production-20241025-090800",
                "type": "rollback",
                "timestamp": "2024-10-25T09:08:00+02:00",
                "environment": "production",
                "fromVersion": "1.1.3",
                "toVersion": "1.1.2",
                "status": "rollback_initiated"
            }
"""

GUIDE_EVENTS = [
    DeploymentEvent(
        id="deploy-uat-20241024-143000-start",
        deployment_id="deploy-uat-20241024-143000",
        environment="uat",
        type=EventType.START,
        ts=datetime(2024, 10, 24, 12, 30, tzinfo=UTC),
        version="1.2.0-rc.2",
        initiated_by="lucas.challamel",
        flags=(IMPORTED,),
    ),
    DeploymentEvent(
        id="deploy-uat-20241024-143430-success",
        deployment_id="deploy-uat-20241024-143000",  # joined to its start
        environment="uat",
        type=EventType.SUCCESS,
        ts=datetime(2024, 10, 24, 12, 34, 30, tzinfo=UTC),
        version="1.2.0-rc.2",
        duration_seconds=270.0,
        flags=(IMPORTED,),
    ),
    DeploymentEvent(
        id="deploy-production-20241025-090000-start",
        deployment_id="deploy-production-20241025-090000",
        environment="production",
        type=EventType.START,
        ts=datetime(2024, 10, 25, 7, 0, tzinfo=UTC),
        version="1.1.3",
        initiated_by="deployment-automation",
        flags=(IMPORTED,),
    ),
    DeploymentEvent(
        id="deploy-production-20241025-090610-failure",
        deployment_id="deploy-production-20241025-090000",
        environment="production",
        type=EventType.FAILURE,
        ts=datetime(2024, 10, 25, 7, 6, 10, tzinfo=UTC),
        version="1.1.3",
        error="Migration 031 failed",
        flags=(IMPORTED,),
    ),
    DeploymentEvent(
        id="rollback-production-20241025-090800-rollback",
        deployment_id="deploy-production-20241025-090000",  # the outcome of the deployment it rolls back
        environment="production",
        type=EventType.ROLLBACK,
        ts=datetime(2024, 10, 25, 7, 8, tzinfo=UTC),
        version="1.1.3",
        from_version="1.1.3",
        to_version="1.1.2",
        flags=(IMPORTED,),
    ),
]


def compact(text: str) -> list[str]:
    """The same records one per line, as `jq -c . deployment-history.jsonl` would write them."""
    decoder, pos = json.JSONDecoder(), 0
    out: list[str] = []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return out
        value, pos = decoder.raw_decode(text, pos)
        out.append(json.dumps(value))


@pytest.mark.parametrize(
    "lines", [GUIDE_FILE.splitlines(), compact(GUIDE_FILE)], ids=["as-the-script-writes", "jq-c"]
)
def test_the_guides_own_records(lines: list[str]) -> None:
    events, errors = parse_history(lines, ENVS)
    assert errors == []
    assert events == GUIDE_EVENTS
    assert all(e.ts.tzinfo is UTC for e in events)  # datetimes, not strings
    s = summarize(events)
    # Two deployments: uat succeeded; production failed and was rolled back. The guide's script
    # says the same: total 2 (starts), successful 1, failed 1, rollbacks 1, success rate 50%.
    assert (s.total, s.successful, s.failed, s.rollbacks, s.success_rate) == (2, 1, 1, 1, 1 / 2)


def test_importing_the_guides_file_twice_gives_the_same_ids() -> None:
    first, _ = parse_history(GUIDE_FILE.splitlines(), ENVS)
    second, _ = parse_history(GUIDE_FILE.splitlines(), ENVS)
    assert [e.id for e in first] == [e.id for e in second]
    assert len({e.id for e in first}) == len(first)


def guide_line(type: str, id: str, minute: int, version: str = "1.1.3", **extra: str) -> str:
    record = {
        "id": id,
        "type": type,
        "timestamp": f"2024-10-25T09:{minute:02d}:00+02:00",
        "environment": "production",
        "version": version,
        **extra,
    }
    return json.dumps(record)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # (event id, deployment id, flags) per event
        (
            [guide_line("deployment_success", "s", 1, duration="")],
            [("s-success", "s", (IMPORTED, SUCCESS_WITHOUT_START))],
        ),
        (
            [
                guide_line("deployment_start", "a", 0),
                guide_line("deployment_success", "s", 1, version="1.1.4"),
            ],
            [("a-start", "a", (IMPORTED,)), ("s-success", "s", (IMPORTED, SUCCESS_WITHOUT_START))],
        ),
        (  # the latest open start first; a closed start is not joined again
            [
                guide_line("deployment_start", "a", 0),
                guide_line("deployment_start", "b", 1),
                guide_line("deployment_success", "s1", 2),
                guide_line("deployment_failure", "s2", 3, error="x"),
                guide_line("deployment_success", "s3", 4),
            ],
            [
                ("a-start", "a", (IMPORTED,)),
                ("b-start", "b", (IMPORTED,)),
                ("s1-success", "b", (IMPORTED,)),
                ("s2-failure", "a", (IMPORTED,)),
                ("s3-success", "s3", (IMPORTED, SUCCESS_WITHOUT_START)),
            ],
        ),
        (  # v-prefixed and plain are the same version
            [
                guide_line("deployment_start", "a", 0, version="v1.1.3"),
                guide_line("deployment_success", "s", 1),
            ],
            [("a-start", "a", (IMPORTED,)), ("s-success", "a", (IMPORTED,))],
        ),
    ],
)
def test_guide_records_are_joined_to_their_start(
    lines: list[str], expected: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    events, errors = parse_history(lines, ENVS)
    assert errors == []
    assert [(e.id, e.deployment_id, e.flags) for e in events] == expected


def test_a_guide_failure_without_an_error_is_kept() -> None:
    [event], errors = parse_history([guide_line("deployment_failure", "f", 0, error="")], ENVS)
    assert errors == []
    assert (event.type, event.error) == (EventType.FAILURE, "not recorded")


def ours(**kwargs: Any) -> DeploymentEvent:
    return build_event(known_environments=ENVS, entropy="a1b2c3", **kwargs)


def our_events() -> list[DeploymentEvent]:
    start = ours(
        type=EventType.START,
        environment="production",
        now=T0,
        version="1.2.0",
        initiated_by="ci",
        metadata={"commit_sha": "5114f85", "commit_time": "2024-10-24T10:00:00+02:00"},
    )
    return [
        start,
        ours(
            type=EventType.SUCCESS,
            environment="production",
            now=T0 + timedelta(minutes=4, seconds=30, microseconds=250),
            version="1.2.0",
            duration=270.5,
            same_deployment=[start],
        ),
        ours(
            type=EventType.SUCCESS,
            environment="uat",
            now=T0,
            version="1.2.0-rc.2",
            duration="4m",
        ),  # flagged: no start
        ours(
            type=EventType.FAILURE,
            environment="uat",
            now=T0,
            version="1.3.0-rc.1",
            deployment_id="d-9",
            error='quote " and\nnewline',
        ),
        ours(
            type=EventType.ROLLBACK,
            environment="production",
            now=T0 + timedelta(hours=1),
            version="1.2.0",
            to_version="1.1.2+hotfix.3",
            error="error rate",
        ),
        ours(
            type=EventType.OBSERVED,
            environment="development",
            now=T0,
            version="1.3.0-dev+ci.1245",
            deployment_id="observed-development-20241024-123000",
            metadata={"previousVersion": "1.3.0-dev+ci.1244"},
        ),
    ]


def test_our_records_round_trip_exactly() -> None:
    events = our_events()
    assert SUCCESS_WITHOUT_START in events[2].flags
    lines = [json.dumps(event_to_record(e)) for e in events]
    back, errors = parse_history(lines, ENVS)
    assert errors == []
    assert back == events
    assert [json.dumps(event_to_record(e)) for e in back] == lines


def test_record_shape() -> None:
    start, success, *_ = our_events()
    assert event_to_record(start) == {
        "id": "deploy-production-20241024-123000-a1b2c3-start",
        "type": "deployment_start",
        "timestamp": "2024-10-24T12:30:00Z",
        "environment": "production",
        "version": "1.2.0",
        "initiatedBy": "ci",
        "status": "in_progress",
        "deploymentId": "deploy-production-20241024-123000-a1b2c3",
        "metadata": {"commit_sha": "5114f85", "commit_time": "2024-10-24T10:00:00+02:00"},
    }
    assert event_to_record(success) == {
        "id": "deploy-production-20241024-123000-a1b2c3-success",
        "type": "deployment_success",
        "timestamp": "2024-10-24T12:34:30.000250Z",
        "environment": "production",
        "version": "1.2.0",
        "duration": 270.5,
        "status": "completed",
        "deploymentId": "deploy-production-20241024-123000-a1b2c3",
    }
    assert event_to_record(our_events()[2])["duration"] == 240  # whole seconds as an integer


OURS = json.dumps(event_to_record(our_events()[0]))
GOOD = guide_line("deployment_start", "g", 0)


def bad(**changes: object) -> str:
    record = json.loads(GOOD)
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not None})


MALFORMED = [
    (OURS, None),  # 1
    ("", None),  # 2: blank lines are ignored
    ("not json", "invalid JSON"),  # 3
    ('{"type": "deployment_start"}', "id: missing"),  # 4
    (bad(timestamp="yesterday"), "timestamp: 'yesterday' is not ISO-8601"),  # 5
    (bad(timestamp="2024-10-25T09:00:00"), "timestamp:"),  # 6: no offset
    (bad(timestamp=1729760000), "timestamp: must be a string"),  # 7
    (bad(environment="staging"), "environment: unknown environment 'staging'"),  # 8
    (bad(version="1.2"), "version: '1.2' is not a UMIG version"),  # 9
    (bad(version=None), "version: required for deployment_start"),  # 10
    (bad(type="deploy"), "type: unknown event type 'deploy'"),  # 11
    ("[1, 2]", "record: not a JSON object"),  # 12
    (bad(duration=True), "duration: must be seconds"),  # 13
    (bad(status="completed"), "status: 'completed' does not go with deployment_start"),  # 14
    (bad(metadata={"commit_sha": 5}), "metadata:"),  # 15
    (bad(metadata="x"), "metadata: must be an object"),  # 16
    (bad(flags="imported"), "flags: must be a list"),  # 17
    (bad(deploymentId=7), "deploymentId: must be a string"),  # 18
    ('{"id": "cut", "type": "deployment_start",', "invalid JSON"),  # 19: a write cut short ...
    (guide_line("deployment_start", "after-cut", 1), None),  # 20: ... does not take the next record
    ("{", "invalid JSON"),  # 21: a multi-line record with a broken line inside
    ('    "id": "x",', None),  # 22
    ('    "error": "say "hi"",', None),  # 23: the guide's script does not escape quotes
    ('    "status": "failed"', None),  # 24: skipped with its record, reported once (at 21)
    ("}", None),  # 25
    (guide_line("deployment_start", "after-broken", 2), None),  # 26
    ("{", "the file ends inside this JSON object"),  # 27
    ('    "id": "x"', None),  # 28
]


def test_malformed_records_are_reported_by_line_and_the_rest_imported() -> None:
    events, errors = parse_history([line for line, _ in MALFORMED], ENVS)
    expected = [(n, says) for n, (_, says) in enumerate(MALFORMED, 1) if says is not None]
    assert [n for n, _ in errors] == [n for n, _ in expected]
    for (_, message), (_, says) in zip(errors, expected, strict=True):
        assert says in message
    assert [e.deployment_id for e in events] == [
        "deploy-production-20241024-123000-a1b2c3",
        "after-cut",
        "after-broken",
    ]


def test_any_environment_without_a_list() -> None:
    events, errors = parse_history([bad(environment="staging")], None)
    assert (errors, [e.environment for e in events]) == ([], ["staging"])


def test_a_record_that_never_closes() -> None:
    lines = ["{", *['    "id": "x",'] * 150]
    events, errors = parse_history(lines, ENVS)
    assert events == []
    assert errors == [(1, "JSON object not closed within 100 lines")]
