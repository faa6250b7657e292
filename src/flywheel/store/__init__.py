"""The store: SQLAlchemy 2 over a SQLite file (embedded default) or PostgreSQL (server), with named migrations."""

from flywheel.store._engine import connect, current_revision, head_revision, migrate, open_store, table_names
from flywheel.store._schema import ingestions, log_records, metadata, quarantined_records

__all__ = [
    "connect",
    "current_revision",
    "head_revision",
    "ingestions",
    "log_records",
    "metadata",
    "migrate",
    "open_store",
    "quarantined_records",
    "table_names",
]
