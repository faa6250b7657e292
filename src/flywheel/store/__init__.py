"""The store: SQLAlchemy 2 over a SQLite file (embedded default) or PostgreSQL (server), with named migrations."""

from flywheel.store._engine import connect, current_revision, head_revision, migrate, open_store, table_names
from flywheel.store._quarantine import QuarantinedRecord, list_quarantined, quarantined_record
from flywheel.store._schema import (
    NAME_CHARS,
    customizations,
    evaluation_samples,
    evaluations,
    ingestions,
    job_candidates,
    job_steps,
    jobs,
    log_records,
    metadata,
    quarantined_records,
)

__all__ = [
    "NAME_CHARS",
    "QuarantinedRecord",
    "connect",
    "current_revision",
    "customizations",
    "evaluation_samples",
    "evaluations",
    "head_revision",
    "ingestions",
    "job_candidates",
    "job_steps",
    "jobs",
    "list_quarantined",
    "log_records",
    "metadata",
    "migrate",
    "open_store",
    "quarantined_record",
    "quarantined_records",
    "table_names",
]
