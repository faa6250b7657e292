"""Jobs, candidates, evaluations, customizations, per-sample evidence and durable steps.

Revision ID: 0002_jobs
Revises: 0001_log_records
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_jobs"
down_revision = "0001_log_records"
branch_labels = None
depends_on = None


def _fk(column: str, target: str, name: str) -> sa.Column:
    return sa.Column(
        column, sa.String(32), sa.ForeignKey(target, ondelete="CASCADE", name=name), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("workload_id", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("num_records", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("datasets", sa.Text(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_workload_created", "jobs", ["workload_id", "created_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "job_candidates",
        sa.Column("id", sa.String(32), nullable=False),
        _fk("job_id", "jobs.id", "fk_job_candidates_job_id_jobs"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("deployment_status", sa.String(24), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("runtime_seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_candidates"),
    )
    op.create_index("ix_job_candidates_job_id", "job_candidates", ["job_id"])
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(32), nullable=False),
        _fk("job_id", "jobs.id", "fk_evaluations_job_id_jobs"),
        _fk("candidate_id", "job_candidates.id", "fk_evaluations_candidate_id_job_candidates"),
        sa.Column("eval_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("runtime_seconds", sa.Float(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("nmp_uri", sa.Text(), nullable=True),
        sa.Column("mlflow_uri", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
    )
    op.create_index("ix_evaluations_job_id", "evaluations", ["job_id"])
    op.create_table(
        "customizations",
        sa.Column("id", sa.String(32), nullable=False),
        _fk("job_id", "jobs.id", "fk_customizations_job_id_jobs"),
        _fk("candidate_id", "job_candidates.id", "fk_customizations_candidate_id_job_candidates"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("runtime_seconds", sa.Float(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("epochs_completed", sa.Integer(), nullable=False),
        sa.Column("steps_completed", sa.Integer(), nullable=False),
        sa.Column("adapter_path", sa.Text(), nullable=True),
        sa.Column("customized_model", sa.Text(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("nmp_uri", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customizations"),
    )
    op.create_index("ix_customizations_job_id", "customizations", ["job_id"])
    op.create_table(
        "evaluation_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "evaluation_id",
            sa.String(32),
            sa.ForeignKey(
                "evaluations.id", ondelete="CASCADE", name="fk_evaluation_samples_evaluation_id_evaluations"
            ),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(80), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("sample", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluation_samples"),
    )
    op.create_index("ix_evaluation_samples_evaluation_id", "evaluation_samples", ["evaluation_id"])
    op.create_table(
        "job_steps",
        sa.Column("id", sa.String(32), nullable=False),
        _fk("job_id", "jobs.id", "fk_job_steps_job_id_jobs"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("candidate_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_steps"),
    )
    op.create_index("ix_job_steps_job_id", "job_steps", ["job_id"])


def downgrade() -> None:
    for table in (
        "job_steps",
        "evaluation_samples",
        "customizations",
        "evaluations",
        "job_candidates",
        "jobs",
    ):
        op.drop_table(table)
