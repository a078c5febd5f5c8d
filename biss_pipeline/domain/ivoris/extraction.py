"""Extracting a date window of one Ivoris source into its raw table, chunk by chunk.

A ranged run walks its window in chunks of `chunk_days` and replaces each chunk's partitions (and
that chunk's raw-stage quarantine rows) in one transaction, so memory stays flat however long the
window is, and a run that fails midway has committed whole days only. What each source reads per
chunk is its `open_reader` (see `biss_pipeline.domain.ivoris.entities`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from biss_pipeline.domain.calendar import local_midnight
from biss_pipeline.domain.ivoris.client import (
    IvorisClient,
    IvorisError,
    PagingAnomaly,
    Record,
    iter_date_chunks,
)
from biss_pipeline.domain.ivoris.extract import (
    ExtractedRows,
    day_of,
    integer_id,
    modification_day,
    usable_id,
)
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

ChunkReader = Callable[[dt.date, dt.date], ExtractedRows]
log = logging.getLogger(__name__)


class EntityRows(Protocol):
    """An entity that turns records into raw rows (`IvorisEntity` does)."""

    def rows(self, practice_id: str, key_prefix: str, records: Any, date_from: dt.date,
             date_to: dt.date) -> ExtractedRows: ...


@dataclass
class ExtractionContext:
    """What a source's reader may use for one run window."""

    practice_id: str
    key_prefix: str
    client: IvorisClient
    warehouse: Warehouse
    date_from: dt.date
    date_to: dt.date
    # what the entry repair decided to ask (filled by its reader, reported by the asset)
    repair_plans: list[Any] = field(default_factory=list)


@dataclass
class ExtractionTotals:
    rows: int = 0
    quarantined: int = 0
    chunks: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    # per partition day: each day's materialization carries its own counts, not the window's
    rows_by_day: Counter[dt.date] = field(default_factory=Counter)
    quarantined_by_day: Counter[dt.date] = field(default_factory=Counter)

    def add(self, extracted: ExtractedRows) -> None:
        self.rows += len(extracted.rows)
        self.quarantined += len(extracted.quarantined)
        self.chunks += 1
        self.quarantine_reasons.update(row["reason"] for row in extracted.quarantined)
        self.rows_by_day.update(row["partition_date"] for row in extracted.rows)
        self.quarantined_by_day.update(row["partition_date"] for row in extracted.quarantined)


def _write_chunk(warehouse: Warehouse, table: sa.Table, entity: str, practice_id: str,
                 date_from: dt.date, date_to: dt.date, extracted: ExtractedRows) -> None:
    """The chunk's rows and its raw-stage quarantine rows replace the old ones together."""
    with warehouse.transaction() as connection:
        warehouse.replace_partitions(table, practice_id, date_from, date_to, extracted.rows, connection)
        warehouse.replace_partitions(
            schema.quarantine, practice_id, date_from, date_to, extracted.quarantined, connection,
            extra_filter=sa.and_(schema.quarantine.c.entity == entity,
                                 schema.quarantine.c.stage == "raw"))


def record_extraction_run(warehouse: Warehouse, run_id: str, practice_id: str, asset: str,
                          date_from: dt.date | None, date_to: dt.date | None, rows: int,
                          client: IvorisClient) -> None:
    stats = client.stats.as_metadata()
    with warehouse.transaction() as connection:
        connection.execute(schema.extraction_runs.insert().values(
            run_id=run_id, practice_id=practice_id, asset=asset, date_from=date_from, date_to=date_to,
            rows_written=rows, requests=stats["ivoris_requests"], retries=stats["ivoris_retries"],
            status_counts=json.dumps(stats["ivoris_status_counts"], sort_keys=True),
            finished_at=dt.datetime.now(dt.UTC)))
    record_anomalies(warehouse, run_id, practice_id, asset, client.anomalies)


def record_anomalies(warehouse: Warehouse, run_id: str, practice_id: str, asset: str,
                     anomalies: list[PagingAnomaly]) -> None:
    """The client's paging anomalies of this run, one row each (the check reads them)."""
    if not anomalies:
        return
    now = dt.datetime.now(dt.UTC)
    with warehouse.transaction() as connection:
        connection.execute(schema.ivoris_anomalies.insert(), [
            {"run_id": run_id, "practice_id": practice_id, "asset": asset, "route": a.route[:128],
             "request_window": a.window[:128], "problem": a.problem, "resolved": a.resolved,
             "recorded_at": now} for a in anomalies])


def in_partitions(exc: IvorisError, first: dt.date, last: dt.date, run_start: dt.date | None,
                  ) -> IvorisError:
    """The client's error (site, route, request window) plus the partitions left unwritten."""
    kept = (f"; partitions before {first.isoformat()} were committed"
            if run_start is not None and run_start < first else "")
    return type(exc)(f"{exc} -- partitions {first.isoformat()} .. {last.isoformat()} not written{kept}")


def extract_window(context: ExtractionContext, table: sa.Table, entity: str,
                   open_reader: Callable[[ExtractionContext], ChunkReader], chunk_days: int,
                   ) -> ExtractionTotals:
    """Walk the window chunk by chunk; each chunk's partitions are replaced atomically. An Ivoris
    failure is re-raised naming the partitions left unwritten."""
    totals = ExtractionTotals()
    try:
        read_chunk = open_reader(context)
    except IvorisError as exc:
        raise in_partitions(exc, context.date_from, context.date_to, None) from None
    chunks = list(iter_date_chunks(context.date_from, context.date_to, chunk_days))
    for number, (chunk_from, chunk_to) in enumerate(chunks, start=1):
        try:
            extracted = read_chunk(chunk_from, chunk_to)
        except IvorisError as exc:
            raise in_partitions(exc, chunk_from, chunk_to, context.date_from) from None
        _write_chunk(context.warehouse, table, entity, context.practice_id, chunk_from, chunk_to, extracted)
        totals.add(extracted)
        # progress a person can follow in the run's log (counts only, never content)
        log.info("%s %s chunk %d/%d: %s..%s, %d rows, %d quarantined", context.practice_id, table.name,
                 number, len(chunks), chunk_from.isoformat(), chunk_to.isoformat(), len(extracted.rows),
                 len(extracted.quarantined))
    return totals


# -- readers of the sources that are more than one date-filtered route -------------------------------


PatientRows = Callable[[list[Record], dict[str, dict[dt.date, str]], dt.date, dt.date], ExtractedRows]


def read_patients(context: ExtractionContext, to_rows: PatientRows) -> ChunkReader:
    """Patients referenced by the chunk's appointments (asked for by id) plus those modified in it
    (one `modifiedSince` listing for the whole window)."""
    client, pid = context.client, context.practice_id
    since = local_midnight(context.date_from)  # partitions are local days
    modified: dict[str, Record] = {}
    copies: dict[str, list[Record]] = {}  # >1 only for conflicting copies
    unkeyed: list[tuple[dt.date, Record]] = []  # non-integer ids: to quarantine, never to drop
    for record in client.patients_modified_since(since):
        ivoris_id, day = integer_id(record.get("id")), modification_day(record)
        if ivoris_id is not None and day is not None and day <= context.date_to:
            modified[ivoris_id] = record
            copies.setdefault(ivoris_id, []).append(record)
        elif ivoris_id is None:
            unkeyed.append((day or context.date_from, record))

    def read(first: dt.date, last: dt.date) -> ExtractedRows:
        reasons = patient_reasons(context.warehouse, pid, first, last, modified)
        missing = [i for i in reasons if i not in modified]
        records = client.patients_by_ids(missing) if missing else []
        records += [copy for i in reasons if i in modified for copy in copies[i]]
        records += [record for day, record in unkeyed if first <= max(day, context.date_from) <= last]
        return to_rows(records, reasons, first, last)

    return read


@dataclass
class RepairPlan:
    """Which patients the entry repair asks Ivoris for in one run, and why (counts for the report)."""

    candidates: int = 0  # patients with a completed appointment in the window (the old request count)
    changed: int = 0
    flagged: int = 0
    rotation: int = 0
    asked: set[str] = field(default_factory=set)


def in_rotation(patient_id: str, day: dt.date, period_days: int) -> bool:
    """The rotating slice of `day`: every patient comes up once within `period_days` days."""
    return int(patient_id) % max(1, period_days) == day.toordinal() % max(1, period_days)


def read_repaired_document_entries(context: ExtractionContext, entries: EntityRows,
                                   today: dt.date | None = None) -> ChunkReader:
    """Entries the date route missed, asked for through the per-patient route (SPEC §1), but only for
    the patients where a miss can be new: those whose completed appointment changed since the last
    repair of the practice, those flagged (a completed appointment without any billing line), plus a
    rotating slice that covers every patient within `repair_period_days`. The first repair of a
    practice asks everybody. Memory stays flat in history: only the run window's missing entries are
    kept between chunks, never a patient's whole entry history."""
    client, prefix, pid = context.client, context.key_prefix, context.practice_id
    period = client.settings.repair_period_days
    day = today or dt.datetime.now(dt.UTC).date()
    since = last_repair(context.warehouse, pid)
    known_in_window = delivered_entry_keys(context.warehouse, pid, context.date_from, context.date_to)
    plan = RepairPlan()
    context.repair_plans.append(plan)
    missing_by_day: dict[dt.date, list[Record]] = {}

    def read(first: dt.date, last: dt.date) -> ExtractedRows:
        candidates = repair_candidates(context.warehouse, pid, first, last, since)
        plan.candidates += len(candidates)
        fetch: list[str] = []
        for patient, (changed, flagged) in candidates.items():
            if patient in plan.asked:
                continue
            rotating = in_rotation(patient, day, period)
            if since is None or changed or flagged or rotating:
                plan.changed += since is None or changed
                plan.flagged += flagged and not changed
                plan.rotation += rotating and not (changed or flagged) and since is not None
                fetch.append(patient)
        plan.asked.update(fetch)
        with ThreadPoolExecutor(max_workers=client.max_concurrency) as pool:
            for answer in pool.map(client.patient_document_entries, fetch):
                for entry in answer:
                    entry_day = day_of(entry.get("date"))
                    if (entry_day is not None and context.date_from <= entry_day <= context.date_to
                            and f"{prefix}{entry.get('id')}" not in known_in_window):
                        missing_by_day.setdefault(entry_day, []).append(entry)
        missing = [entry for d in sorted(missing_by_day) if first <= d <= last for entry in missing_by_day[d]]
        for d in [d for d in missing_by_day if first <= d <= last]:
            del missing_by_day[d]
        repaired = entries.rows(pid, prefix, missing, first, last)
        for row in repaired.quarantined:  # this source replaces (and so must write) its own entity
            row["entity"] = "document_entry_repair"
        # The chunk's partitions are replaced: what an earlier repair found for a patient not asked
        # this time stays (unless the date route now delivers it).
        table = schema.raw_repaired_document_entries
        kept = [row for row in context.warehouse.read_rows(sa.select(table).where(
            table.c.practice_id == pid, table.c.partition_date >= first, table.c.partition_date <= last))
            if row["patient_id"] not in plan.asked and row["entry_key"] not in known_in_window]
        fresh = {row["entry_key"] for row in repaired.rows}
        repaired.rows.extend(row for row in kept if row["entry_key"] not in fresh)
        return repaired

    return read


def last_repair(warehouse: Warehouse, practice_id: str) -> str | None:
    """When the practice's last entry repair finished, as an ISO UTC stamp (None: never)."""
    runs = schema.extraction_runs
    rows = warehouse.read_rows(sa.select(sa.func.max(runs.c.finished_at).label("at")).where(
        runs.c.practice_id == practice_id, runs.c.asset.like("%raw_repaired_document_entries")))
    stamp = rows[0]["at"] if rows else None
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return str(stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def delivered_entry_keys(warehouse: Warehouse, practice_id: str, date_from: dt.date,
                         date_to: dt.date) -> set[str]:
    entries = schema.raw_document_entries
    return {row["entry_key"] for row in warehouse.read_rows(sa.select(entries.c.entry_key).where(
        entries.c.practice_id == practice_id,
        entries.c.partition_date >= date_from, entries.c.partition_date <= date_to))}


def repair_candidates(warehouse: Warehouse, practice_id: str, date_from: dt.date, date_to: dt.date,
                      since: str | None) -> dict[str, tuple[bool, bool]]:
    """Patients with a completed appointment in the window → (changed since `since`, flagged: a
    completed appointment of theirs has no billing line from either route)."""
    appointments, entries = schema.raw_appointments, schema.raw_document_entries
    repaired = schema.raw_repaired_document_entries
    completed = warehouse.read_rows(sa.select(
        appointments.c.patient_id, appointments.c.ivoris_id, appointments.c.modified_at).where(
        appointments.c.practice_id == practice_id, appointments.c.status == "completed",
        appointments.c.partition_date >= date_from, appointments.c.partition_date <= date_to))
    billed = {row["appointment_id"] for table in (entries, repaired) for row in warehouse.read_rows(
        sa.select(table.c.appointment_id).distinct().where(
            table.c.practice_id == practice_id, table.c.appointment_id.is_not(None),
            table.c.partition_date >= date_from, table.c.partition_date <= date_to))}
    result: dict[str, tuple[bool, bool]] = {}
    for row in completed:
        patient = usable_id(row["patient_id"])
        if patient is None or not patient.isdigit():
            continue
        changed = since is not None and str(row["modified_at"] or "") >= since
        flagged = row["ivoris_id"] not in billed
        was = result.get(patient, (False, False))
        result[patient] = (was[0] or changed, was[1] or flagged)
    return dict(sorted(result.items(), key=lambda item: (len(item[0]), item[0])))


def patient_reasons(warehouse: Warehouse, practice_id: str, date_from: dt.date, date_to: dt.date,
                    modified: dict[str, dict[str, Any]]) -> dict[str, dict[dt.date, str]]:
    """Per patient id, the days in the chunk that need the patient, and why."""
    table = schema.raw_appointments
    referenced = warehouse.read_rows(
        sa.select(table.c.patient_id, table.c.partition_date).distinct().where(
            table.c.practice_id == practice_id,
            table.c.partition_date >= date_from, table.c.partition_date <= date_to))
    reasons: dict[str, dict[dt.date, str]] = {}
    for ivoris_id, record in modified.items():
        day = modification_day(record)
        if day is not None and date_from <= day <= date_to:
            reasons.setdefault(ivoris_id, {})[day] = "modified"
    for row in referenced:
        patient_id = usable_id(row["patient_id"])
        if patient_id is not None:
            # a referenced patient is needed whatever else happened that day
            reasons.setdefault(patient_id, {})[row["partition_date"]] = "referenced"
    return reasons


def entry_repair_inputs(warehouse: Warehouse, practice_id: str, date_from: dt.date,
                        date_to: dt.date) -> tuple[list[str], set[str]]:
    """Patients with a completed appointment in the window (sorted), and the entry keys the
    date-filtered route already delivered for it."""
    appointments, entries = schema.raw_appointments, schema.raw_document_entries
    completed = warehouse.read_rows(sa.select(appointments.c.patient_id).distinct().where(
        appointments.c.practice_id == practice_id, appointments.c.status == "completed",
        appointments.c.partition_date >= date_from, appointments.c.partition_date <= date_to))
    known = warehouse.read_rows(sa.select(entries.c.entry_key).where(
        entries.c.practice_id == practice_id,
        entries.c.partition_date >= date_from, entries.c.partition_date <= date_to))
    patients = sorted({p for row in completed if (p := usable_id(row["patient_id"])) is not None},
                      key=lambda p: (len(p), p))
    return patients, {row["entry_key"] for row in known}


def write_reference_data(warehouse: Warehouse, practice_id: str, name: str, key_prefix: str,
                         client: IvorisClient) -> dict[str, int]:
    """The practice record, its chairs and its appointment types, replaced; counts per table."""
    ivoris_practices = client.practices()
    chairs = client.chairs()
    types = client.appointment_types()
    first = ivoris_practices[0] if ivoris_practices else {}
    with warehouse.transaction() as connection:
        connection.execute(schema.practices.delete().where(schema.practices.c.practice_id == practice_id))
        connection.execute(schema.practices.insert().values(
            practice_id=practice_id, name=name, key_prefix=key_prefix,
            ivoris_practice_id=str(first.get("id")) if first else None,
            ivoris_name=str(first.get("name")) if first else None))
    chair_rows = [
        {"chair_key": f"{key_prefix}{cid}", "practice_id": practice_id, "ivoris_id": cid,
         "name": chair.get("name"), "dentist": chair.get("dentist")}
        for chair in chairs if (cid := usable_id(chair.get("id"))) is not None
    ]
    type_rows = [
        {"type_key": f"{key_prefix}{tid}", "practice_id": practice_id, "ivoris_id": tid,
         "code": kind.get("code"), "name": kind.get("name"),
         "duration_min": None if kind.get("duration_min") is None else str(kind["duration_min"])}
        for kind in types if (tid := usable_id(kind.get("id"))) is not None
    ]
    warehouse.replace_practice_rows(schema.chairs, practice_id, chair_rows)
    warehouse.replace_practice_rows(schema.appointment_types, practice_id, type_rows)
    return {"chairs": len(chair_rows), "chairs_without_id": len(chairs) - len(chair_rows),
            "appointment_types": len(type_rows), "types_without_id": len(types) - len(type_rows)}


def reference_data_gap(warehouse: Warehouse, practice_id: str, key_prefix: str,
                       mapped_type_ids: set[str]) -> str | None:
    """Why the practice's reference data must be read again before its appointments are staged:
    none at all, or older than the mapping (the mapping names a type the warehouse does not have,
    so Ivoris gained it after the last refresh). None when it is current."""
    table = schema.appointment_types
    known = {row["type_key"] for row in warehouse.read_rows(
        sa.select(table.c.type_key).where(table.c.practice_id == practice_id))}
    if not known:
        return "no appointment types in the warehouse"
    newer = sorted(i for i in mapped_type_ids if f"{key_prefix}{i}" not in known)
    if newer:
        return f"the mapping has type ids the warehouse lacks ({', '.join(newer[:5])})"
    return None
