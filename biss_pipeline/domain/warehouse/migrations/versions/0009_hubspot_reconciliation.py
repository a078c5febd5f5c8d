"""hubspot reconciliation: hubspot_ledger.last_run_id and the sync log hubspot_sync_log

Revision ID: 0009
Revises: 0006

Ledger rows written before this revision have no run id; an intraday check therefore verifies only
rows written from now on, and the nightly run verifies every row regardless.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hubspot_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_run_id", sa.String(length=64), nullable=True))
    op.create_table(
        "hubspot_sync_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("record_key", sa.String(length=160), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_hubspot_sync_log_practice_id"), "hubspot_sync_log", ["practice_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_hubspot_sync_log_practice_id"), table_name="hubspot_sync_log")
    op.drop_table("hubspot_sync_log")
    with op.batch_alter_table("hubspot_ledger", schema=None) as batch_op:
        batch_op.drop_column("last_run_id")
