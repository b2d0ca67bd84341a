"""Turning a configured database URL into a ready async engine.

Operators write ``sqlite:////var/lib/umig-monitor/state.db`` or ``postgresql://...``; this module
picks the async driver, creates the SQLite file's directory, and sets the per-connection
SQLite settings a long-running daemon with concurrent jobs needs (WAL, busy timeout, foreign
keys, real transactions around DDL).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import in_greenlet

from umig_monitor.storage.errors import StorageError

SQLITE_DRIVER: Final = "sqlite+aiosqlite"
POSTGRES_DRIVER: Final = "postgresql+asyncpg"
SQLITE_BUSY_TIMEOUT_MS: Final = 5000

# Execution option read by the SQLite "begin" hook: write transactions take the write lock up
# front, so a transaction that reads and then writes never fails with SQLITE_BUSY half-way
# (a deferred transaction cannot wait for the lock once it has read).
WRITE_TRANSACTION: Final = {"umig_sqlite_begin": "BEGIN IMMEDIATE"}

_SQLITE_DRIVERS: Final = frozenset({"sqlite", SQLITE_DRIVER})
_POSTGRES_DRIVERS: Final = frozenset({"postgres", "postgresql", POSTGRES_DRIVER})


def normalize_url(url: str | URL) -> URL:
    """Map the URL an operator wrote to the async driver umig-monitor uses for it."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise StorageError(f"invalid database URL: {error}") from error
    if parsed.drivername in _SQLITE_DRIVERS:
        return parsed.set(drivername=SQLITE_DRIVER)
    if parsed.drivername in _POSTGRES_DRIVERS:
        return parsed.set(drivername=POSTGRES_DRIVER)
    raise StorageError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///PATH or postgresql://..."
    )


def redacted(url: str | URL) -> str:
    """The URL as it may appear in logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: str | URL, *, pool_size: int = 5) -> AsyncEngine:
    """Build the engine for ``url``.

    For a SQLite file this blocks briefly: it creates the directory and opens the file once,
    so that a wrong path is reported here, clearly, rather than from inside the pool.
    """
    target = normalize_url(url)
    if target.get_backend_name() == "sqlite":
        return _sqlite_engine(target, pool_size=pool_size)
    engine = create_async_engine(
        target,
        pool_size=pool_size,
        pool_pre_ping=True,
        # Keep the server's session time zone out of date_trunc() and of timestamptz rendering.
        connect_args={"server_settings": {"timezone": "UTC"}},
    )
    engine.dialect.do_terminate = _terminate_postgres_connection  # type: ignore[method-assign]
    return engine


def _sqlite_engine(url: URL, *, pool_size: int) -> AsyncEngine:
    kwargs: dict[str, Any]
    if is_sqlite_memory(url):
        # One shared connection, or every checkout would see its own empty database.
        url = url.set(database=":memory:")
        kwargs = {"poolclass": pool.StaticPool}
    else:
        _check_sqlite_file(url)
        kwargs = {"pool_size": pool_size}
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    event.listen(engine.sync_engine, "begin", _begin_sqlite_transaction)
    engine.dialect.do_terminate = _terminate_sqlite_connection  # type: ignore[method-assign]
    return engine


def _check_sqlite_file(url: URL) -> None:
    database = url.database or ""
    if url.query.get("uri") or database.startswith("file:"):
        return
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(
            f"cannot create directory {str(path.parent)!r} for the SQLite database: {error.strerror or error}"
        ) from error
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StorageError(
            f"directory {str(path.parent)!r} is not writable: SQLite keeps its -wal and -shm files beside "
            "the database"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StorageError(f"SQLite database file {str(path)!r} is not readable and writable")
    # Opening here, not first in aiosqlite's worker thread, also keeps a failed open from
    # leaving that thread behind.
    try:
        # WAL here, once, while the engine is built: a new file switched to WAL by several pooled
        # connections (or replicas) racing on their first connect could answer "database is
        # locked" to one of them (seen once in a suite run, four engines migrating one new file).
        opened = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            opened.execute("PRAGMA journal_mode=WAL")
        finally:
            opened.close()
    except sqlite3.Error as error:
        hint = " (the path is a directory)" if path.is_dir() else ""
        raise StorageError(f"cannot open SQLite database file {str(path)!r}: {error}{hint}") from error


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module, which skips it before DDL; see
    # _begin_sqlite_transaction. Without this a failed migration would be half applied.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _terminate_sqlite_connection(dbapi_connection: Any) -> None:
    """How the pool throws away a connection whose statement was cancelled (a timeout, a shutdown),
    or one it finds in the garbage.

    SQLAlchemy's own way closes it gracefully in a shielded task and, when the caller is cancelled
    again meanwhile, stops aiosqlite's worker thread as well; that graceful close then waits
    forever for the stopped worker (aiosqlite 0.22): a pending task, reported as destroyed whenever
    the collector finds it. Closed here in the cancelled task itself, a second cancellation only
    cuts the wait short: aiosqlite still closes the connection and ends its worker. Outside a
    greenlet (garbage collection) nothing can wait, so the worker is stopped at once, as before.
    """
    if in_greenlet():
        dbapi_connection.close()
    else:
        dbapi_connection.terminate()


def _terminate_postgres_connection(dbapi_connection: Any) -> None:
    """How the pool throws away an asyncpg connection whose statement was cancelled.

    SQLAlchemy's own way closes it gracefully inside ``asyncio.shield``; when the caller is
    cancelled again meanwhile it aborts the connection under the still-running graceful close,
    whose ``ConnectionError('unexpected connection_lost() call')`` nobody then retrieves: an
    asyncio "Future exception was never retrieved" error in the log at every shutdown that
    interrupts a query (asyncpg issue 1211). Aborting at once is what that path ends in anyway:
    the socket closes and the server ends the session."""
    dbapi_connection.driver_connection.terminate()


def _begin_sqlite_transaction(connection: Connection) -> None:
    statement = connection.get_execution_options().get("umig_sqlite_begin", "BEGIN")
    connection.exec_driver_sql(statement)
