"""Alerts and notifications as values: Alertmanager's label-set fingerprint, and the outbox
payload round trip (old rows included)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.sink_cases import CASES
from umig_monitor.core.alerts import (
    AlertState,
    NotificationKind,
    label_set_fingerprint,
    notification_from_dict,
    notification_to_dict,
)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # prometheus/common model/signature_test.go: TestMetricToFingerprint and the benchmarks
        ({}, 14695981039346656037),
        ({"name": "garland, briggs", "fear": "love is not enough"}, 5799056148416392346),
        ({"first-label": "first-label-value"}, 5146282821936882169),
        (
            {
                "first-label": "first-label-value",
                "second-label": "second-label-value",
                "third-label": "third-label-value",
            },
            13843036195897128121,
        ),
    ],
)
def test_fingerprint_is_prometheus_label_set_fingerprint(labels: dict[str, str], expected: int) -> None:
    assert label_set_fingerprint(labels) == f"{expected:016x}"


def test_fingerprint_separates_names_from_values() -> None:
    assert label_set_fingerprint({"ab": "c"}) != label_set_fingerprint({"a": "bc"})
    assert label_set_fingerprint({"a": "b", "c": ""}) != label_set_fingerprint({"a": "b"})


def test_alert_fingerprint_covers_every_label() -> None:
    alert = CASES["firing_critical"].alerts[0]
    assert alert.fingerprint == label_set_fingerprint({**alert.all_labels(), "alert_key": alert.key})
    assert replace(alert, labels={**alert.labels, "version": "1.1.3"}).fingerprint != alert.fingerprint
    assert replace(alert, state=AlertState.RESOLVED).fingerprint == alert.fingerprint


def test_notification_round_trip() -> None:
    start = CASES["deployment_start"].alerts[0]
    note = replace(
        CASES["deployment_success"],
        one_off=True,
        repeat_interval=timedelta(hours=6),
        supersedes=(replace(start, state=AlertState.RESOLVED, ends_at=start.starts_at),),
    )
    assert notification_from_dict(notification_to_dict(note)) == note


def test_outbox_row_from_before_the_new_fields() -> None:
    row = notification_to_dict(CASES["firing_critical"])
    for key in ("one_off", "repeat_interval", "supersedes"):
        del row[key]
    old = notification_from_dict(row)
    assert (old.one_off, old.repeat_interval, old.supersedes) == (False, None, ())
    assert not old.is_one_off
    assert notification_from_dict({**row, "kind": "event"}).is_one_off


@pytest.mark.parametrize(
    ("kind", "one_off", "expected"),
    [
        (NotificationKind.FIRING, False, False),
        (NotificationKind.REPEAT, False, False),
        (NotificationKind.ESCALATION, False, False),
        (NotificationKind.RESOLVED, False, False),
        (NotificationKind.FIRING, True, True),  # a manual escalation
        (NotificationKind.EVENT, False, True),
        (NotificationKind.TEST, False, True),
        (NotificationKind.REPORT, False, True),
    ],
)
def test_one_off(kind: NotificationKind, one_off: bool, expected: bool) -> None:
    assert replace(CASES["firing_critical"], kind=kind, one_off=one_off).is_one_off is expected
