"""deal rules r2: deals.reopened_count, deal_appointments.is_stale

Revision ID: 0006
Revises: 0005

Rows written before this revision get the defaults (never reopened, not stale) until the deals are
recomputed; the deal-rule settings change the practice's mapping hash, which rebuilds them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deal_appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_stale", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reopened_count", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_column("reopened_count")
    with op.batch_alter_table("deal_appointments", schema=None) as batch_op:
        batch_op.drop_column("is_stale")
