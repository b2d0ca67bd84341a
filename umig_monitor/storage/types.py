"""Column types shared by the live schema and the migrations.

They exist so that SQLite and PostgreSQL store the same values the same way: UTC instants
that come back timezone-aware, JSON documents, and integer ids that autoincrement on both.
Migrations import these types (never the live tables), so changing one of them is a storage
format change and needs its own migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A point in time: timezone-aware in Python, UTC in the database.

    PostgreSQL stores it as ``timestamptz``. SQLite has no date type, so SQLAlchemy writes a
    fixed-width ISO text in UTC, which orders the same way as the instants it encodes. Naive
    datetimes are refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_doc(*, none_as_null: bool = False) -> sa.types.TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL.

    ``none_as_null=True`` stores Python ``None`` as SQL NULL (for optional documents);
    otherwise ``None`` would be the JSON literal ``null``.
    """
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


def surrogate_id() -> sa.types.TypeEngine[int]:
    """BIGINT identity on PostgreSQL; plain INTEGER on SQLite, where only that aliases the rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
