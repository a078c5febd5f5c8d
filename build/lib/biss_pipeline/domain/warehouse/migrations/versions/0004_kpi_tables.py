"""kpi tables

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpi_appointments",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("scheduled", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("no_show", sa.Integer(), nullable=False),
        sa.Column("clarified", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("no_show_rate", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("practice_id", "grain", "period_start"),
    )
    op.create_table(
        "kpi_deals",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("deals_opened", sa.Integer(), nullable=False),
        sa.Column("deals_won", sa.Integer(), nullable=False),
        sa.Column("deals_lost", sa.Integer(), nullable=False),
        sa.Column("cohort_erstberatung", sa.Integer(), nullable=False),
        sa.Column("cohort_behandlung", sa.Integer(), nullable=False),
        sa.Column("conversion_rate", sa.Float(), nullable=True),
        sa.Column("treatments_started", sa.Integer(), nullable=False),
        sa.Column("treatments_completed", sa.Integer(), nullable=False),
        sa.Column("treatment_completion_rate", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("practice_id", "grain", "period_start"),
    )
    op.create_table(
        "kpi_revenue",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("treatment_category", sa.String(length=32), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "grain", "period_start", "treatment_category"),
    )


def downgrade() -> None:
    op.drop_table("kpi_revenue")
    op.drop_table("kpi_deals")
    op.drop_table("kpi_appointments")
