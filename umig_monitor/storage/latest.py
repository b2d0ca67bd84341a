"""The newest row per environment, read with index seeks instead of a scan of every row.

A ``GROUP BY environment`` reads the whole (environment, ts) index: 1 M samples for 1,000
environments. Here the environments come from a loose index scan (a recursive CTE: the smallest
name, then the smallest after it, one seek each), and each environment's newest row from a
correlated ``ORDER BY ts DESC LIMIT 1`` on the same index: about three seeks per environment
whatever the table holds. Plain SQL that SQLite and PostgreSQL both plan this way (no LATERAL,
which SQLite lacks, and no ``DISTINCT ON`` or skip scan, which only one of them has). The rows
themselves come in a second statement by primary key: joined in one, PostgreSQL may pick a hash
join that reads the whole table when its estimate of the environments is off.

It costs nothing at write time, unlike a "latest sample" table the writer keeps: the poll round,
the hot path, stays one INSERT, and nothing can disagree with the samples themselves.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

# Primary keys per statement of the second read: well under SQLite's and asyncpg's bound-parameter limits.
CHUNK = 2000


def distinct_values(column: sa.Column[str], name: str = "names") -> sa.CTE:
    """A CTE (column ``value``) of the distinct non-NULL values of an indexed ``column``."""
    first = sa.select(sa.func.min(column).label("value")).cte(name, recursive=True)
    following = sa.select(sa.func.min(column)).where(column > first.c.value).scalar_subquery()
    return first.union_all(sa.select(following).where(first.c.value.is_not(None)))


def newest_ids(
    table: sa.Table,
    *,
    order: Sequence[str] = ("ts", "id"),
    where: Sequence[sa.ColumnElement[bool]] = (),
    only: Collection[str] | None = None,
) -> sa.Select[tuple[object]]:
    """The ``id`` of each environment's newest row of ``table`` by ``order`` (descending; later
    columns break ties), among rows matching ``where`` (written against ``table``); only the
    environments in ``only`` when given. NULL for an environment with no matching row."""
    names = distinct_values(table.c.environment)
    newer = table.alias(f"newest_{table.name}")
    adapt = sa.sql.util.ClauseAdapter(newer)
    conditions = [adapt.traverse(condition) for condition in where]
    pick = (
        sa.select(newer.c.id)
        .where(newer.c.environment == names.c.value, *conditions)
        .order_by(*(newer.c[column].desc() for column in order))
        .limit(1)
        .scalar_subquery()
    )
    statement = sa.select(pick).where(names.c.value.is_not(None))
    if only is not None:
        statement = statement.where(names.c.value.in_(sorted(only)))
    return statement


async def newest_rows(
    conn: AsyncConnection,
    table: sa.Table,
    columns: Sequence[sa.ColumnElement[Any]],
    *,
    where: Sequence[sa.ColumnElement[bool]] = (),
    only: Collection[str] | None = None,
) -> list[RowMapping]:
    """``columns`` of each environment's newest row of ``table`` (by ts, then id), in two statements."""
    ids = [
        i for i in (await conn.execute(newest_ids(table, where=where, only=only))).scalars() if i is not None
    ]
    rows: list[RowMapping] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows += (await conn.execute(sa.select(*columns).where(table.c.id.in_(chunk)))).mappings().all()
    return rows
