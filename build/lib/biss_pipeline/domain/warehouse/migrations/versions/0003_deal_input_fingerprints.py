"""deal input fingerprints

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deal_input_fingerprints",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "patient_key"),
    )


def downgrade() -> None:
    op.drop_table("deal_input_fingerprints")
