"""Deployment histories the storage tests share, and what the store must answer for a window of
them, worked out from the events themselves with core's ``summarize``: windows that start at, just
before and just after midnight, inside a day, before and after everything, open and bounded."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from umig_monitor.core.deployments import DeploymentEvent, EventType, Summary
from umig_monitor.core.dora import summarize
from umig_monitor.storage import Store
from umig_monitor.storage.migrations import day_select
from umig_monitor.storage.schema import deployment_days, deployment_events, deployment_rollups

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
ENVIRONMENTS = ("uat", "production")
TERMINAL = (EventType.SUCCESS, EventType.FAILURE, EventType.ROLLBACK)
SECOND = timedelta(seconds=1)


def generated(n: int, seed: int = 7, days: int = 60) -> list[DeploymentEvent]:
    """``n`` deployments over ``days`` days from T0: observed changes, starts alone, and starts with
    up to three outcomes at equal or later times; a fifth start in the half hour before midnight,
    so their outcomes often fall on the next day."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        env = rng.choice(ENVIRONMENTS)
        day = T0 + rng.randrange(days) * DAY
        if rng.random() < 0.2:
            start = day + DAY - timedelta(minutes=rng.randrange(1, 30))
        else:
            start = day + timedelta(minutes=rng.randrange(0, 24 * 60))
        dep = f"d{i}"
        if rng.random() < 0.05:
            out.append(DeploymentEvent(f"{dep}-o", dep, env, EventType.OBSERVED, start, version="1.0.0"))
            continue
        out.append(DeploymentEvent(f"{dep}-s", dep, env, EventType.START, start, version="1.0.0"))
        for kind in rng.sample(TERMINAL, rng.randrange(0, 4)):
            out.append(outcome(dep, env, kind, start + timedelta(minutes=rng.choice([0, 5, 5, 10, 45]))))
    return out


def outcome(deployment_id: str, environment: str, kind: EventType, ts: datetime) -> DeploymentEvent:
    return DeploymentEvent(
        f"{deployment_id}-{kind.value}",
        deployment_id,
        environment,
        kind,
        ts,
        version="1.0.0",
        to_version="0.9.0" if kind is EventType.ROLLBACK else None,
        error="x" if kind is EventType.FAILURE else None,
    )


def windows(first: datetime = T0, days: int = 60) -> list[tuple[datetime | None, datetime | None]]:
    """(since, until) pairs: every kind of start, open-ended, and a few bounded ones."""
    midnight = first + (days // 3) * DAY
    starts: list[datetime | None] = [
        None,
        first - DAY,  # before everything
        first,
        midnight,
        midnight - SECOND,
        midnight + SECOND,
        midnight + timedelta(hours=13, minutes=7),
        first + (days - 1) * DAY + timedelta(hours=23, minutes=50),  # inside the last day
        first + (days + 5) * DAY,  # after everything
    ]
    open_ended: list[tuple[datetime | None, datetime | None]] = [(since, None) for since in starts]
    bounded: list[tuple[datetime | None, datetime | None]] = [
        (None, midnight),
        (midnight - SECOND, midnight + 10 * DAY + timedelta(hours=5)),
        (midnight + timedelta(hours=1), midnight + timedelta(hours=2)),
    ]
    return open_ended + bounded


def in_window(
    e: DeploymentEvent, environment: str | None, since: datetime | None, until: datetime | None
) -> bool:
    return (
        (environment is None or e.environment == environment)
        and (since is None or e.ts >= since)
        and (until is None or e.ts < until)
    )


def expected_summary(
    events: Sequence[DeploymentEvent], environment: str | None, since: datetime | None, until: datetime | None
) -> Summary:
    """A bounded window is judged on its own events. An open one counts each deployment with an
    event in it, judged on all its events (a deployment started before the window and finished in
    it keeps its start and any earlier failure)."""
    if until is not None:
        return summarize([e for e in events if in_window(e, environment, since, until)])
    ids = {e.deployment_id for e in events if in_window(e, environment, since, None)}
    return summarize([e for e in events if e.deployment_id in ids])


TYPE_FILTERS: tuple[list[str] | None, ...] = (
    None,
    [EventType.ROLLBACK.value],
    [EventType.START.value, EventType.SUCCESS.value],
)


async def assert_history_matches(
    store: Store, events: Sequence[DeploymentEvent], first: datetime = T0, days: int = 60
) -> None:
    """Summary and count of every window, environment and type filter, against the events; and the
    per-day counts exactly what the events and rollups give when recomputed from nothing."""
    for environment in (None, *ENVIRONMENTS):
        for since, until in windows(first, days):
            where = f"environment={environment} since={since} until={until}"
            summary = await store.deployment_summary(environment=environment, since=since, until=until)
            assert summary == expected_summary(events, environment, since, until), where
            await assert_counts(store, events, environment, (since, until), TYPE_FILTERS)
    assert await stored_days(store) == await recomputed_days(store)


async def assert_counts(
    store: Store,
    events: Sequence[DeploymentEvent],
    environment: str | None,
    window: tuple[datetime | None, datetime | None],
    type_filters: Sequence[Sequence[str] | None],
) -> None:
    """The stored count of the window's events for each type filter, against the events."""
    since, until = window
    for types in type_filters:
        expected = sum(
            1
            for e in events
            if in_window(e, environment, since, until) and (not types or e.type.value in types)
        )
        counted = await store.count_deployment_events(
            environment=environment, since=since, until=until, types=types
        )
        assert counted == expected, f"environment={environment} since={since} until={until} types={types}"


async def stored_days(store: Store) -> set[tuple[object, ...]]:
    async with store._engine.connect() as conn:
        return {tuple(row) for row in await conn.execute(sa.select(deployment_days))}


async def recomputed_days(store: Store) -> set[tuple[object, ...]]:
    """What the migration fills deployment_days with, from the rows stored now."""
    select = day_select(store.dialect_name, deployment_events, deployment_rollups)
    async with store._engine.connect() as conn:
        return {
            tuple(int(v) if i > 1 else v for i, v in enumerate(row)) for row in await conn.execute(select)
        }


def rollup_summary(
    events: Sequence[DeploymentEvent], environment: str | None, since: datetime | None, until: datetime | None
) -> Summary:
    """What the store summarised before deployment_days, worked out from the events: a bounded
    window on its own events; an open one counts each deployment whose latest event is in it, in
    the environment its rollup names (the least of its events', should they differ), on all its
    events. ``expected_summary`` where every deployment keeps to one environment."""
    if until is not None:
        return summarize([e for e in events if in_window(e, environment, since, until)])
    of: dict[str, list[DeploymentEvent]] = {}
    for e in events:
        of.setdefault(e.deployment_id, []).append(e)
    counted = [
        mine
        for mine in of.values()
        if (environment is None or min(e.environment for e in mine) == environment)
        and (since is None or max(e.ts for e in mine) >= since)
    ]
    return summarize([e for mine in counted for e in mine])


def random_writes(seed: int, steps: int = 14) -> list[tuple[str, list[DeploymentEvent]]]:
    """A seeded sequence of deployment writes over five days and three environments, as (call,
    events): batches (some events re-sent with another time: ignored), single events, and updates
    of a stored event to another time (often midnight, a microsecond either side), type or
    environment, with offsets other than UTC."""
    rng = random.Random(seed)
    zones = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))

    def when() -> datetime:
        midnight = T0 + rng.randrange(5) * DAY
        offset = rng.choice([timedelta(0), -timedelta(microseconds=1), SECOND, None])
        ts = midnight + (offset if offset is not None else timedelta(minutes=rng.randrange(24 * 60)))
        return ts.astimezone(rng.choice(zones))

    stored: dict[str, DeploymentEvent] = {}
    out: list[tuple[str, list[DeploymentEvent]]] = []
    for _ in range(steps):
        if stored and rng.random() < 0.35:
            e = stored[rng.choice(sorted(stored))]
            changes: dict[str, object] = {"ts": when()} if rng.random() < 0.7 else {}
            if rng.random() < 0.4:
                changes["type"] = rng.choice(list(EventType))
            if rng.random() < 0.2:
                changes["environment"] = rng.choice((*ENVIRONMENTS, "dev"))
            stored[e.id] = replace(e, **changes)  # type: ignore[arg-type]
            out.append(("update", [stored[e.id]]))
            continue
        batch = []
        for _ in range(rng.randrange(1, 9)):
            if stored and rng.random() < 0.15:
                batch.append(replace(stored[rng.choice(sorted(stored))], ts=when()))
                continue
            n = len(stored) + len(batch)
            deployment = f"d{rng.randrange(n // 2 + 1)}" if rng.random() < 0.6 else f"n{n}"
            known = [e.environment for e in [*stored.values(), *batch] if e.deployment_id == deployment]
            env = known[0] if known and rng.random() < 0.8 else rng.choice((*ENVIRONMENTS, "dev"))
            batch.append(DeploymentEvent(f"e{n}", deployment, env, rng.choice(list(EventType)), when()))
        for e in batch:
            stored.setdefault(e.id, e)
        out.append(("add_one" if len(batch) == 1 and rng.random() < 0.5 else "add", batch))
    return out


def stored_after(writes: Sequence[tuple[str, list[DeploymentEvent]]]) -> list[DeploymentEvent]:
    """The events as stored once ``writes`` are done: the first of an id, then its updates."""
    stored: dict[str, DeploymentEvent] = {}
    for call, batch in writes:
        for e in batch:
            if call == "update":
                stored[e.id] = e
            else:
                stored.setdefault(e.id, e)
    return list(stored.values())
