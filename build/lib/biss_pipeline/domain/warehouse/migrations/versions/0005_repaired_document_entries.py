"""repaired document entries

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_repaired_document_entries",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("ivoris_id", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=True),
        sa.Column("appointment_id", sa.Text(), nullable=True),
        sa.Column("entry_date", sa.Text(), nullable=True),
        sa.Column("entry_type", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("amount", sa.Text(), nullable=True),
        sa.Column("modified_at", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("practice_id", "partition_date", "entry_key"),
    )


def downgrade() -> None:
    op.drop_table("raw_repaired_document_entries")
