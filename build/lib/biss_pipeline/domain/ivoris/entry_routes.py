"""Missing document entries: compare Ivoris' date-filtered route with its per-patient route.

Ivoris' date-filtered query skips some billing lines that the per-patient route still returns
(SPEC §1). Two checks per practice (wired in `biss_pipeline.checks.ivoris`), over the most recent
`window_days` days extracted:

* `date_route_complete` (on raw_document_entries, WARN): for a stable sample of patients with
  a completed appointment, every entry the per-patient route returns for the window must be in
  what the date route delivered. A failure means Ivoris has gaps right now; the repair asset
  re-fetches them.
* `document_entries_complete` (on raw_repaired_document_entries, ERROR): the same comparison
  against both routes together (so after the repair nothing may be missing), and no completed
  appointment older than `grace_days` without a single billing line.

Only keys and counts go into the metadata, never entry content.
"""

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.ivoris.client import IvorisClient
from biss_pipeline.domain.ivoris.extract import day_of
from biss_pipeline.domain.ivoris.extraction import entry_repair_inputs
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.verdicts import CheckOutcome, Severity
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

SAMPLE_SIZE = 40
WINDOW_DAYS = 14
GRACE_DAYS = 2


@dataclass(frozen=True)
class EntryComparison:
    window: tuple[dt.date, dt.date]
    patients_sampled: int
    missing_keys: list[str]

    def metadata(self) -> dict[str, Any]:
        return {
            "window": f"{self.window[0]} .. {self.window[1]}",
            "patients_sampled": self.patients_sampled,
            "missing_entries": len(self.missing_keys),
            "missing_entry_keys": self.missing_keys[:50],
        }


def stable_sample(patient_ids: Iterable[str], size: int) -> list[str]:
    """The same patients every time for the same data (by hash, not by chance)."""
    return sorted(patient_ids, key=lambda p: hashlib.sha256(p.encode()).hexdigest())[:size]


def recent_window(warehouse: Warehouse, practice_id: str, days: int) -> tuple[dt.date, dt.date] | None:
    """The last `days` days with completed appointments extracted for the practice."""
    table = schema.raw_appointments
    latest = warehouse.read_rows(
        sa.select(sa.func.max(table.c.partition_date).label("last")).where(
            table.c.practice_id == practice_id, table.c.status == "completed"
        )
    )
    last = latest[0]["last"] if latest else None
    if last is None:
        return None
    return last - dt.timedelta(days=days - 1), last


def compare_routes(
    client: IvorisClient,
    warehouse: Warehouse,
    practice: PracticeConfig,
    tables: Iterable[sa.Table],
    window: tuple[dt.date, dt.date],
    sample_size: int = SAMPLE_SIZE,
) -> EntryComparison:
    first, last = window
    patients, _ = entry_repair_inputs(warehouse, practice.practice_id, first, last)
    sample = stable_sample(patients, sample_size)
    have: set[str] = set()
    for table in tables:
        have |= {
            row["entry_key"]
            for row in warehouse.read_rows(
                sa.select(table.c.entry_key).where(
                    table.c.practice_id == practice.practice_id,
                    table.c.partition_date >= first,
                    table.c.partition_date <= last,
                )
            )
        }
    # only days that were extracted: a day never extracted is not a gap of the date route
    extracted = {
        row["partition_date"]
        for row in warehouse.read_rows(
            sa.select(schema.raw_appointments.c.partition_date)
            .distinct()
            .where(
                schema.raw_appointments.c.practice_id == practice.practice_id,
                schema.raw_appointments.c.partition_date >= first,
                schema.raw_appointments.c.partition_date <= last,
            )
        )
    }
    missing = []
    for patient in sample:
        for entry in client.patient_document_entries(patient):
            day = day_of(entry.get("date"))
            key = f"{practice.key_prefix}{entry.get('id')}"
            if day in extracted and key not in have:
                missing.append(key)
    return EntryComparison(window, len(sample), sorted(missing))


def completed_without_entries(
    warehouse: Warehouse, practice: PracticeConfig, first: dt.date, last: dt.date, unbilled_types: set[str]
) -> list[str]:
    """Completed appointments in the window with no billing line through either route, leaving out
    the types the mapping marks `ignore` (internal blockers are never billed)."""
    practice_id = practice.practice_id
    appointments = warehouse.read_rows(
        sa.select(
            schema.raw_appointments.c.appointment_key,
            schema.raw_appointments.c.ivoris_id,
            schema.raw_appointments.c.type_id,
        ).where(
            schema.raw_appointments.c.practice_id == practice_id,
            schema.raw_appointments.c.status == "completed",
            schema.raw_appointments.c.partition_date >= first,
            schema.raw_appointments.c.partition_date <= last,
        )
    )
    billed: set[str] = set()
    for table in (schema.raw_document_entries, schema.raw_repaired_document_entries):
        billed |= {
            str(row["appointment_id"])
            for row in warehouse.read_rows(
                sa.select(table.c.appointment_id)
                .distinct()
                .where(
                    table.c.practice_id == practice_id,
                    table.c.appointment_id.is_not(None),
                    table.c.partition_date >= first,
                    table.c.partition_date <= last,
                )
            )
        }
    return sorted(a["appointment_key"] for a in appointments if a["ivoris_id"] not in billed
                  and f"{practice.key_prefix}{a['type_id']}" not in unbilled_types)


def entry_outcome(comparison: EntryComparison, unbilled: list[str] | None = None) -> CheckOutcome:
    """The date route alone (`unbilled` None): WARN on gaps. Both routes after the repair: ERROR on gaps
    or completed appointments without a billing line."""
    metadata = comparison.metadata()
    if unbilled is None:
        return CheckOutcome(not comparison.missing_keys, Severity.WARN, "", metadata)
    metadata |= {"completed_without_entries": len(unbilled), "completed_without_entries_keys": unbilled[:50]}
    return CheckOutcome(not comparison.missing_keys and not unbilled, Severity.ERROR, "", metadata)
