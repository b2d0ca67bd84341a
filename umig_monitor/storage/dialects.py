"""The only SQL that differs between SQLite and PostgreSQL, kept in one place.

Everything else in the store is dialect-neutral Core. Supporting a new backend means adding a
branch to each function here and nothing elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from umig_monitor.storage.types import UTCDateTime


def upsert(dialect_name: str, table: sa.Table, *, key: Sequence[str]) -> sa.Insert:
    """INSERT that overwrites every non-key column of the row already holding ``key``."""
    statement = _insert(dialect_name, table)
    updates = {column.name: statement.excluded[column.name] for column in table.c if column.name not in key}
    return statement.on_conflict_do_update(index_elements=list(key), set_=updates)


def upsert_from_select(
    dialect_name: str, table: sa.Table, *, key: Sequence[str], select: sa.Select[Any]
) -> sa.Insert:
    """INSERT ... SELECT that overwrites the non-key columns of rows already holding ``key``."""
    statement = _insert(dialect_name, table).from_select([c.name for c in table.c], select)
    updates = {column.name: statement.excluded[column.name] for column in table.c if column.name not in key}
    return statement.on_conflict_do_update(index_elements=list(key), set_=updates)


def insert_ignore(dialect_name: str, table: sa.Table, *, key: Sequence[str]) -> sa.Insert:
    """INSERT that silently skips a row whose ``key`` already exists (idempotent enqueue)."""
    return _insert(dialect_name, table).on_conflict_do_nothing(index_elements=list(key))


def _insert(dialect_name: str, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT, which knows ON CONFLICT."""
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no ON CONFLICT insert for dialect {dialect_name!r}")


def hour_floor(dialect_name: str, ts: sa.ColumnElement[datetime]) -> sa.ColumnElement[datetime]:
    """``ts`` truncated to the start of its UTC hour, typed so it reads back as a UTC datetime."""
    return _floor(dialect_name, ts, "hour")


def day_floor(dialect_name: str, ts: sa.ColumnElement[datetime]) -> sa.ColumnElement[datetime]:
    """``ts`` truncated to the start of its UTC day (midnight UTC), typed likewise."""
    return _floor(dialect_name, ts, "day")


def _floor(
    dialect_name: str, ts: sa.ColumnElement[datetime], unit: Literal["hour", "day"]
) -> sa.ColumnElement[datetime]:
    """Constants are literal SQL, not bound parameters, so the same expression in SELECT and
    GROUP BY is textually identical (PostgreSQL insists)."""
    floored: sa.ColumnElement[object]
    if dialect_name == "sqlite":
        # Same fixed-width text SQLAlchemy writes for a DATETIME, so it compares with stored values.
        pattern = {"hour": "%Y-%m-%d %H:00:00.000000", "day": "%Y-%m-%d 00:00:00.000000"}[unit]
        # A day from the text's date alone: strftime rounds the time to milliseconds, and on
        # 9999-12-31 23:59:59.9995 and later that is past the calendar: NULL.
        source: sa.ColumnElement[Any] = (
            sa.func.substr(ts, sa.literal_column("1"), sa.literal_column("10")) if unit == "day" else ts
        )
        floored = sa.func.strftime(sa.literal_column(f"'{pattern}'"), source)
    elif dialect_name == "postgresql":
        utc: sa.ColumnElement[str] = sa.literal_column("'UTC'")
        floored = sa.func.timezone(
            utc, sa.func.date_trunc(sa.literal_column(f"'{unit}'"), sa.func.timezone(utc, ts))
        )
    else:
        raise NotImplementedError(f"no {unit} truncation for dialect {dialect_name!r}")
    return sa.type_coerce(floored, UTCDateTime())
