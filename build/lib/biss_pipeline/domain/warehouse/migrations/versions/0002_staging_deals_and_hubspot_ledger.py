"""staging deals and hubspot ledger

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_rollups",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("num_deals", sa.Integer(), nullable=False),
        sa.Column("num_open_deals", sa.Integer(), nullable=False),
        sa.Column("last_appointment_date", sa.Date(), nullable=True),
        sa.Column("next_appointment_date", sa.Date(), nullable=True),
        sa.Column("lifetime_revenue_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "patient_key"),
    )
    op.create_table(
        "deal_appointments",
        sa.Column("deal_key", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("appointment_key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "appointment_key"),
    )
    with op.batch_alter_table("deal_appointments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deal_appointments_deal_key"), ["deal_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_deal_appointments_patient_key"), ["patient_key"], unique=False)

    op.create_table(
        "deal_entries",
        sa.Column("deal_key", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("appointment_key", sa.String(length=64), nullable=True),
        sa.Column("entry_date", sa.Date(), nullable=True),
        sa.Column("revenue_bucket", sa.String(length=32), nullable=True),
        sa.Column("treatment_category", sa.String(length=32), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("counted_by", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "entry_key"),
    )
    with op.batch_alter_table("deal_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deal_entries_deal_key"), ["deal_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_deal_entries_patient_key"), ["patient_key"], unique=False)

    op.create_table(
        "deal_revenue",
        sa.Column("deal_key", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("revenue_bucket", sa.String(length=32), nullable=False),
        sa.Column("treatment_category", sa.String(length=32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("deal_key", "revenue_bucket", "treatment_category"),
    )
    with op.batch_alter_table("deal_revenue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deal_revenue_patient_key"), ["patient_key"], unique=False)

    op.create_table(
        "deal_watermarks",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("mapping_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("practice_id"),
    )
    op.create_table(
        "deals",
        sa.Column("deal_key", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("stage_label", sa.String(length=64), nullable=False),
        sa.Column("stage_number", sa.Integer(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("opened_by_appointment_key", sa.String(length=64), nullable=False),
        sa.Column("driving_appointment_key", sa.String(length=64), nullable=True),
        sa.Column("first_appointment_date", sa.Date(), nullable=True),
        sa.Column("last_appointment_date", sa.Date(), nullable=True),
        sa.Column("behandlungsstart", sa.Date(), nullable=True),
        sa.Column("closed_date", sa.Date(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("treatment_category", sa.String(length=32), nullable=True),
        sa.Column("lost_reason", sa.String(length=32), nullable=True),
        sa.Column("num_appointments", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("deal_key"),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deals_patient_key"), ["patient_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_deals_practice_id"), ["practice_id"], unique=False)

    op.create_table(
        "hubspot_ledger",
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("record_key", sa.String(length=160), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("hubspot_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("flags", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("object_type", "record_key"),
    )
    with op.batch_alter_table("hubspot_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hubspot_ledger_practice_id"), ["practice_id"], unique=False)

    op.create_table(
        "stg_appointments",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("appointment_key", sa.String(length=64), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("chair_key", sa.String(length=64), nullable=True),
        sa.Column("type_key", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("end", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "partition_date", "appointment_key"),
    )
    with op.batch_alter_table("stg_appointments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stg_appointments_patient_key"), ["patient_key"], unique=False)

    op.create_table(
        "stg_document_entries",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("appointment_key", sa.String(length=64), nullable=True),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("entry_type", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "partition_date", "entry_key"),
    )
    with op.batch_alter_table("stg_document_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stg_document_entries_patient_key"), ["patient_key"], unique=False
        )

    op.create_table(
        "stg_patients",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("insurance", sa.String(length=8), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "partition_date", "patient_key"),
    )
    op.create_table(
        "uncounted_entries",
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("appointment_key", sa.String(length=64), nullable=True),
        sa.Column("entry_date", sa.Date(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "entry_key"),
    )
    with op.batch_alter_table("uncounted_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uncounted_entries_patient_key"), ["patient_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("uncounted_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uncounted_entries_patient_key"))

    op.drop_table("uncounted_entries")
    op.drop_table("stg_patients")
    with op.batch_alter_table("stg_document_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stg_document_entries_patient_key"))

    op.drop_table("stg_document_entries")
    with op.batch_alter_table("stg_appointments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stg_appointments_patient_key"))

    op.drop_table("stg_appointments")
    with op.batch_alter_table("hubspot_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hubspot_ledger_practice_id"))

    op.drop_table("hubspot_ledger")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deals_practice_id"))
        batch_op.drop_index(batch_op.f("ix_deals_patient_key"))

    op.drop_table("deals")
    op.drop_table("deal_watermarks")
    with op.batch_alter_table("deal_revenue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deal_revenue_patient_key"))

    op.drop_table("deal_revenue")
    with op.batch_alter_table("deal_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deal_entries_patient_key"))
        batch_op.drop_index(batch_op.f("ix_deal_entries_deal_key"))

    op.drop_table("deal_entries")
    with op.batch_alter_table("deal_appointments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deal_appointments_patient_key"))
        batch_op.drop_index(batch_op.f("ix_deal_appointments_deal_key"))

    op.drop_table("deal_appointments")
    op.drop_table("contact_rollups")
