"""Tables of the store, as SQLAlchemy Core metadata.

The migrations under ``migrations/versions`` create exactly these tables; ``tests/store/test_migrations.py``
checks that a freshly migrated database matches this metadata. Change the schema only by adding a migration.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

#: Width of the name columns (workload_id, client_id, model_name): what every store holds in one, in characters.
NAME_CHARS = 255

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
    Column("workload_id", String(NAME_CHARS), nullable=False),
    Column("client_id", String(NAME_CHARS), nullable=False),
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
    Column(
        "raw_hash",
        String(80),
        nullable=True,
        doc="Identity of the input within its source (hash of source and raw input): re-ingesting the same bad "
        "line adds no row. NULL on rows written before migration 0003.",
    ),
    Index("ux_quarantined_records_raw_hash", "raw_hash", unique=True),
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

# ----------------------------------------------------------------------------------------------------------- jobs
# A job (a "flywheel run") and what it produced. JSON payloads are stored as text so that SQLite and PostgreSQL
# behave the same; the shapes are documented where they are written (flywheel.service.jobs).

#: One flywheel run for a (workload_id, client_id).
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workload_id", String(NAME_CHARS), nullable=False),
    Column("client_id", String(NAME_CHARS), nullable=False),
    Column("status", String(16), nullable=False, doc="pending | running | completed | failed | cancelled"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    Column("num_records", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("request", Text, nullable=False, doc="The job request as submitted (JSON)."),
    Column("config", Text, nullable=False, doc="The effective configuration the job runs with (JSON)."),
    Column("datasets", Text, nullable=False, default="[]", doc="[{name, num_records, path}] (JSON)."),
    Column("manifest", Text, nullable=True, doc="The dataset manifest (JSON)."),
    Column("cancel_requested", Integer, nullable=False, default=0),
    Index("ix_jobs_workload_created", "workload_id", "created_at"),
    Index("ix_jobs_status", "status"),
)

#: A candidate model within a job (the reference's "nims").
job_candidates = Table(
    "job_candidates",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("model_name", String(NAME_CHARS), nullable=False),
    Column(
        "status", String(24), nullable=False, doc="pending | running-evals | completed | failed | cancelled"
    ),
    Column("deployment_status", String(24), nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("runtime_seconds", Float, nullable=False, default=0.0),
    Column("error", Text, nullable=True),
)

#: One evaluation (base-eval | icl-eval | customized-eval) of one candidate.
evaluations = Table(
    "evaluations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("candidate_id", String(32), ForeignKey("job_candidates.id", ondelete="CASCADE"), nullable=False),
    Column("eval_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column(
        "scores", Text, nullable=False, default="{}", doc="{metric: value} (JSON), the reference's shape."
    ),
    Column("result", Text, nullable=True, doc="Full result with n, confidence intervals, usage (JSON)."),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("runtime_seconds", Float, nullable=False, default=0.0),
    Column("progress", Float, nullable=False, default=0.0),
    Column("nmp_uri", Text, nullable=True),
    Column("mlflow_uri", Text, nullable=True),
    Column("error", Text, nullable=True),
)

#: One LoRA fine-tuning of one candidate.
customizations = Table(
    "customizations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("candidate_id", String(32), ForeignKey("job_candidates.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("runtime_seconds", Float, nullable=False, default=0.0),
    Column("progress", Float, nullable=False, default=0.0),
    Column("epochs_completed", Integer, nullable=False, default=0),
    Column("steps_completed", Integer, nullable=False, default=0),
    Column("adapter_path", Text, nullable=True),
    Column("customized_model", Text, nullable=True),
    Column("metrics", Text, nullable=True, doc="Loss curves and training figures (JSON)."),
    Column("nmp_uri", Text, nullable=True),
    Column("error", Text, nullable=True),
)

#: Per-sample evidence of an evaluation: teacher vs candidate answer, scores, judge transcript.
evaluation_samples = Table(
    "evaluation_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "evaluation_id",
        String(32),
        ForeignKey("evaluations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("position", Integer, nullable=False),
    Column("record_id", String(80), nullable=True),
    Column(
        "score", Float, nullable=True, doc="The sample's headline score, for filtering divergent samples."
    ),
    Column("sample", Text, nullable=False, doc="The evidence (JSON)."),
)

#: A durable unit of work of a job, claimed by one worker at a time under a lease.
job_steps = Table(
    "job_steps",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(32), nullable=False, doc="curate | base-eval | icl-eval | customization | ..."),
    Column("candidate_id", String(32), nullable=True),
    Column("status", String(16), nullable=False, doc="pending | running | completed | failed | cancelled"),
    Column("progress", Float, nullable=False, default=0.0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("worker_id", String(128), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("result", Text, nullable=True, doc="What the step produced (JSON)."),
)
