"""Raw extraction assets, built per practice from the mapping config.

Why one set of assets per practice (see docs/architecture.md for the measurements): Dagster
splits a single-run backfill of a date × practice multi-partitioned asset into one run per
date, so a one-year backfill becomes hundreds of runs. Daily partitions per practice with
`BackfillPolicy.single_run()` make the same backfill one run, and a practice's outage only
fails that practice's runs.

A ranged run walks its window in chunks of `chunk_days` and replaces each chunk's partitions in
one transaction, so memory stays flat however long the window is, and a run that fails midway
has committed whole days only.
"""


import datetime as dt
import json
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    DailyPartitionsDefinition,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    multi_asset,
)

from biss_pipeline.config.practices import PracticeConfig
from biss_pipeline.extract import (
    ExtractedRows,
    appointment_rows,
    day_of,
    document_entry_rows,
    modification_day,
    patient_rows,
    usable_id,
)
from biss_pipeline.resources.ivoris import IvorisClient, IvorisError, IvorisResource, iter_date_chunks
from biss_pipeline.resources.warehouse import Warehouse, WarehouseResource
from biss_pipeline.warehouse import schema

# Single-run backfills are the reason for this layout (see the module docstring), so the
# beta notice on `backfill_policy` is expected rather than news.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

# Appointments are booked weeks ahead; deal stages need them ("nothing booked ahead"), so
# partitions reach this many days past today.
BOOKING_LOOKAHEAD_DAYS = 60
PARTITION_TIMEZONE = "Europe/Berlin"

IVORIS_RETRY_POLICY = RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL,
                                  jitter=Jitter.PLUS_MINUS)


def practice_partitions(practice: PracticeConfig) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=practice.history_start.isoformat(),
                                     end_offset=BOOKING_LOOKAHEAD_DAYS, timezone=PARTITION_TIMEZONE)


def practice_group(practice: PracticeConfig) -> str:
    return f"ivoris_{practice.practice_id}"


def raw_asset_key(practice: PracticeConfig, name: str) -> AssetKey:
    return AssetKey([practice.practice_id, name])


def partition_window(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The run's inclusive date window (one partition or a whole backfill range)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


@dataclass
class _RunTotals:
    rows: int = 0
    quarantined: int = 0
    chunks: int = 0
    quarantine_reasons: Counter[str] | None = None

    def add(self, extracted: ExtractedRows) -> None:
        self.rows += len(extracted.rows)
        self.quarantined += len(extracted.quarantined)
        self.chunks += 1
        if self.quarantine_reasons is None:
            self.quarantine_reasons = Counter()
        for row in extracted.quarantined:
            self.quarantine_reasons[row["reason"]] += 1


def _write_chunk(warehouse: Warehouse, table: sa.Table, entity: str, practice_id: str,
                 date_from: dt.date, date_to: dt.date, extracted: ExtractedRows) -> None:
    """The chunk's rows and its raw-stage quarantine rows replace the old ones together."""
    with warehouse.transaction() as connection:
        warehouse.replace_partitions(table, practice_id, date_from, date_to, extracted.rows, connection)
        warehouse.replace_partitions(
            schema.quarantine, practice_id, date_from, date_to, extracted.quarantined, connection,
            extra_filter=sa.and_(schema.quarantine.c.entity == entity,
                                 schema.quarantine.c.stage == "raw"))


def _record_run(context: AssetExecutionContext, warehouse: Warehouse, practice_id: str,
                date_from: dt.date | None, date_to: dt.date | None, rows: int,
                client: IvorisClient) -> None:
    stats = client.stats.as_metadata()
    with warehouse.transaction() as connection:
        connection.execute(schema.extraction_runs.insert().values(
            run_id=context.run.run_id, practice_id=practice_id,
            asset=context.asset_key.to_user_string(), date_from=date_from, date_to=date_to,
            rows_written=rows, requests=stats["ivoris_requests"], retries=stats["ivoris_retries"],
            status_counts=json.dumps(stats["ivoris_status_counts"], sort_keys=True),
            finished_at=dt.datetime.now(dt.UTC)))


def _result_metadata(date_from: dt.date, date_to: dt.date, totals: _RunTotals,
                     client: IvorisClient) -> dict[str, Any]:
    return {
        "dagster/row_count": totals.rows,
        "window": f"{date_from.isoformat()} .. {date_to.isoformat()}",
        "days": (date_to - date_from).days + 1,
        "chunks": totals.chunks,
        "quarantined": totals.quarantined,
        "quarantine_reasons": MetadataValue.json(dict(totals.quarantine_reasons or {})),
        **client.stats.as_metadata(),
    }


def build_practice_raw_assets(practice: PracticeConfig) -> list[Any]:
    """Reference and raw extraction assets for one practice."""
    pid, prefix = practice.practice_id, practice.key_prefix
    partitions = practice_partitions(practice)
    group = practice_group(practice)
    resource_key = practice.resource_key
    pool = f"ivoris_{pid}"
    common: dict[str, Any] = {
        "group_name": group,
        "required_resource_keys": {resource_key, "warehouse"},
        "kinds": {"sql"},
        "owners": ["team:data-engineering"],
    }

    def ivoris(context: AssetExecutionContext) -> IvorisResource:
        return getattr(context.resources, resource_key)

    def warehouse_of(context: AssetExecutionContext) -> Warehouse:
        resource: WarehouseResource = context.resources.warehouse
        return resource.get()

    @multi_asset(
        name=f"{pid}_ivoris_reference",
        specs=[
            AssetSpec(raw_asset_key(practice, "practice"), group_name=group,
                      description=f"{practice.name}: the practice record as Ivoris reports it."),
            AssetSpec(raw_asset_key(practice, "chairs"), group_name=group,
                      description=f"{practice.name}: dentist chairs (key prefix {prefix})."),
            AssetSpec(raw_asset_key(practice, "appointment_types"), group_name=group,
                      description=f"{practice.name}: appointment types (Terminarten)."),
        ],
        required_resource_keys={resource_key, "warehouse"},
        pool=pool,
        retry_policy=IVORIS_RETRY_POLICY,
    )
    def reference(context: AssetExecutionContext):  # type: ignore[no-untyped-def]
        warehouse = warehouse_of(context)
        with ivoris(context).client() as client:
            ivoris_practices = client.practices()
            chairs = client.chairs()
            types = client.appointment_types()
        first = ivoris_practices[0] if ivoris_practices else {}
        with warehouse.transaction() as connection:
            connection.execute(schema.practices.delete().where(schema.practices.c.practice_id == pid))
            connection.execute(schema.practices.insert().values(
                practice_id=pid, name=practice.name, key_prefix=prefix,
                ivoris_practice_id=str(first.get("id")) if first else None,
                ivoris_name=str(first.get("name")) if first else None))
        chair_rows = [
            {"chair_key": f"{prefix}{cid}", "practice_id": pid, "ivoris_id": cid,
             "name": chair.get("name"), "dentist": chair.get("dentist")}
            for chair in chairs if (cid := usable_id(chair.get("id"))) is not None
        ]
        type_rows = [
            {"type_key": f"{prefix}{tid}", "practice_id": pid, "ivoris_id": tid,
             "code": kind.get("code"), "name": kind.get("name"),
             "duration_min": None if kind.get("duration_min") is None else str(kind["duration_min"])}
            for kind in types if (tid := usable_id(kind.get("id"))) is not None
        ]
        warehouse.replace_practice_rows(schema.chairs, pid, chair_rows)
        warehouse.replace_practice_rows(schema.appointment_types, pid, type_rows)
        stats = client.stats.as_metadata()
        yield MaterializeResult(asset_key=raw_asset_key(practice, "practice"),
                                metadata={"dagster/row_count": 1, **stats})
        yield MaterializeResult(asset_key=raw_asset_key(practice, "chairs"), metadata={
            "dagster/row_count": len(chair_rows), "skipped_without_id": len(chairs) - len(chair_rows)})
        yield MaterializeResult(asset_key=raw_asset_key(practice, "appointment_types"), metadata={
            "dagster/row_count": len(type_rows), "skipped_without_id": len(types) - len(type_rows)})

    partitioned: dict[str, Any] = {
        **common,
        "partitions_def": partitions,
        "backfill_policy": BackfillPolicy.single_run(),
        "pool": pool,
        "retry_policy": IVORIS_RETRY_POLICY,
    }

    ChunkExtractor = Callable[[dt.date, dt.date], ExtractedRows]

    def extract_window(context: AssetExecutionContext, table: sa.Table, entity: str,
                       start: Callable[[IvorisClient, Warehouse, dt.date, dt.date], ChunkExtractor],
                       ) -> MaterializeResult:
        """Walk the run's window chunk by chunk; each chunk's partitions are replaced atomically."""
        date_from, date_to = partition_window(context)
        warehouse, resource = warehouse_of(context), ivoris(context)
        totals = _RunTotals()
        with resource.client() as client:
            try:
                extract_chunk = start(client, warehouse, date_from, date_to)
            except IvorisError as exc:
                raise _in_partitions(exc, date_from, date_to, None) from None
            for chunk_from, chunk_to in iter_date_chunks(date_from, date_to, resource.chunk_days):
                try:
                    extracted = extract_chunk(chunk_from, chunk_to)
                except IvorisError as exc:
                    raise _in_partitions(exc, chunk_from, chunk_to, date_from) from None
                _write_chunk(warehouse, table, entity, pid, chunk_from, chunk_to, extracted)
                totals.add(extracted)
            _record_run(context, warehouse, pid, date_from, date_to, totals.rows, client)
        return MaterializeResult(metadata=_result_metadata(date_from, date_to, totals, client))

    @asset(key=raw_asset_key(practice, "raw_appointments"),
           description=f"{practice.name}: appointments as Ivoris returns them, by appointment day.",
           **partitioned)
    def raw_appointments(context: AssetExecutionContext) -> MaterializeResult:
        def start(client: IvorisClient, _w: Warehouse, _f: dt.date, _t: dt.date) -> ChunkExtractor:
            return lambda first, last: appointment_rows(pid, prefix, client.appointments(first, last),
                                                        first, last)

        return extract_window(context, schema.raw_appointments, "appointment", start)

    @asset(key=raw_asset_key(practice, "raw_patients"),
           deps=[raw_asset_key(practice, "raw_appointments")],
           description=f"{practice.name}: patients referenced by the window's appointments plus "
                       "those modified in it.",
           **partitioned)
    def raw_patients(context: AssetExecutionContext) -> MaterializeResult:
        def start(client: IvorisClient, warehouse: Warehouse, date_from: dt.date,
                  date_to: dt.date) -> ChunkExtractor:
            since = dt.datetime.combine(date_from, dt.time(), tzinfo=dt.UTC)
            modified: dict[str, dict[str, Any]] = {}
            copies: dict[str, list[dict[str, Any]]] = {}  # >1 only for conflicting copies
            for record in client.patients_modified_since(since):
                ivoris_id, day = usable_id(record.get("id")), modification_day(record)
                if ivoris_id is not None and day is not None and day <= date_to:
                    modified[ivoris_id] = record
                    copies.setdefault(ivoris_id, []).append(record)

            def extract_chunk(first: dt.date, last: dt.date) -> ExtractedRows:
                reasons = _patient_reasons(warehouse, pid, first, last, modified)
                missing = [i for i in reasons if i not in modified]
                records = client.patients_by_ids(missing) if missing else []
                records += [copy for i in reasons if i in modified for copy in copies[i]]
                return patient_rows(pid, prefix, records, reasons, first, last)

            return extract_chunk

        return extract_window(context, schema.raw_patients, "patient", start)

    @asset(key=raw_asset_key(practice, "raw_document_entries"),
           description=f"{practice.name}: billing lines (document entries) by entry date, from "
                       "the date-filtered route.",
           **partitioned)
    def raw_document_entries(context: AssetExecutionContext) -> MaterializeResult:
        def start(client: IvorisClient, _w: Warehouse, _f: dt.date, _t: dt.date) -> ChunkExtractor:
            return lambda first, last: document_entry_rows(
                pid, prefix, client.document_entries(first, last), first, last)

        return extract_window(context, schema.raw_document_entries, "document_entry", start)

    @asset(key=raw_asset_key(practice, "raw_repaired_document_entries"),
           deps=[raw_asset_key(practice, "raw_appointments"),
                 raw_asset_key(practice, "raw_document_entries")],
           description=f"{practice.name}: billing lines the date-filtered route missed, re-fetched "
                       "through the per-patient route for every patient with a completed appointment.",
           **partitioned)
    def raw_repaired_document_entries(context: AssetExecutionContext) -> MaterializeResult:
        def start(client: IvorisClient, warehouse: Warehouse, _f: dt.date, _t: dt.date) -> ChunkExtractor:
            seen: dict[str, list[dict[str, Any]]] = {}

            def extract_chunk(first: dt.date, last: dt.date) -> ExtractedRows:
                patients, known = entry_repair_inputs(warehouse, pid, first, last)
                fetch = [p for p in patients if p not in seen]
                with ThreadPoolExecutor(max_workers=client.max_concurrency) as pool:
                    seen.update(zip(fetch, pool.map(client.patient_document_entries, fetch), strict=True))
                missing = [entry for p in patients for entry in seen[p]
                           if f"{prefix}{entry.get('id')}" not in known
                           and (day := day_of(entry.get("date"))) is not None and first <= day <= last]
                repaired = document_entry_rows(pid, prefix, missing, first, last)
                for row in repaired.quarantined:  # this asset replaces (and so must write) its own entity
                    row["entity"] = "document_entry_repair"
                return repaired

            return extract_chunk

        return extract_window(context, schema.raw_repaired_document_entries, "document_entry_repair", start)

    return [reference, raw_appointments, raw_patients, raw_document_entries, raw_repaired_document_entries]


def _in_partitions(exc: IvorisError, first: dt.date, last: dt.date, run_start: dt.date | None,
                   ) -> IvorisError:
    """The client's error (site, route, request window) plus the partitions left unwritten."""
    kept = (f"; partitions before {first.isoformat()} were committed"
            if run_start is not None and run_start < first else "")
    return type(exc)(f"{exc} -- partitions {first.isoformat()} .. {last.isoformat()} not written{kept}")


def _patient_reasons(warehouse: Warehouse, practice_id: str, date_from: dt.date, date_to: dt.date,
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


def raw_asset_keys(practices: Sequence[PracticeConfig]) -> list[AssetKey]:
    return [raw_asset_key(p, name) for p in practices
            for name in ("raw_appointments", "raw_patients", "raw_document_entries")]
