"""The pipeline end to end on a real store and real HTTP receivers: route, dedup, outbox, deliver,
with a controllable clock for reminders and escalation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support import POSTGRES_URL, Receiver, scratch_database, serving, until
from umig_monitor.config import Settings, parse_config
from umig_monitor.core.alerts import AlertEvent, AlertState, alert_key
from umig_monitor.metrics import AlertMetrics, SelfMetrics
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.pipeline.dispatch import plan
from umig_monitor.storage import Store
from umig_monitor.storage.records import Delivery

T0 = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, Receiver]]:
    app = web.Application()
    hooks = {name: Receiver() for name in ("crit", "dev", "esc", "default")}
    for name, hook in hooks.items():
        app.router.add_post(f"/{name}", hook.handle)
    async with serving(app) as base:
        for name, hook in hooks.items():
            hook.url = f"{base}/{name}"
        yield hooks


def settings_for(hooks: dict[str, Receiver], extra: str = "") -> Settings:
    sinks = "".join(
        f"  {n}: {{type: webhook, url: '{h.url}', retry: {{initial_backoff: 100ms, max_backoff: 200ms}}}}\n"
        for n, h in hooks.items()
    )
    return parse_config(
        f"""
sinks:
{sinks}
routes:
  - match: {{severity: critical}}
    sinks: [crit]
    repeat_interval: 1h
    escalate: {{after: 15m, sinks: [esc]}}
  - match_re: {{environment: 'dev.*'}}
    sinks: [dev]
default_route: {{sinks: [default]}}
{extra}"""
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Alerts, notification log, outbox and silences through the pipeline, on both backends."""
    async with scratch_database(request.param, tmp_path / "pipeline.db") as url:
        s = await Store.open(url)
        try:
            yield s
        finally:
            await s.close()


@pytest.fixture
async def running(
    store: Store, receivers: dict[str, Receiver]
) -> AsyncIterator[tuple[AlertPipeline, Clock, aiohttp.ClientSession]]:
    clock = Clock()
    session = aiohttp.ClientSession()
    pipeline = AlertPipeline(store, AlertMetrics(SelfMetrics().registry), clock)
    pipeline.configure(settings_for(receivers), session)
    try:
        yield pipeline, clock, session
    finally:
        await pipeline.close()
        await session.close()


def event(
    env: str = "production", severity: str = "critical", firing: bool = True, at: datetime = T0
) -> AlertEvent:
    return AlertEvent(
        alert_key("environment_health", env),
        "environment_unhealthy",
        env,
        severity,  # type: ignore[arg-type]
        f"{env} is down",
        at,
        firing,
    )


async def test_fire_repeat_resolve(
    running: tuple[AlertPipeline, Clock, Any], receivers: dict[str, Receiver]
) -> None:
    pipeline, clock, _ = running
    crit = receivers["crit"]
    await pipeline.submit(event())
    assert await pipeline.evaluate() == 1
    await until(lambda: len(crit.bodies) == 1)
    body = crit.bodies[0]
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["alerts"][0]["labels"]["environment"] == "production"
    assert await pipeline.evaluate() == 0  # nothing new
    clock.now = T0 + timedelta(minutes=14)
    assert await pipeline.evaluate() == 0
    clock.now = T0 + timedelta(minutes=15)
    assert await pipeline.evaluate() == 1  # unacknowledged for 15 minutes: escalated, once
    await until(lambda: len(receivers["esc"].bodies) == 1)
    clock.now = T0 + timedelta(minutes=59)
    assert await pipeline.evaluate() == 0
    clock.now = T0 + timedelta(hours=1)
    assert await pipeline.evaluate() == 1  # the reminder
    await until(lambda: len(crit.bodies) == 2)
    await pipeline.submit(event(firing=False, at=clock.now))
    assert await pipeline.evaluate() == 1
    await until(lambda: len(crit.bodies) == 3)
    assert crit.bodies[2]["status"] == "resolved"
    assert len(set(crit.keys)) == 3  # every notice has its own idempotency key
    assert await pipeline.evaluate() == 0
    assert receivers["default"].bodies == []
    assert len(receivers["esc"].bodies) == 1


async def test_escalation_after_delay_unless_acked(
    running: tuple[AlertPipeline, Clock, Any], receivers: dict[str, Receiver], store: Store
) -> None:
    pipeline, clock, _ = running
    await pipeline.submit(event("production"))
    await pipeline.submit(event("hotfix"))
    await pipeline.evaluate()
    [alert] = [a for a in await store.active_alerts() if a.environment == "hotfix"]
    assert alert.id is not None
    _, acked = await store.ack_alert(alert.id, "alice", T0 + timedelta(minutes=5))
    assert acked
    clock.now = T0 + timedelta(minutes=14)
    assert await pipeline.evaluate() == 0
    clock.now = T0 + timedelta(minutes=15)
    assert await pipeline.evaluate() == 1
    await until(lambda: len(receivers["esc"].bodies) == 1)
    escalated = receivers["esc"].bodies[0]["alerts"]
    assert [a["labels"]["environment"] for a in escalated] == ["production"]  # hotfix was acknowledged
    clock.now = T0 + timedelta(minutes=30)
    assert await pipeline.evaluate() == 0  # escalated once


async def test_routing_and_default(
    running: tuple[AlertPipeline, Clock, Any], receivers: dict[str, Receiver]
) -> None:
    pipeline, _, _ = running
    await pipeline.submit(event("development", "warning"))
    await pipeline.submit(event("uat", "warning"))
    await pipeline.evaluate()
    await until(lambda: receivers["dev"].bodies and receivers["default"].bodies)
    assert receivers["crit"].bodies == []


async def test_silence_suppresses_and_then_releases(
    running: tuple[AlertPipeline, Clock, Any], receivers: dict[str, Receiver], store: Store
) -> None:
    from umig_monitor.core.silences import Silence, parse_matcher

    pipeline, clock, _ = running
    silence = Silence("s1", (parse_matcher("environment=production"),), T0, T0 + timedelta(minutes=10), "bob")
    await store.add_silence(silence, T0)
    await pipeline.submit(event())
    assert await pipeline.evaluate() == 0
    assert pipeline.suppressed_by(alert_key("environment_health", "production")) == "s1"
    assert [a.state for a in await store.active_alerts()] == [AlertState.FIRING]  # still recorded
    clock.now = T0 + timedelta(minutes=10)
    assert await pipeline.evaluate() == 1  # silence over, still firing: notify now
    await until(lambda: len(receivers["crit"].bodies) == 1)


async def test_a_pipeline_that_is_not_leading_records_but_neither_dispatches_nor_delivers(
    store: Store, receivers: dict[str, Receiver]
) -> None:
    from umig_monitor.core.silences import Silence, parse_matcher

    clock = Clock()
    leading = False
    asked: list[str] = []  # which task asked whether it leads: the dispatch loop asks once a tick

    def active() -> bool:
        task = asyncio.current_task()
        asked.append(task.get_name() if task else "")
        return leading

    async with aiohttp.ClientSession() as session:
        follower = AlertPipeline(store, AlertMetrics(SelfMetrics().registry), clock, active=active)
        follower.configure(settings_for(receivers), session)
        follower.start()
        try:
            await follower.submit(event())
            await follower.submit(event("uat", "warning"))
            await store.add_silence(
                Silence("s1", (parse_matcher("environment=uat"),), T0, T0 + timedelta(hours=1), "bob"), T0
            )
            # Two more ticks of the dispatch loop: a whole one went by with both alerts stored.
            asked.clear()
            await until(lambda: asked.count("alert-dispatch") >= 2, what="two dispatch ticks")
            assert len(await store.active_alerts()) == 2
            assert await store.list_deliveries() == []
            # It still knows what is silenced, for its API and status page.
            await follower._dispatcher.refresh_suppressed(clock.now)
            assert follower.suppressed_by(alert_key("environment_health", "uat")) == "s1"
            assert follower.suppressed_by(alert_key("environment_health", "production")) is None
            leading = True  # it becomes the leader: the backlog goes out
            await until(lambda: len(receivers["crit"].bodies) == 1)
        finally:
            await follower.close()


async def test_retry_until_delivered(
    running: tuple[AlertPipeline, Clock, Any], receivers: dict[str, Receiver], store: Store
) -> None:
    pipeline, clock, _ = running
    receivers["crit"].script = [500, 503]
    await pipeline.submit(event())
    await pipeline.evaluate()

    def past_each_backoff() -> bool:
        clock.now += timedelta(seconds=1)
        pipeline._deliverer.wake()
        return bool(receivers["crit"].bodies)

    await until(past_each_backoff, what="delivered after the retries")
    assert len(receivers["crit"].bodies) == 1

    async def recorded() -> list[Delivery]:
        # the receiver has the body before the deliverer has recorded the answer: a fact of its own
        deliveries = await store.list_deliveries()
        return deliveries if deliveries and deliveries[0].status != "pending" else []

    [delivery] = await until(recorded, what="the delivery recorded as sent")
    assert (delivery.status, delivery.attempts) == ("sent", 3)


async def test_not_retried_on_4xx(
    running: tuple[AlertPipeline, Clock, Any], receivers: dict[str, Receiver], store: Store
) -> None:
    pipeline, _, _ = running
    receivers["crit"].script = [400]
    await pipeline.submit(event())
    await pipeline.evaluate()

    async def settled() -> list[Delivery]:
        deliveries = await store.list_deliveries()
        return deliveries if deliveries and deliveries[0].status != "pending" else []

    deliveries = await until(settled)
    assert deliveries[0].status == "failed"
    assert deliveries[0].attempts == 1
    assert "400" in (deliveries[0].last_error or "")


async def test_restart_neither_resends_nor_forgets(store: Store, receivers: dict[str, Receiver]) -> None:
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        first = AlertPipeline(store, AlertMetrics(SelfMetrics().registry), clock)
        first.configure(settings_for(receivers), session)
        await first.submit(event())
        await first.evaluate()
        await until(lambda: len(receivers["crit"].bodies) == 1)
        await first.close()
        second = AlertPipeline(store, AlertMetrics(SelfMetrics().registry), clock)
        second.configure(settings_for(receivers), session)
        await second.submit(event())  # the health job raises it again after a restart
        assert await second.evaluate() == 0
        await second.submit(event(firing=False, at=T0 + timedelta(minutes=3)))
        assert await second.evaluate() == 1
        await until(lambda: len(receivers["crit"].bodies) == 2)
        await second.close()
    assert [b["status"] for b in receivers["crit"].bodies] == ["firing", "resolved"]


async def test_pending_deliveries_survive_a_restart(store: Store, receivers: dict[str, Receiver]) -> None:
    clock = Clock()
    receivers["crit"].script = [503] * 3
    async with aiohttp.ClientSession() as session:
        first = AlertPipeline(store, AlertMetrics(SelfMetrics().registry), clock)
        first.configure(settings_for(receivers), session)
        await first.submit(event())
        await first.evaluate()
        await until(lambda: not receivers["crit"].script or len(receivers["crit"].script) < 3)
        await first.close()  # stopped with the notification still pending
        assert [d.status for d in await store.list_deliveries()] == ["pending"]
        receivers["crit"].script = []
        clock.now += timedelta(minutes=5)
        second = AlertPipeline(store, AlertMetrics(SelfMetrics().registry), clock)
        second.configure(settings_for(receivers), session)
        await until(lambda: len(receivers["crit"].bodies) == 1)
        await second.close()


def test_plan_groups_alerts_of_one_group() -> None:
    from umig_monitor.core.alerts import Alert
    from umig_monitor.pipeline import policy_from

    policy = policy_from(
        parse_config("""
sinks: {w: {type: webhook, url: 'http://127.0.0.1:1/'}}
routes: [{match: {type: version_drift}, sinks: [w], group_by: [type], repeat_interval: 12h}]
""")
    )
    alerts = [
        Alert(f"version_drift/{env}/", "version_drift", env, "warning", AlertState.FIRING, "drift", T0, id=i)
        for i, env in enumerate(["uat", "development"], start=1)
    ]
    result = plan(alerts, {}, [], policy, T0)
    assert len(result.entries) == 1
    payload = result.entries[0].payload
    assert [a["environment"] for a in payload["alerts"]] == ["uat", "development"]
    assert payload["group_labels"] == {"type": "version_drift"}
    # the route's reminder interval rides along, so Alertmanager keeps the alerts that long
    assert (payload["repeat_interval"], payload["one_off"]) == (12 * 3600, False)
    assert len(result.log) == 2
    assert json.dumps(payload)
