"""Storage: one ``Store`` over SQLAlchemy Core, SQLite by default, PostgreSQL as an option.

Jobs import from here; the submodules are the store's internals (schema, migrations, types).
"""

from umig_monitor.storage.errors import StorageError
from umig_monitor.storage.migrations import LATEST_VERSION
from umig_monitor.storage.records import HealthRollup, PruneResult
from umig_monitor.storage.store import Store

__all__ = ["LATEST_VERSION", "HealthRollup", "PruneResult", "StorageError", "Store"]
