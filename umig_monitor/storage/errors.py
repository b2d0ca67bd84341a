"""The one exception the storage layer raises, and the translation of driver errors into it.

Callers (the daemon at start-up, jobs at run time) catch ``StorageError`` and get a message a
person can act on, without knowing whether SQLite or PostgreSQL is underneath.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class StorageError(Exception):
    """The database could not be opened, migrated, read or written."""


def describe(error: BaseException) -> str:
    """The driver's own message, without the SQL statement and its parameters."""
    if isinstance(error, sa_exc.StatementError) and error.orig is not None:
        error = error.orig
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn driver and I/O failures during ``action`` into ``StorageError``.

    A value the caller got wrong (a naive datetime, a document that is not JSON) surfaces as
    the original ``ValueError``/``TypeError``: it is a bug in the caller, not a storage failure.
    """
    try:
        yield
    except StorageError:
        raise
    except sa_exc.DBAPIError as error:
        raise StorageError(f"{action} failed: {describe(error)}") from error
    except sa_exc.StatementError as error:
        if isinstance(error.orig, ValueError | TypeError):
            raise error.orig from None
        raise StorageError(f"{action} failed: {describe(error)}") from error
    except sa_exc.SQLAlchemyError as error:
        raise StorageError(f"{action} failed: {describe(error)}") from error
    except OSError as error:
        raise StorageError(f"{action} failed: {describe(error)}") from error
