"""Deployment storage: the SQL summary and count agree with core's ``summarize`` on the same events
(ties, observed, open starts) for any window, however the per-day counts were kept (deployments
across midnight, late events, updates, a whole import at once, writers side by side), on SQLite and
PostgreSQL; windows compare datetimes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests.history_cases import (
    DAY,
    ENVIRONMENTS,
    SECOND,
    T0,
    assert_counts,
    assert_history_matches,
    expected_summary,
    generated,
    outcome,
    random_writes,
    recomputed_days,
    rollup_summary,
    stored_after,
    stored_days,
)
from tests.support import POSTGRES_URL, scratch_database
from umig_monitor.config import parse_config
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.dora import summarize
from umig_monitor.core.history import event_to_record, parse_history
from umig_monitor.jobs.retention import enforce_retention
from umig_monitor.storage import Store, dialects
from umig_monitor.storage.deployment_days import day_of
from umig_monitor.storage.deployments import _row as event_row
from umig_monitor.storage.migrations import rollup_select
from umig_monitor.storage.schema import deployment_days, deployment_events, deployment_rollups


@pytest.fixture(params=["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with scratch_database(request.param, tmp_path / "d.db") as url:
        s = await Store.open(url)
        try:
            yield s
        finally:
            await s.close()


async def test_sql_summary_and_count_match_core(store: Store) -> None:
    events = generated(400)
    await store.add_deployment_events(events, T0)
    await assert_history_matches(store, events)


async def test_a_late_event_moves_a_deployment_to_another_day(store: Store) -> None:
    day = T0 + 10 * DAY
    start = DeploymentEvent("a-s", "a", "uat", EventType.START, day - timedelta(minutes=10), version="1.0.0")
    success = outcome("a", "uat", EventType.SUCCESS, day - timedelta(minutes=5))
    other = DeploymentEvent("b-s", "b", "uat", EventType.START, day + timedelta(hours=3), version="1.0.0")
    events = [start, success, other]
    await store.add_deployment_events(events, T0)
    await assert_history_matches(store, events, first=day - DAY, days=5)
    # Rolled back two days later: the deployment now counts on that day, with its earlier success.
    rollback = outcome("a", "uat", EventType.ROLLBACK, day + 2 * DAY + timedelta(hours=4))
    assert await store.add_deployment_event(rollback, T0)
    events.append(rollback)
    await assert_history_matches(store, events, first=day - DAY, days=5)
    since = day + DAY + timedelta(hours=12)  # after the start, the success and the first day
    assert await store.deployment_summary(environment="uat", since=since) == summarize(
        [start, success, rollback]
    )
    # A failure reported late, timed before everything else: the latest event does not move.
    failure = outcome("a", "uat", EventType.FAILURE, day - 3 * DAY)
    await store.add_deployment_events([failure, other], T0)  # ``other`` again: already known
    events.append(failure)
    await assert_history_matches(store, events, first=day - 4 * DAY, days=8)


async def test_an_event_updated_to_another_day_counts_there(store: Store) -> None:
    events = generated(60, seed=3, days=6)
    await store.add_deployment_events(events, T0)
    moved = replace(events[0], ts=events[0].ts + 2 * DAY + timedelta(minutes=1), error="late")
    await store.update_deployment_event(moved)
    events[0] = moved
    await assert_history_matches(store, events, days=8)


async def test_imported_history_in_one_call(store: Store) -> None:
    """An import writes its whole file in one call: more deployments than one statement refreshes,
    over days far apart, and re-importing it changes nothing."""
    lines = [json.dumps(event_to_record(e)) for e in generated(1500, seed=11, days=400)]
    events, errors = parse_history(lines, None)
    assert not errors
    assert await store.add_deployment_events(events, T0 + 500 * DAY, history=True) == len(events)
    await assert_history_matches(store, events, days=400)
    assert await store.add_deployment_events(events, T0 + 500 * DAY, history=True) == 0
    await assert_history_matches(store, events, days=400)


async def test_writers_side_by_side_keep_the_days_exact(store: Store) -> None:
    """On PostgreSQL each writer recomputes the days it touched from what is committed: without
    taking turns, two writers of one day would each leave the other's events out."""
    events = generated(120, seed=5, days=2)
    await asyncio.gather(*(store.add_deployment_event(e, T0) for e in events))
    await assert_history_matches(store, events, days=2)


async def test_empty_summary(store: Store) -> None:
    s = await store.deployment_summary(environment="uat")
    assert (s.total, s.success_rate) == (0, None)


async def test_window_compares_datetimes_across_offsets(store: Store) -> None:
    from datetime import timezone

    plus2 = timezone(timedelta(hours=2))
    # 09:30+02:00 is 07:30Z: before an 08:00Z threshold, though "09:30" > "08:00" as text.
    early = DeploymentEvent("a-s", "a", "uat", EventType.START, datetime(2026, 1, 1, 9, 30, tzinfo=plus2))
    late = DeploymentEvent("b-s", "b", "uat", EventType.START, datetime(2026, 1, 1, 8, 30, tzinfo=UTC))
    await store.add_deployment_events([early, late], T0)
    found = await store.deployment_events(since=datetime(2026, 1, 1, 8, 0, tzinfo=UTC))
    assert [e.id for e in found] == ["b-s"]


async def test_pages_skip_offset_events_with_or_without_a_limit(store: Store) -> None:
    events = generated(30, seed=5)
    await store.add_deployment_events(events, T0)
    every = await store.deployment_events()
    n = len(every)
    assert n == len({e.id for e in events}) > 12
    assert await store.deployment_events(offset=n - 5) == every[-5:]
    assert await store.deployment_events(limit=10, offset=n - 5) == every[-5:]
    assert await store.deployment_events(limit=10, offset=2) == every[2:12]
    assert await store.deployment_events(offset=n - 3, newest_first=False) == every[::-1][-3:]


async def test_days_an_older_writer_left_behind_are_put_right(store: Store) -> None:
    """A replica still on the code before migration 13 (a rolling upgrade) records events and their
    rollups but not their days: reconcile_deployment_days recomputes the days of what was recorded
    since, and every day row from that day on; days nothing recent touched are left as they are."""
    earlier = generated(300, seed=11, days=6)
    moved = min(earlier, key=lambda e: e.ts)  # its deployment's latest event moves 4 days on
    new = DeploymentEvent("late-s", "late", "uat", EventType.START, T0 + 5 * DAY, version="9.0.0")
    late = [outcome(moved.deployment_id, moved.environment, EventType.ROLLBACK, moved.ts + 4 * DAY), new]
    late.append(outcome("late", "uat", EventType.SUCCESS, T0 + 5 * DAY + timedelta(hours=1)))
    events = [*earlier, *late]
    await store.add_deployment_events(earlier, T0 + 6 * DAY)
    fresh = await stored_days(store)
    # The older writer, as its code did: the events, their deployments' rollups, no days.
    recorded = T0 + 8 * DAY
    ids = sorted({e.deployment_id for e in late})
    async with store._engine.begin() as conn:
        await conn.execute(deployment_events.insert(), [event_row(e, recorded) for e in late])
        rolled = rollup_select(deployment_events).where(deployment_events.c.deployment_id.in_(ids))
        await conn.execute(
            dialects.upsert_from_select(
                store.dialect_name, deployment_rollups, key=["deployment_id"], select=rolled
            )
        )
    assert await stored_days(store) == fresh != await recomputed_days(store)
    # A day the late events touch nowhere, made stale: not reached by the reconciliation.
    untouched = {day_of(e) for e in earlier} - {day_of(e) for e in events if e.deployment_id in ids}
    env, day = min(untouched)
    async with store._engine.begin() as conn:
        stale = deployment_days.c.environment == env, deployment_days.c.day == day
        await conn.execute(sa.update(deployment_days).where(*stale).values(outcome_observed=99))
    assert await store.reconcile_deployment_days(recorded) > 0
    left = await stored_days(store)
    assert {r for r in left if (r[0], r[1]) != (env, day)} == {
        r for r in await recomputed_days(store) if (r[0], r[1]) != (env, day)
    }
    assert (
        next(r for r in left if (r[0], r[1]) == (env, day))[2:]
        != next(r for r in fresh if (r[0], r[1]) == (env, day))[2:]
    )
    await store.reconcile_deployment_days(T0 - DAY)  # every day: the stale one too
    await assert_history_matches(store, events, days=7)


async def test_the_retention_job_reconciles_today_and_yesterday(store: Store) -> None:
    now = datetime.now(UTC)
    start = DeploymentEvent("r-s", "r", "uat", EventType.START, now - timedelta(hours=2), version="2.0.0")
    events = [start, outcome("r", "uat", EventType.SUCCESS, now - timedelta(hours=1))]
    await store.add_deployment_events(events, now)
    fresh = await stored_days(store)
    async with store._engine.begin() as conn:
        await conn.execute(sa.delete(deployment_days))
    settings = parse_config("environments: {}\n", "test")
    await enforce_retention(SimpleNamespace(settings=settings, store=store))
    assert await stored_days(store) == fresh == await recomputed_days(store)


async def test_the_last_day_of_the_calendar_has_no_midnight_after(store: Store) -> None:
    """9999-12-31 is a day like any other: recording an event on it and reading a window from
    inside it must not work out the (unrepresentable) midnight after it."""
    last = datetime(9999, 12, 31, tzinfo=UTC)
    start = DeploymentEvent("z-s", "z", "uat", EventType.START, last - timedelta(hours=1), version="1.0.0")
    success = outcome("z", "uat", EventType.SUCCESS, last + timedelta(hours=3))
    end = outcome("y", "uat", EventType.FAILURE, datetime.max.replace(tzinfo=UTC))
    events = [start, success, end]
    await store.add_deployment_events(events[:2], T0)
    assert await store.add_deployment_event(end, T0)
    await store.update_deployment_event(replace(success, ts=last + timedelta(hours=4)))
    events[1] = replace(success, ts=last + timedelta(hours=4))
    assert await stored_days(store) == await recomputed_days(store)
    for since in (None, last - DAY, last - SECOND, last, last + SECOND, last + timedelta(hours=5), end.ts):
        for environment in (None, "uat"):
            summary = await store.deployment_summary(environment=environment, since=since)
            assert summary == expected_summary(events, environment, since, None), since
            await assert_counts(store, events, environment, (since, None), (None, [EventType.FAILURE.value]))


async def test_random_writes_answer_as_before(store: Store) -> None:
    """Differential: seeded sequences of batches, re-sent events, single events and updates (to
    another day, type or environment), then every kind of window, environment and type filter
    against the pre-deployment_days definitions worked out from the events."""
    sinces: list[datetime | None] = [None, T0 - DAY]
    for k in range(5):
        sinces += [T0 + k * DAY + offset for offset in (timedelta(0), -SECOND, timedelta(hours=7))]
    sinces.append((T0 + 2 * DAY).astimezone(timezone(timedelta(hours=-3))))  # 21:00 the day before
    bounded = [(T0 + DAY - SECOND, T0 + 3 * DAY + timedelta(hours=2)), (None, T0 + 2 * DAY)]
    windows = [(since, None) for since in sinces] + bounded
    for seed in range(4):
        writes = random_writes(seed)
        for call, batch in writes:
            if call == "update":
                await store.update_deployment_event(batch[0])
            elif call == "add_one":
                await store.add_deployment_event(batch[0], T0)
            else:
                await store.add_deployment_events(batch, T0, history=seed % 2 == 1)
        events = stored_after(writes)
        for environment in (None, ENVIRONMENTS[0], "dev"):
            for since, until in windows:
                where = f"seed={seed} environment={environment} since={since} until={until}"
                summary = await store.deployment_summary(environment=environment, since=since, until=until)
                assert summary == rollup_summary(events, environment, since, until), where
                filters = (None, [EventType.ROLLBACK.value, "unknown"])
                await assert_counts(store, events, environment, (since, until), filters)
        assert await stored_days(store) == await recomputed_days(store), f"seed={seed}"
        await clear_history(store)


async def clear_history(store: Store) -> None:
    async with store._engine.begin() as conn:
        for table in (deployment_days, deployment_rollups, deployment_events):
            await conn.execute(table.delete())
