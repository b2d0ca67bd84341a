"""The per-day deployment counts (``deployment_days``) that keep a history window's cost flat: the
days a write touches and their refresh, in its transaction, from the events and rollups; and what
an open window ("since T", the usual "last N days") reads of them: its whole days from here, only
T's own day from the events and rollups themselves."""

from __future__ import annotations

import functools
import operator
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from umig_monitor.core.deployments import DeploymentEvent, Summary
from umig_monitor.storage import dialects
from umig_monitor.storage.migrations import (
    DAY_EVENT_COLUMNS,
    DAY_EVENT_TYPES,
    DAY_OUTCOME_COLUMNS,
    day_select,
    outcome_counts,
)
from umig_monitor.storage.schema import deployment_days as days
from umig_monitor.storage.schema import deployment_events as events
from umig_monitor.storage.schema import deployment_rollups as rollups

DAY: Final = timedelta(days=1)
# Where the whole days of a window from inside the calendar's last day start: there are none.
NO_DAYS: Final = datetime.max.replace(tzinfo=UTC)
COLUMNS: Final = [c.name for c in days.c]

Day = tuple[str, datetime]  # (environment, midnight UTC): the key of a row


def midnight(ts: datetime) -> datetime:
    """The start of ``ts``'s UTC day."""
    utc = ts.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def after(day: datetime) -> datetime | None:
    """The midnight after ``day`` (a midnight); None after 9999-12-31, which has none."""
    return day + DAY if day.date() < date.max else None


def day_of(e: DeploymentEvent) -> Day:
    return e.environment, midnight(e.ts)


async def days_of_rollups(
    conn: AsyncConnection, dialect_name: str, deployment_ids: Collection[str]
) -> set[Day]:
    """The days these deployments' rollups count them on (their latest event's), each once: the
    day is worked out in the database, so a few rows come back for hundreds of deployments."""
    day = dialects.day_floor(dialect_name, rollups.c.last_ts)
    query = (
        sa.select(rollups.c.environment, day).distinct().where(rollups.c.deployment_id.in_(deployment_ids))
    )
    return {(env, day) for env, day in await conn.execute(query)}


async def days_to_reconcile(conn: AsyncConnection, dialect_name: str, since: datetime) -> set[Day]:
    """The days of every event of the deployments with an event recorded at or after ``since``
    (a late event moves its deployment off the day of an earlier one), and every day row from
    ``since``'s day on: by the recording-time, deployment and day indexes."""
    recorded = sa.select(events.c.deployment_id).where(events.c.created_at >= since)
    ids = sorted(set(await conn.scalars(recorded)))  # DISTINCT in SQL would walk the id index
    day = dialects.day_floor(dialect_name, events.c.ts)
    found: set[Day] = set()
    for i in range(0, len(ids), 500):
        of_events = sa.select(events.c.environment, day).distinct()
        found |= {
            (env, d)
            for env, d in await conn.execute(of_events.where(events.c.deployment_id.in_(ids[i : i + 500])))
        }
    of_rows = sa.select(days.c.environment, days.c.day).where(days.c.day >= midnight(since))
    return found | {(env, d) for env, d in await conn.execute(of_rows)}


async def refresh(conn: AsyncConnection, dialect_name: str, touched: Collection[Day]) -> None:
    """Recompute these days' rows from the events and rollups as they now are; a day left with
    nothing loses its row. Consecutive days of an environment are one span, two statements."""
    for span in spans(touched):
        name, start, end = span
        stale = days.delete().where(days.c.environment == name, days.c.day >= start)
        if end is not None:
            stale = stale.where(days.c.day < end)
        await conn.execute(stale)
        await conn.execute(
            days.insert().from_select(COLUMNS, day_select(dialect_name, events, rollups, span))
        )


def spans(touched: Collection[Day]) -> list[tuple[str, datetime, datetime | None]]:
    """(environment, first midnight, the midnight after the last, None after the calendar's last
    day) of each run of consecutive days."""
    out: list[tuple[str, datetime, datetime | None]] = []
    for environment, day in sorted(touched):
        if out and out[-1][0] == environment and out[-1][2] == day:
            out[-1] = (environment, out[-1][1], after(day))
        else:
            out.append((environment, day, after(day)))
    return out


def split(since: datetime | None) -> tuple[datetime | None, tuple[datetime, datetime | None] | None]:
    """An open window from ``since``: where its whole days start (None: every day), and the range
    of its first, partial day when it does not start at midnight (open on the calendar's last day,
    which has no whole day after it)."""
    if since is None:
        return None, None
    first = midnight(since)
    if first == since:
        return first, None
    following = after(first)
    return following or NO_DAYS, (since, following)


def _whole_days(query: Any, environment: str | None, first: datetime | None) -> Any:
    if environment is not None:
        query = query.where(days.c.environment == environment)
    if first == NO_DAYS:  # not a comparison: PostgreSQL stores datetime.max as infinity
        query = query.where(sa.false())
    elif first is not None:
        query = query.where(days.c.day >= first)
    return query


def events_in_days(environment: str | None, first: datetime | None, types: Sequence[str] | None) -> Any:
    """The number of events of ``types`` (any, when none are given) in the whole days from
    ``first`` (every day when None), as a scalar subquery; 0 when no type named is one stored."""
    wanted = set(types or DAY_EVENT_TYPES)
    columns = [days.c[n] for t, n in zip(DAY_EVENT_TYPES, DAY_EVENT_COLUMNS, strict=True) if t in wanted]
    if not columns:
        return sa.literal(0)
    total = sa.func.coalesce(sa.func.sum(functools.reduce(operator.add, columns)), 0)
    return _whole_days(sa.select(total), environment, first).scalar_subquery()


def outcomes(
    environment: str | None, first: datetime | None, partial: tuple[datetime, datetime | None] | None
) -> Any:
    """The window's DAY_OUTCOME_COLUMNS: its whole days' rows summed, with the outcomes of the
    deployments whose latest event is in its partial first day, from their rollups."""
    parts = [_whole_days(sa.select(*(days.c[n] for n in DAY_OUTCOME_COLUMNS)), environment, first)]
    if partial is not None:
        r = rollups.c
        since, until = partial
        of_day = sa.select(*outcome_counts(r.started, r.success_ts, r.failure_ts, r.rollback_ts))
        of_day = of_day.where(r.last_ts >= since)
        if until is not None:
            of_day = of_day.where(r.last_ts < until)
        if environment is not None:
            of_day = of_day.where(r.environment == environment)
        else:
            # A deployment whose latest event is on that day has the day's row in its environment:
            # the environments with one are where to look (index seeks, not the whole rollups).
            on_that_day = sa.select(days.c.environment).where(days.c.day == midnight(since))
            of_day = of_day.where(r.environment.in_(on_that_day))
        parts.append(of_day)
    both = sa.union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    return sa.select(*(sa.func.sum(both.c[n]) for n in DAY_OUTCOME_COLUMNS))


def summary(counts: Sequence[Any]) -> Summary:
    """The summary of DAY_OUTCOME_COLUMNS' values (NULL: none)."""
    n = dict(zip(DAY_OUTCOME_COLUMNS, (int(v or 0) for v in counts), strict=True))
    successful = n["outcome_success"]
    finished = successful + n["outcome_failure"] + n["outcome_rollback"]
    return Summary(
        total=finished + n["outcome_in_progress"] + n["outcome_observed"],
        successful=successful,
        failed=n["with_failure"],
        rollbacks=n["with_rollback"],
        in_progress=n["outcome_in_progress"],
        observed=n["outcome_observed"],
        success_rate=successful / finished if finished else None,
    )
