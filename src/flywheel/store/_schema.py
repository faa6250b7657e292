"""Tables of the store, as SQLAlchemy Core metadata.

The migrations under ``migrations/versions`` create exactly these tables; ``tests/store/test_migrations.py``
checks that a freshly migrated database matches this metadata. Change the schema only by adding a migration.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

#: One logged request/response pair. ``data`` is the record as logged (JSON text); ``record_hash`` its identity.
log_records = Table(
    "log_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_hash", String(80), nullable=False, unique=True),
    Column("workload_id", String(255), nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("timestamp", Float, nullable=False, doc="Seconds since the epoch (UTC)."),
    Column("ingested_at", Float, nullable=False),
    Column("ingestion_id", String(32), nullable=True),
    Column("data", Text, nullable=False),
    Index("ix_log_records_workload_client_ts", "workload_id", "client_id", "timestamp"),
)

#: A line or item that could not be ingested, with the reason; nothing a user sends is dropped silently.
quarantined_records = Table(
    "quarantined_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ingestion_id", String(32), nullable=True, index=True),
    Column("source", Text, nullable=False),
    Column("line_number", Integer, nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

#: One ingestion call (a file, an API request, an SDK batch, an Elasticsearch import) and its counts.
ingestions = Table(
    "ingestions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("source", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("accepted", Integer, nullable=False, default=0),
    Column("duplicates", Integer, nullable=False, default=0),
    Column("quarantined", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
)
