"""Log records, quarantine and ingestions.

Revision ID: 0001_log_records
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_log_records"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("record_hash", sa.String(80), nullable=False),
        sa.Column("workload_id", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("ingested_at", sa.Float(), nullable=False),
        sa.Column("ingestion_id", sa.String(32), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_log_records"),
        sa.UniqueConstraint("record_hash", name="uq_log_records_record_hash"),
    )
    op.create_index(
        "ix_log_records_workload_client_ts", "log_records", ["workload_id", "client_id", "timestamp"]
    )
    op.create_table(
        "quarantined_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ingestion_id", sa.String(32), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantined_records"),
    )
    op.create_index("ix_quarantined_records_ingestion_id", "quarantined_records", ["ingestion_id"])
    op.create_table(
        "ingestions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ingestions"),
    )


def downgrade() -> None:
    op.drop_table("ingestions")
    op.drop_index("ix_quarantined_records_ingestion_id", table_name="quarantined_records")
    op.drop_table("quarantined_records")
    op.drop_index("ix_log_records_workload_client_ts", table_name="log_records")
    op.drop_table("log_records")
