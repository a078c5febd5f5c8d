"""uncounted revenue and r2 deal KPIs: uncounted_entries.detail, deals.lead_completed, kpi_deals lost
by reason and reopened, kpi_uncounted

Revision ID: 0007
Revises: 0006

Deals written before this revision lack `lead_completed` and `detail`: the watermarks are dropped, so
the next deals run of every practice is a full rebuild (as on a first run) and fills them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KPI_DEAL_COUNTS = ("lost_cancelled", "lost_no_show", "lost_clarified", "lost_inactive", "deals_reopened")


def upgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lead_completed", sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    with op.batch_alter_table("uncounted_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.String(length=32), nullable=True))
    with op.batch_alter_table("kpi_deals", schema=None) as batch_op:
        for name in KPI_DEAL_COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "kpi_uncounted",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "grain", "period_start", "reason"),
    )
    op.execute("DELETE FROM deal_watermarks")


def downgrade() -> None:
    op.drop_table("kpi_uncounted")
    with op.batch_alter_table("kpi_deals", schema=None) as batch_op:
        for name in reversed(KPI_DEAL_COUNTS):
            batch_op.drop_column(name)
    with op.batch_alter_table("uncounted_entries", schema=None) as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_column("lead_completed")
