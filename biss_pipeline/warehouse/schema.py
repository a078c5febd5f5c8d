"""The warehouse's tables (SQLAlchemy Core). Alembic migrations in `migrations/` create them.

Raw tables hold Ivoris records as received, one text column per contract field: typing and
validation happen in staging, so a malformed value reaches the quarantine with its reason
instead of failing the extraction. Partitioned tables carry `practice_id` and
`partition_date` (the day of the appointment or entry), the unit a run replaces.
Nothing here stores wall-clock times, so re-running a partition gives identical rows.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def _partition_columns() -> list[sa.Column]:
    return [
        sa.Column("practice_id", sa.String(16), nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
    ]


practices = sa.Table(
    "practices", metadata,
    sa.Column("practice_id", sa.String(16), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("key_prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("ivoris_practice_id", sa.Text),
    sa.Column("ivoris_name", sa.Text),
)

chairs = sa.Table(
    "chairs", metadata,
    sa.Column("chair_key", sa.String(64), primary_key=True),
    sa.Column("practice_id", sa.String(16), nullable=False, index=True),
    sa.Column("ivoris_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("dentist", sa.Text),
)

appointment_types = sa.Table(
    "appointment_types", metadata,
    sa.Column("type_key", sa.String(64), primary_key=True),
    sa.Column("practice_id", sa.String(16), nullable=False, index=True),
    sa.Column("ivoris_id", sa.Text, nullable=False),
    sa.Column("code", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("duration_min", sa.Text),
)

raw_appointments = sa.Table(
    "raw_appointments", metadata,
    *_partition_columns(),
    sa.Column("appointment_key", sa.String(64), nullable=False),
    sa.Column("ivoris_id", sa.Text, nullable=False),
    sa.Column("patient_id", sa.Text),
    sa.Column("chair_id", sa.Text),
    sa.Column("type_id", sa.Text),
    sa.Column("start", sa.Text),
    sa.Column("end", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("modified_at", sa.Text),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "appointment_key"),
)

raw_patients = sa.Table(
    "raw_patients", metadata,
    *_partition_columns(),
    sa.Column("patient_key", sa.String(64), nullable=False),
    sa.Column("ivoris_id", sa.Text, nullable=False),
    sa.Column("first_name", sa.Text),
    sa.Column("last_name", sa.Text),
    sa.Column("birth_date", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("insurance", sa.Text),
    sa.Column("modified_at", sa.Text),
    # why the patient was extracted for this partition: referenced by an appointment, or modified
    sa.Column("reason", sa.String(16), nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "patient_key"),
)

raw_document_entries = sa.Table(
    "raw_document_entries", metadata,
    *_partition_columns(),
    sa.Column("entry_key", sa.String(64), nullable=False),
    sa.Column("ivoris_id", sa.Text, nullable=False),
    sa.Column("patient_id", sa.Text),
    sa.Column("appointment_id", sa.Text),
    sa.Column("entry_date", sa.Text),
    sa.Column("entry_type", sa.Text),
    sa.Column("code", sa.Text),
    sa.Column("description", sa.Text),
    # the amount as Ivoris wrote it (e.g. "480.00"): exact, parsed to cents in staging
    sa.Column("amount", sa.Text),
    sa.Column("modified_at", sa.Text),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "entry_key"),
)

quarantine = sa.Table(
    "quarantine", metadata,
    *_partition_columns(),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),  # raw | staging
    sa.Column("record_key", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "entity", "stage", "record_key", "reason"),
)

extraction_runs = sa.Table(
    "extraction_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("practice_id", sa.String(16), nullable=False),
    sa.Column("asset", sa.String(128), nullable=False),
    sa.Column("date_from", sa.Date),
    sa.Column("date_to", sa.Date),
    sa.Column("rows_written", sa.Integer, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("status_counts", sa.Text, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
)
