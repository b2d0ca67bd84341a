"""Hostile request input is a 400 that names the parameter, never a 500: overflowing durations and
timestamps, huge integers and numbers, NaN, over-long values, JSON nested 100,000 deep, bodies
that are not objects. A real daemon on the simulator; hypothesis over the pure parameter readers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from umig_monitor.app import Daemon
from umig_monitor.core import timetext
from umig_monitor.pipeline.actions import ActionError
from umig_monitor.web import params

HUGE = "9" * 5000
DEEP = b"[" * 100_000 + b"]" * 100_000
LONG = "x" * 4000  # under aiohttp's 8 KB request line, over our 256 characters

# (path with query, the parameter the 400 must name)
QUERIES: list[tuple[str, str]] = [
    ("/api/v1/alerts?since=99999999999d", "since"),
    ("/api/v1/alerts?since=9999999w", "since"),
    (f"/api/v1/alerts?since={HUGE}", "since"),
    ("/api/v1/alerts?since=0001-01-01T00:00:00%2B01:00", "since"),
    ("/api/v1/alerts?since=2026-01-01T00:00:00", "since"),
    ("/api/v1/alerts?since=nan", "since"),
    (f"/api/v1/alerts?limit={HUGE}", "limit"),
    ("/api/v1/alerts?limit=ten", "limit"),
    ("/api/v1/alerts?state=burning", "state"),
    (f"/api/v1/alerts?environment={LONG}", "environment"),
    (f"/api/v1/alerts?type={LONG}", "type"),
    ("/api/v1/deployments?since=99999999999w", "since"),
    ("/api/v1/deployments?until=1e999", "until"),
    (f"/api/v1/deployments?offset={HUGE}", "offset"),
    ("/api/v1/deployments?offset=1.5", "offset"),
    ("/api/v1/deployments?type=teleport", "type"),
    (f"/api/v1/deployments?environment={LONG}", "environment"),
    ("/api/v1/dora?days=nan", "days"),
    ("/api/v1/dora?days=inf", "days"),
    ("/api/v1/dora?days=1e308", "days"),
    ("/api/v1/dora?days=-1", "days"),
    (f"/api/v1/dora?days={HUGE}", "days"),
    (f"/api/v1/baselines?limit={HUGE}", "limit"),
    (f"/api/v1/baselines?version={LONG}", "version"),
    (f"/api/v1/environments/production?limit={HUGE}", "limit"),
    (f"/api/v1/outbox?status={LONG}", "status"),
]

# (path, raw body, the parameter the 400 must name)
BODIES: list[tuple[str, bytes, str]] = [
    ("/api/v1/silences", DEEP, "body"),
    ("/api/v1/silences", b"[1, 2]", "body"),
    ("/api/v1/silences", b'{"matchers": ["environment=uat"], "duration": "99999999999d"}', "duration"),
    ("/api/v1/silences", b'{"matchers": ["environment=uat"], "duration": 1e999}', "duration"),
    ("/api/v1/silences", b'{"matchers": ["environment=uat"], "endsAt": "99999-01-01"}', "endsAt"),
    ("/api/v1/deployments/events", DEEP, "body"),
    ("/api/v1/deployments/events", b"\xff\xfe\x00garbage", "body"),
    (
        "/api/v1/deployments/events",
        b'{"type": "success", "environment": "uat", "version": "1.2.0", "duration": "99999999999d"}',
        "duration",
    ),
    (
        "/api/v1/deployments/events",
        b'{"type": "start", "environment": "uat", "version": "1.2.0", "timestamp": "99999999999d"}',
        "timestamp",
    ),
    ("/api/v1/deployments/some-id/watch", DEEP, "body"),
    (
        "/api/v1/deployments/some-id/watch",
        b'{"environment": "uat", "version": "1.2.0", "timeout": "99999999999d"}',
        "timeout",
    ),
    ("/api/v1/alerts", DEEP, "body"),
    (f"/api/v1/alerts/{HUGE}/ack", b"{}", "id"),
    ("/api/v1/alerts/1/ack", DEEP, "body"),
]


async def answer(daemon: Daemon, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, daemon.listen_url + path, data=body, headers=headers) as resp,
    ):
        try:
            return resp.status, await resp.json(content_type=None)
        except ValueError:
            return resp.status, await resp.text()


@pytest.mark.parametrize(("path", "name"), QUERIES, ids=[q[:60] for q, _ in QUERIES])
async def test_hostile_query_values_are_400s_naming_the_parameter(
    daemon: Daemon, path: str, name: str
) -> None:
    status, data = await answer(daemon, "GET", path)
    assert status == 400, (status, str(data)[:300])
    assert data["error"].startswith(f"{name}:") or data["error"].startswith(name), data
    assert len(data["error"]) < 400  # the value is not echoed whole


@pytest.mark.parametrize(
    ("path", "body", "name"), BODIES, ids=[f"{p}-{n}-{i}" for i, (p, _, n) in enumerate(BODIES)]
)
async def test_hostile_bodies_are_400s_naming_the_parameter(
    daemon: Daemon, path: str, body: bytes, name: str
) -> None:
    status, data = await answer(daemon, "POST", path, body)
    assert status == 400, (status, str(data)[:300])
    text = data["error"] if isinstance(data, dict) else data
    assert name in text.split(":")[0] or data.get("field") == name, data
    assert len(text) < 400


async def test_the_daemon_is_fine_afterwards(daemon: Daemon) -> None:
    for path, _ in QUERIES[:5]:
        await answer(daemon, "GET", path)
    for path, body, _ in BODIES[:3]:
        await answer(daemon, "POST", path, body)
    status, data = await answer(daemon, "GET", "/api/v1/alerts?since=1h&limit=10")
    assert status == 200
    assert data["alerts"] == []


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
values = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"[0-9]{1,30}(\.[0-9]{1,12})?(ms|s|m|h|d|w)?", fullmatch=True),
    st.from_regex(r"[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}T[0-9:]{1,12}(Z|[+-][0-9]{2}:[0-9]{2})?", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_query_readers_raise_only_action_errors_and_stay_in_range(value: str) -> None:
    query = {"v": value}
    for read in (
        lambda: params.integer(query, "v", 5, 1, 1000),
        lambda: params.number(query, "v", 90, 0, 3650),
        lambda: params.text(query, "v"),
        lambda: params.instant(value, NOW, "v"),
        lambda: params.duration(value, "v"),
    ):
        try:
            result = read()
        except ActionError as exc:
            message = str(exc)
        else:
            message = ""
        if message:
            assert message.startswith("v:")
            assert len(message) < 300
            continue
        if isinstance(result, int | float):
            assert math.isfinite(result)
        if isinstance(result, timedelta):
            assert timedelta(0) <= result <= timetext.MAX_DURATION
        if isinstance(result, datetime):
            assert result.tzinfo is not None
        if isinstance(result, str):
            assert len(result) <= params.MAX_VALUE


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.integers(), st.floats(), st.booleans(), st.none()))
def test_durations_and_timestamps_are_values_or_value_errors(value: object) -> None:
    def instant(v: object) -> object:
        return timetext.parse_instant(v, NOW)

    for parse in (timetext.parse_duration, timetext.parse_timestamp, instant):
        try:
            parse(value)
        except ValueError as exc:
            message = str(exc)
        else:
            message = ""
        assert len(message) < 300


def test_url_encoded_offsets_survive() -> None:
    # `+` in a query must be encoded: decoded it is a space, which is not an offset
    assert params.instant("2026-01-01T00:00:00+01:00", NOW, "since") == datetime(2025, 12, 31, 23, tzinfo=UTC)
    assert quote("+") == "%2B"
