"""Property tests of what parses outside input: the config loader, deployment events (the API's
and the CLI's), the guide-format history import. Invariants: never an exception other than the
documented error type; every string bounded; every number finite and in range. The UMIG document
parser has its own in test_assess_bounds.py; the API's query and body readers in
test_api_input.py. A bounded number of examples runs in CI."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from umig_monitor.config import ConfigError, parse_config
from umig_monitor.core import timetext
from umig_monitor.core.deployments import MAX_EVENT_TEXT, EventError, EventType, build_event
from umig_monitor.core.history import parse_history

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ENVS = ("development", "uat", "production")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["99999999999d", "1e999", "-1s", "30s", "0", "nan", "inf", "99999999999999999999w"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)

# Keys the config actually has, so the fuzzer reaches validation rather than "extra key".
DAEMON_KEYS = [
    "listen",
    "storage",
    "timezone",
    "shutdown_timeout",
    "max_concurrent_polls",
    "http",
    "retention",
]
ENV_KEYS = ["base_url", "kind", "poll_interval", "timeout", "thresholds", "auth", "headers", "tls"]
JOB_KEYS = ["health", "drift", "baseline", "daily_report"]


@st.composite
def configs(draw: st.DrawFn) -> str:
    env: dict[str, Any] = {"base_url": "http://127.0.0.1:1/production"}
    for key in draw(st.lists(st.sampled_from(ENV_KEYS), max_size=3)):
        env[key] = draw(documents)
    doc: dict[str, Any] = {"environments": {draw(st.text(min_size=1, max_size=20)): env}}
    daemon = {key: draw(documents) for key in draw(st.lists(st.sampled_from(DAEMON_KEYS), max_size=3))}
    if daemon:
        doc["daemon"] = daemon
    jobs = {key: draw(documents) for key in draw(st.lists(st.sampled_from(JOB_KEYS), max_size=2))}
    if jobs:
        doc["jobs"] = jobs
    text = yaml.safe_dump(doc, allow_unicode=True)
    # sometimes a raw mutation of the text: truncation, a stray byte
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    return draw(st.sampled_from([text, text[:cut], text[:cut] + "\x00" + text[cut:], text + ": ["]))


def durations_in(value: Any) -> list[timedelta]:
    if isinstance(value, timedelta):
        return [value]
    if isinstance(value, dict):
        return [d for v in value.values() for d in durations_in(v)]
    if isinstance(value, list | tuple):
        return [d for v in value for d in durations_in(v)]
    if isinstance(value, BaseModel):
        return [d for name in type(value).model_fields for d in durations_in(getattr(value, name))]
    return []


@settings(max_examples=300, deadline=None)
@given(configs())
def test_config_text_is_settings_or_a_config_error(text: str) -> None:
    try:
        result = parse_config(text, environ={})
    except ConfigError as exc:
        message = str(exc)
    else:
        message = ""
    assert len(message) < 20_000  # one line per problem, values cut
    if message:
        return
    for value in durations_in(result):
        assert timedelta(0) <= value <= timetext.MAX_DURATION


event_values = st.one_of(
    scalars, st.text(min_size=MAX_EVENT_TEXT - 2, max_size=MAX_EVENT_TEXT + 2), documents
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([EventType.START, EventType.SUCCESS, EventType.FAILURE, EventType.ROLLBACK]),
    st.dictionaries(
        st.sampled_from(
            [
                "version",
                "to_version",
                "from_version",
                "event_id",
                "deployment_id",
                "initiated_by",
                "duration",
                "error",
                "metadata",
            ]
        ),
        event_values,
        max_size=5,
    ),
)
def test_an_event_is_built_or_an_event_error(type: EventType, fields: dict[str, Any]) -> None:
    args: dict[str, Any] = {"version": "1.2.0", "error": "boom", **fields}
    if type is EventType.ROLLBACK:
        args.setdefault("to_version", "1.1.0")
    try:
        event = build_event(
            type=type, environment="uat", now=NOW, known_environments=ENVS, entropy="a1b2c3", **args
        )
    except EventError as exc:
        message = str(exc)
    else:
        message = ""
    assert len(message) < 1000
    if message:
        return
    if event.duration_seconds is not None:
        assert math.isfinite(event.duration_seconds)
        assert 0 <= event.duration_seconds <= timetext.MAX_DURATION.total_seconds()
    for text in (event.error, event.initiated_by, event.version, event.to_version, *event.metadata.values()):
        assert text is None or len(text) <= MAX_EVENT_TEXT


records = st.dictionaries(
    st.sampled_from(
        [
            "timestamp",
            "environment",
            "version",
            "type",
            "status",
            "deploymentId",
            "duration",
            "error",
            "initiatedBy",
            "metadata",
            "id",
        ]
    ),
    st.one_of(
        event_values,
        st.sampled_from(["2026-01-01T00:00:00Z", "99999-01-01", "uat", "production", "deployment_success"]),
    ),
    max_size=8,
)
lines = st.one_of(
    records.map(json.dumps),
    records.map(lambda r: json.dumps(r, indent=2)),
    st.text(max_size=60),
    st.just("[" * 5000 + "]" * 5000),
    st.just('{"type": "deployment_start",'),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=6))
def test_history_import_takes_records_and_reports_every_other_line(chunks: list[str]) -> None:
    text = "\n".join(chunks)
    events, errors = parse_history(text.splitlines(), ENVS)
    for number, reason in errors:
        assert number >= 1
        assert len(reason) < 1000
    for event in events:
        assert event.environment in ENVS
        if event.duration_seconds is not None:
            assert math.isfinite(event.duration_seconds)
