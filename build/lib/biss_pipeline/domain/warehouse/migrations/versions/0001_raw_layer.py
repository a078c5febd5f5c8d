"""raw layer

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appointment_types",
        sa.Column("type_key", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("ivoris_id", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("duration_min", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("type_key"),
    )
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_types_practice_id"), ["practice_id"], unique=False)

    op.create_table(
        "chairs",
        sa.Column("chair_key", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("ivoris_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("dentist", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chair_key"),
    )
    with op.batch_alter_table("chairs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chairs_practice_id"), ["practice_id"], unique=False)

    op.create_table(
        "extraction_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("asset", sa.String(length=128), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=True),
        sa.Column("date_to", sa.Date(), nullable=True),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("status_counts", sa.Text(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("extraction_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_extraction_runs_run_id"), ["run_id"], unique=False)

    op.create_table(
        "practices",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("ivoris_practice_id", sa.Text(), nullable=True),
        sa.Column("ivoris_name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("practice_id"),
        sa.UniqueConstraint("key_prefix"),
    )
    op.create_table(
        "quarantine",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("record_key", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "partition_date", "entity", "stage", "record_key", "reason"),
    )
    op.create_table(
        "raw_appointments",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("appointment_key", sa.String(length=64), nullable=False),
        sa.Column("ivoris_id", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=True),
        sa.Column("chair_id", sa.Text(), nullable=True),
        sa.Column("type_id", sa.Text(), nullable=True),
        sa.Column("start", sa.Text(), nullable=True),
        sa.Column("end", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("modified_at", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("practice_id", "partition_date", "appointment_key"),
    )
    op.create_table(
        "raw_document_entries",
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
    op.create_table(
        "raw_patients",
        sa.Column("practice_id", sa.String(length=16), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("ivoris_id", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("birth_date", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("insurance", sa.Text(), nullable=True),
        sa.Column("modified_at", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", "partition_date", "patient_key"),
    )


def downgrade() -> None:
    op.drop_table("raw_patients")
    op.drop_table("raw_document_entries")
    op.drop_table("raw_appointments")
    op.drop_table("quarantine")
    op.drop_table("practices")
    with op.batch_alter_table("extraction_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_extraction_runs_run_id"))

    op.drop_table("extraction_runs")
    with op.batch_alter_table("chairs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chairs_practice_id"))

    op.drop_table("chairs")
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_types_practice_id"))

    op.drop_table("appointment_types")
