"""ivoris_anomalies: paged answers that did not add up (SPEC §3 rev. 2)

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ivoris_anomalies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("asset", sa.String(length=128), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("request_window", sa.String(length=128), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_ivoris_anomalies_run_id"), "ivoris_anomalies", ["run_id"], unique=False)
    op.create_index(op.f("ix_ivoris_anomalies_practice_id"), "ivoris_anomalies", ["practice_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ivoris_anomalies_practice_id"), table_name="ivoris_anomalies")
    op.drop_index(op.f("ix_ivoris_anomalies_run_id"), table_name="ivoris_anomalies")
    op.drop_table("ivoris_anomalies")
