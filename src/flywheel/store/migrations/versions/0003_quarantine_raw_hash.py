"""Quarantine once per input: ``quarantined_records.raw_hash`` and its unique index.

Re-ingesting a bad file used to add its quarantined lines again every time. Ingestion now writes each row with the
hash of its source and raw input and ignores a row whose hash is already there. Rows written before keep NULL, which
a unique index does not compare, so the migration needs no backfill and never fails on old duplicates.

Revision ID: 0003_quarantine_raw_hash
Revises: 0002_jobs
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_quarantine_raw_hash"
down_revision = "0002_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("quarantined_records", sa.Column("raw_hash", sa.String(80), nullable=True))
    op.create_index("ux_quarantined_records_raw_hash", "quarantined_records", ["raw_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_quarantined_records_raw_hash", table_name="quarantined_records")
    op.drop_column("quarantined_records", "raw_hash")
