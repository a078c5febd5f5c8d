"""Staging a window of one practice: raw rows → typed, validated rows plus quarantine, entity by
entity as declared in `biss_pipeline.domain.ivoris.entities`.

Idempotent: a window's staging rows and its staging quarantine rows are replaced together, in chunks
of `STAGING_CHUNK_DAYS` (staging reads the warehouse, not Ivoris, so it takes bigger steps than
extraction).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.ivoris.client import iter_date_chunks
from biss_pipeline.domain.ivoris.entities import ENTITIES, PATIENT, IvorisEntity, StagingInputs
from biss_pipeline.domain.mapping.config import MappingConfig
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.staging.rules import PATIENT_QUARANTINED, StagedRows
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

STAGING_CHUNK_DAYS = 31


def _raw(warehouse: Warehouse, table: sa.Table, practice_id: str, date_from: dt.date,
         date_to: dt.date) -> list[dict[str, Any]]:
    return warehouse.read_rows(sa.select(table).where(
        table.c.practice_id == practice_id,
        table.c.partition_date >= date_from, table.c.partition_date <= date_to))


def _write(warehouse: Warehouse, practice_id: str, date_from: dt.date, date_to: dt.date,
           staged: dict[IvorisEntity, StagedRows]) -> None:
    quarantine = schema.quarantine
    with warehouse.transaction() as connection:
        for entity, result in staged.items():
            warehouse.replace_partitions(entity.staging_table, practice_id, date_from, date_to, result.rows,
                                         connection)
            # the same rejected key can arrive through both entry routes: one quarantine row
            unique = list({tuple(sorted(q.items())): q for q in result.quarantined}.values())
            warehouse.replace_partitions(
                quarantine, practice_id, date_from, date_to, unique, connection,
                extra_filter=sa.and_(quarantine.c.entity == entity.name, quarantine.c.stage == "staging"))


def known_type_keys(warehouse: Warehouse, practice_id: str) -> frozenset[str]:
    table = schema.appointment_types
    return frozenset(row["type_key"] for row in warehouse.read_rows(
        sa.select(table.c.type_key).where(table.c.practice_id == practice_id)))


def _patient_keys(warehouse: Warehouse, practice_id: str, outside: tuple[dt.date, dt.date] | None,
                  ) -> set[str]:
    """Patients with a staged (good) version, optionally outside the days being re-staged."""
    table = schema.stg_patients
    query = sa.select(table.c.patient_key).distinct().where(table.c.practice_id == practice_id)
    if outside is not None:
        query = query.where(sa.or_(table.c.partition_date < outside[0], table.c.partition_date > outside[1]))
    return {row["patient_key"] for row in warehouse.read_rows(query)}


def _quarantined_patients(warehouse: Warehouse, practice_id: str) -> set[str]:
    table = schema.quarantine
    return {row["record_key"] for row in warehouse.read_rows(
        sa.select(table.c.record_key).distinct().where(
            table.c.practice_id == practice_id, table.c.entity == "patient"))}


def stage_window(warehouse: Warehouse, mapping: MappingConfig, practice: PracticeConfig,
                 selected: Collection[IvorisEntity], date_from: dt.date,
                 date_to: dt.date, by_day: dict[IvorisEntity, Counter[dt.date]] | None = None,
                 release_held: bool = True) -> dict[IvorisEntity, Counter[str]]:
    """Stage the selected entities for the window; per entity, `rows` staged and the count per
    quarantine reason (`by_day`, if given, gets the staged rows per partition day). A mapping gap
    (an appointment type the sheet lacks) raises `ConfigError`.

    Appointments and entries are checked against the *staged* patients: those of a patient whose
    every version is quarantined are held back ("patient quarantined"), and days outside the window
    holding such records are re-staged once a good version of their patient has arrived."""
    pid = practice.practice_id
    types = known_type_keys(warehouse, pid)
    counts: dict[IvorisEntity, Counter[str]] = {e: Counter() for e in ENTITIES if e in selected}
    for chunk_from, chunk_to in iter_date_chunks(date_from, date_to, STAGING_CHUNK_DAYS):
        raw = {entity: [row for name in entity.raw_names
                        for row in _raw(warehouse, schema.metadata.tables[name], pid, chunk_from, chunk_to)]
               for entity in counts}
        if PATIENT not in raw:
            raw_patients = _raw(warehouse, schema.raw_patients, pid, chunk_from, chunk_to)
        else:
            raw_patients = raw[PATIENT]
        staged: dict[IvorisEntity, StagedRows] = {}
        if PATIENT in raw:
            staged[PATIENT] = PATIENT.stage(raw[PATIENT], StagingInputs(
                practice.key_prefix, date_to, frozenset(), types))
            good = _patient_keys(warehouse, pid, (chunk_from, chunk_to)) | {
                row["patient_key"] for row in staged[PATIENT].rows}
        else:
            good = _patient_keys(warehouse, pid, None)
        delivered = {row["patient_key"] for row in raw_patients} | _quarantined_patients(warehouse, pid)
        inputs = StagingInputs(practice.key_prefix, date_to, frozenset(good), types,
                               held_patient_keys=frozenset(delivered - good))
        for entity, rows in raw.items():
            if entity is PATIENT:
                continue
            if entity.check_config is not None:
                entity.check_config(rows, mapping, inputs)
            staged[entity] = entity.stage(rows, inputs)
        _write(warehouse, pid, chunk_from, chunk_to, staged)
        for entity, result in staged.items():
            counts[entity]["rows"] += len(result.rows)
            counts[entity].update(q["reason"] for q in result.quarantined)
            if by_day is not None:
                by_day.setdefault(entity, Counter()).update(row["partition_date"] for row in result.rows)
    if release_held:
        for day in releasable_days(warehouse, practice, date_from, date_to):
            stage_window(warehouse, mapping, practice, [e for e in ENTITIES if e is not PATIENT], day, day,
                         release_held=False)
    return counts


def releasable_days(warehouse: Warehouse, practice: PracticeConfig, date_from: dt.date,
                    date_to: dt.date) -> list[dt.date]:
    """Days outside the window with records held for a quarantined patient who now has a good
    version: re-staging them releases those records without anyone re-running those days."""
    pid, quarantine = practice.practice_id, schema.quarantine
    held = warehouse.read_rows(sa.select(quarantine.c.partition_date, quarantine.c.entity,
                                         quarantine.c.record_key).where(
        quarantine.c.practice_id == pid, quarantine.c.stage == "staging",
        quarantine.c.reason == PATIENT_QUARANTINED,
        sa.or_(quarantine.c.partition_date < date_from, quarantine.c.partition_date > date_to)))
    if not held:
        return []
    good = _patient_keys(warehouse, pid, None)
    days: set[dt.date] = set()
    sources = {"appointment": [(schema.raw_appointments, "appointment_key")],
               "document_entry": [(schema.raw_document_entries, "entry_key"),
                                  (schema.raw_repaired_document_entries, "entry_key")]}
    for row in held:
        for table, key_column in sources.get(row["entity"], []):
            found = warehouse.read_rows(sa.select(table.c.patient_id).where(
                table.c.practice_id == pid, table.c.partition_date == row["partition_date"],
                table.c[key_column] == row["record_key"]))
            if any(f"{practice.key_prefix}{r['patient_id']}" in good for r in found):
                days.add(row["partition_date"])
    return sorted(days)
