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


# -- the mapping sheet's last good version: what the pipeline falls back to while the sheet cannot be
# read (a Sheets outage, missing credentials). One row, replaced whenever the mapping loads.
mapping_last_good = sa.Table(
    "mapping_last_good", metadata,
    sa.Column("slot", sa.String(16), primary_key=True),  # always "last"
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("state_json", sa.Text, nullable=False),  # canonical tabs + disabled practices
    sa.Column("source", sa.Text, nullable=False),  # where it was read from (no secrets)
)

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

def _document_entry_columns() -> list[sa.Column]:
    return [
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
    ]


raw_document_entries = sa.Table(
    "raw_document_entries", metadata,
    *_partition_columns(),
    *_document_entry_columns(),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "entry_key"),
)

# Entries the per-patient route returned but the date-filtered route did not (Ivoris' server-side
# filtering gaps), re-fetched by the repair asset. A table of its own, so re-extracting a day
# through the date route never deletes what the second route found.
raw_repaired_document_entries = sa.Table(
    "raw_repaired_document_entries", metadata,
    *_partition_columns(),
    *_document_entry_columns(),
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

# Paged answers that did not add up (SPEC §3 rev. 2): one row per request the client could or could
# not make consistent by re-reading and narrowing; `resolved` false means the records served were
# kept and the window stays visible to the `ivoris_paging_consistent` check. Counts, never content.
ivoris_anomalies = sa.Table(
    "ivoris_anomalies", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("practice_id", sa.String(16), nullable=False, index=True),
    sa.Column("asset", sa.String(128), nullable=False),
    sa.Column("route", sa.String(128), nullable=False),
    sa.Column("request_window", sa.String(128), nullable=False),
    sa.Column("problem", sa.Text, nullable=False),
    sa.Column("resolved", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)


# -- staging: typed, validated, deduplicated within a partition (newest modifiedAt wins) ----------

stg_appointments = sa.Table(
    "stg_appointments", metadata,
    *_partition_columns(),
    sa.Column("appointment_key", sa.String(64), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("chair_key", sa.String(64)),
    sa.Column("type_key", sa.String(64), nullable=False),
    sa.Column("start", sa.DateTime, nullable=False),  # local wall-clock time (Europe/Berlin)
    sa.Column("end", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "appointment_key"),
)

stg_patients = sa.Table(
    "stg_patients", metadata,
    *_partition_columns(),
    sa.Column("patient_key", sa.String(64), nullable=False),
    sa.Column("first_name", sa.String(200)),
    sa.Column("last_name", sa.String(200)),
    sa.Column("birth_date", sa.Date),
    sa.Column("email", sa.String(254)),
    sa.Column("phone", sa.String(64)),
    sa.Column("insurance", sa.String(8)),
    sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "patient_key"),
)

stg_document_entries = sa.Table(
    "stg_document_entries", metadata,
    *_partition_columns(),
    sa.Column("entry_key", sa.String(64), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("appointment_key", sa.String(64)),
    sa.Column("entry_date", sa.Date, nullable=False),
    sa.Column("entry_type", sa.String(8), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("description", sa.String(500)),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "partition_date", "entry_key"),
)

# -- deals: computed per practice; an incremental run replaces the rows of the touched patients ----

deals = sa.Table(
    "deals", metadata,
    sa.Column("deal_key", sa.String(64), primary_key=True),
    sa.Column("practice_id", sa.String(16), nullable=False, index=True),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("stage_label", sa.String(64), nullable=False),
    sa.Column("stage_number", sa.Integer, nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
    sa.Column("opened_by_appointment_key", sa.String(64), nullable=False),
    sa.Column("driving_appointment_key", sa.String(64)),
    sa.Column("first_appointment_date", sa.Date),
    sa.Column("last_appointment_date", sa.Date),
    sa.Column("behandlungsstart", sa.Date),
    sa.Column("closed_date", sa.Date),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("treatment_category", sa.String(32)),
    sa.Column("lost_reason", sa.String(32)),
    sa.Column("num_appointments", sa.Integer, nullable=False),
    # SPEC §5 r2 rebooking: how many losses of this deal a rebooking undid, so KPIs can count reopened deals.
    sa.Column("reopened_count", sa.Integer, nullable=False, server_default="0"),
    # A completed `lead` member: the deal reached Erstberatung by a consultation (the conversion KPI).
    sa.Column("lead_completed", sa.Boolean, nullable=False, server_default=sa.false()),
)

deal_appointments = sa.Table(
    "deal_appointments", metadata,
    sa.Column("deal_key", sa.String(64), nullable=False, index=True),
    sa.Column("practice_id", sa.String(16), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("appointment_key", sa.String(64), nullable=False),
    # SPEC §5 r2: still pending stale_after_days after its date as of the run; blocks no deal rule.
    sa.Column("is_stale", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint("practice_id", "appointment_key"),
)

deal_revenue = sa.Table(
    "deal_revenue", metadata,
    sa.Column("deal_key", sa.String(64), nullable=False),
    sa.Column("practice_id", sa.String(16), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("revenue_bucket", sa.String(32), nullable=False),
    sa.Column("treatment_category", sa.String(32), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("deal_key", "revenue_bucket", "treatment_category"),
)

deal_entries = sa.Table(
    "deal_entries", metadata,
    sa.Column("deal_key", sa.String(64), nullable=False, index=True),
    sa.Column("practice_id", sa.String(16), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("entry_key", sa.String(64), nullable=False),
    sa.Column("appointment_key", sa.String(64)),
    sa.Column("entry_date", sa.Date),
    sa.Column("revenue_bucket", sa.String(32)),
    sa.Column("treatment_category", sa.String(32)),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("counted_by", sa.String(16), nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "entry_key"),
)

uncounted_entries = sa.Table(
    "uncounted_entries", metadata,
    sa.Column("entry_key", sa.String(64), nullable=False),
    sa.Column("practice_id", sa.String(16), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False, index=True),
    sa.Column("appointment_key", sa.String(64)),
    sa.Column("entry_date", sa.Date),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    # e.g. the linked appointment's status (set back: booked; left arrived) or after_grace_window
    sa.Column("detail", sa.String(32)),
    sa.PrimaryKeyConstraint("practice_id", "entry_key"),
)

contact_rollups = sa.Table(
    "contact_rollups", metadata,
    sa.Column("practice_id", sa.String(16), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False),
    sa.Column("num_deals", sa.Integer, nullable=False),
    sa.Column("num_open_deals", sa.Integer, nullable=False),
    sa.Column("last_appointment_date", sa.Date),
    sa.Column("next_appointment_date", sa.Date),
    sa.Column("lifetime_revenue_cents", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "patient_key"),
)

# What the deals asset last saw, so an incremental run recomputes only touched patients.
deal_watermarks = sa.Table(
    "deal_watermarks", metadata,
    sa.Column("practice_id", sa.String(16), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("mapping_hash", sa.String(64), nullable=False),
)

# One fingerprint per patient of the staging rows the deals were computed from: an incremental
# run recomputes exactly the patients whose fingerprint changed.
deal_input_fingerprints = sa.Table(
    "deal_input_fingerprints", metadata,
    sa.Column("practice_id", sa.String(16), nullable=False),
    sa.Column("patient_key", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "patient_key"),
)

# -- HubSpot sync ledger: what HubSpot confirmed, per record and per association ------------------

hubspot_ledger = sa.Table(
    "hubspot_ledger", metadata,
    # contacts | deals | appointments | association:<from>:<to>
    sa.Column("object_type", sa.String(64), nullable=False),
    sa.Column("record_key", sa.String(160), nullable=False),
    sa.Column("practice_id", sa.String(16), nullable=False, index=True),
    sa.Column("content_hash", sa.String(64)),  # of the last content HubSpot confirmed
    sa.Column("hubspot_id", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),  # synced | error | flagged
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("flags", sa.Text),  # e.g. email withheld because another contact owns it
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("synced_at", sa.DateTime(timezone=True)),
    # the Dagster run that last wrote the row: what an intraday check verifies is what its run wrote
    sa.Column("last_run_id", sa.String(64)),
    sa.PrimaryKeyConstraint("object_type", "record_key"),
)

# Every repair the reconciliation makes, one row per record (Hightouch's "sync log"): action
# (`set_back`, `recreate`, `suppress`, `unsuppress`, `rebuild_found`, `rebuild_missing`, `mass_missing`),
# object type, Ivoris key, reason (property names and codes only, never values), run id.
hubspot_sync_log = sa.Table(
    "hubspot_sync_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("practice_id", sa.String(16), nullable=False, index=True),
    sa.Column("run_id", sa.String(64)),
    sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(64), nullable=False),
    sa.Column("record_key", sa.String(160), nullable=False),
    sa.Column("reason", sa.Text),
)

# -- KPIs (SPEC §6): aggregates per practice and period, no patient keys; definitions in
# `biss_pipeline/domain/kpi/metrics.py`. The KPI asset replaces every row in one transaction. --------


def _kpi_period_columns() -> list[sa.Column]:
    return [
        sa.Column("practice_id", sa.String(16), nullable=False),
        sa.Column("grain", sa.String(8), nullable=False),  # day | week (ISO, Monday) | month
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),  # inclusive
    ]


kpi_appointments = sa.Table(
    "kpi_appointments", metadata,
    *_kpi_period_columns(),
    sa.Column("scheduled", sa.Integer, nullable=False),
    sa.Column("booked", sa.Integer, nullable=False),
    sa.Column("completed", sa.Integer, nullable=False),
    sa.Column("cancelled", sa.Integer, nullable=False),
    sa.Column("no_show", sa.Integer, nullable=False),
    sa.Column("clarified", sa.Integer, nullable=False),
    sa.Column("pending", sa.Integer, nullable=False),
    sa.Column("no_show_rate", sa.Float),  # NULL when nothing was completed or missed
    sa.PrimaryKeyConstraint("practice_id", "grain", "period_start"),
)

kpi_deals = sa.Table(
    "kpi_deals", metadata,
    *_kpi_period_columns(),
    sa.Column("deals_opened", sa.Integer, nullable=False),
    sa.Column("deals_won", sa.Integer, nullable=False),
    sa.Column("deals_lost", sa.Integer, nullable=False),
    sa.Column("cohort_erstberatung", sa.Integer, nullable=False),
    sa.Column("cohort_behandlung", sa.Integer, nullable=False),
    sa.Column("conversion_rate", sa.Float),
    sa.Column("treatments_started", sa.Integer, nullable=False),
    sa.Column("treatments_completed", sa.Integer, nullable=False),
    sa.Column("treatment_completion_rate", sa.Float),
    # SPEC §5 r2: lost deals by lost_reason (by closing date) and deals a rebooking reopened (by opening date)
    sa.Column("lost_cancelled", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lost_no_show", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lost_clarified", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lost_inactive", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deals_reopened", sa.Integer, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("practice_id", "grain", "period_start"),
)

kpi_revenue = sa.Table(
    "kpi_revenue", metadata,
    *_kpi_period_columns(),
    sa.Column("treatment_category", sa.String(32), nullable=False),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "grain", "period_start", "treatment_category"),
)

# SPEC §5 r2: billable entries counted for no deal, summed per period (by entry date) and reason, so a
# practice sees the euros it is not crediting. Non-billable and unmatched lines are not in it.
kpi_uncounted = sa.Table(
    "kpi_uncounted", metadata,
    *_kpi_period_columns(),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("practice_id", "grain", "period_start", "reason"),
)
