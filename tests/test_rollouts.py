"""Deployment identity rules (core.rollouts) as tables: which deployment each event joins, and what
re-sending an event changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.rollouts import VERIFIED_BY, EventConflict, attach, merge

B, S, F = EventType.START, EventType.SUCCESS, EventType.FAILURE
R, OBS = EventType.ROLLBACK, EventType.OBSERVED
T0 = datetime(2024, 10, 1, tzinfo=UTC)
DAY = timedelta(hours=24)


def ev(
    type: EventType, deployment: str, minute: float, version: str = "1.2.0", **fields: object
) -> DeploymentEvent:
    to_version = fields.pop("to_version", "1.1.0" if type is R else None)
    return DeploymentEvent(
        id=f"{deployment}-{type.value}",
        deployment_id=deployment,
        environment=str(fields.pop("environment", "uat")),
        type=type,
        ts=T0 + timedelta(minutes=minute),
        version=version,
        from_version=version if type is R else None,
        to_version=to_version,  # type: ignore[arg-type]
        error="boom" if type is F else None,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("known", "type", "version", "minute", "joins"),
    [
        # the guide's pipeline: start, then watch/success of the same version join it
        ([ev(B, "a", 0)], S, "1.2.0", 5, "a"),
        ([ev(B, "a", 0)], F, "1.2.0", 5, "a"),
        ([ev(B, "a", 0)], OBS, "1.2.0", 3, "a"),
        ([ev(B, "a", 0)], B, "1.2.0", 1, "a"),  # a re-sent start
        # a success a watch verified: the pipeline's success is the same event of the same deployment
        ([ev(B, "a", 0), ev(S, "a", 4)], S, "1.2.0", 5, "a"),
        # the pipeline's smoke tests fail after the watch's checks passed: still that deployment
        ([ev(B, "a", 0), ev(S, "a", 4)], F, "1.2.0", 6, "a"),
        # polling saw it before the pipeline reported its start
        ([ev(OBS, "o", 0)], B, "1.2.0", 2, "o"),
        ([ev(OBS, "o", 0)], S, "1.2.0", 2, "o"),
        # another version, another environment or outside the window: a new deployment
        ([ev(B, "a", 0)], S, "1.2.1", 5, None),
        ([ev(B, "a", 0, environment="production")], S, "1.2.0", 5, None),
        ([ev(B, "a", 0)], S, "1.2.0", 25 * 60, None),
        # a finished deployment is not started again; a failed one does not succeed later
        ([ev(B, "a", 0), ev(S, "a", 5)], B, "1.2.0", 9, None),
        ([ev(B, "a", 0), ev(F, "a", 5)], S, "1.2.0", 9, None),
        ([ev(B, "a", 0), ev(F, "a", 5)], B, "1.2.0", 9, None),  # a second attempt
        # a rollback ends the latest deployment of the version it rolls back, however old
        ([ev(B, "a", 0), ev(F, "a", 5)], R, "1.2.0", 8, "a"),
        ([ev(B, "old", -3 * 24 * 60), ev(S, "old", -3 * 24 * 60 + 5)], R, "1.2.0", 0, "old"),
        ([ev(B, "a", 0), ev(S, "a", 5), ev(B, "b", 10), ev(S, "b", 15)], R, "1.2.0", 20, "b"),
        ([ev(B, "a", 0)], R, "1.3.0", 8, None),  # nothing deployed that version: its own
        # the version a rollback returns to, seen by polling, is that rollback's: not a deployment
        ([ev(B, "a", 0), ev(R, "a", 8, to_version="1.1.0")], OBS, "1.1.0", 9, "a"),
        # a rolled-back deployment takes nothing more
        ([ev(B, "a", 0), ev(R, "a", 8)], S, "1.2.0", 9, None),
        ([], S, "1.2.0", 0, None),
    ],
)
def test_which_deployment_an_event_joins(
    known: list[DeploymentEvent], type: EventType, version: str, minute: float, joins: str | None
) -> None:
    ts = T0 + timedelta(minutes=minute)
    assert attach(type, "uat", version, ts, known, DAY) == joins


def test_a_resent_event_that_says_nothing_new_changes_nothing() -> None:
    stored = ev(S, "a", 5, initiated_by="ci", duration_seconds=270.0)
    assert merge(stored, ev(S, "a", 6, initiated_by="ci")) is None


def test_a_resent_event_fills_in_what_was_missing() -> None:
    stored = ev(F, "a", 5)
    stored = replace(stored, initiated_by=None)
    merged = merge(stored, ev(F, "a", 6, initiated_by="ci", metadata={"pipeline_url": "https://ci/1"}))
    assert merged is not None
    assert merged.initiated_by == "ci"
    assert merged.metadata == {"pipeline_url": "https://ci/1"}
    assert merged.ts == stored.ts  # the first report's time stays


def test_a_resent_event_that_contradicts_is_refused_naming_the_fields() -> None:
    stored = ev(F, "a", 5, duration_seconds=60.0)
    with pytest.raises(EventConflict) as info:
        merge(stored, replace(stored, error="other"))
    assert info.value.fields == ("error",)
    assert "eventId" in str(info.value)


def test_the_pipelines_report_overrides_what_the_watch_measured() -> None:
    watched = ev(S, "a", 5, duration_seconds=31.0, metadata={VERIFIED_BY: "watch"})
    merged = merge(watched, ev(S, "a", 6, duration_seconds=270.0, initiated_by="ci"))
    assert merged is not None
    assert (merged.duration_seconds, merged.initiated_by) == (270.0, "ci")
    assert merged.metadata[VERIFIED_BY] == "watch"
