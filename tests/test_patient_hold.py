"""Quarantine stays upstream of HubSpot: the appointments and entries of a patient whose every
version is quarantined are held back ("patient quarantined"), and released by the next staging run
once a good version of the patient arrives, also when it arrives in another partition."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from biss_pipeline.domain.ivoris.entities import ENTITIES, PATIENT
from biss_pipeline.domain.mapping.config import parse_mapping
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.staging.window import stage_window
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.test_staging import appointment, entry, patient

DAY, LATER = dt.date(2026, 3, 3), dt.date(2026, 3, 20)


def keys(warehouse, table: sa.Table, column: str) -> set[str]:
    return {r[column] for r in warehouse.read_rows(sa.select(table.c[column]))}


def held(warehouse) -> set[tuple[str, str]]:
    q = schema.quarantine
    return {(r["entity"], r["record_key"]) for r in warehouse.read_rows(
        sa.select(q).where(q.c.reason == "patient quarantined"))}


def test_held_back_then_released_when_a_good_version_arrives(sqlite_url: str) -> None:
    mapping = parse_mapping(load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml"))
    practice = mapping.practice("mb")
    prefix = practice.key_prefix
    warehouse = WarehouseResource(url=sqlite_url).get()
    with warehouse.transaction() as connection:
        connection.execute(schema.appointment_types.insert().values(
            type_key=f"{prefix}4", practice_id="mb", ivoris_id="4", code="X", name="X",
            duration_min="30"))
        connection.execute(schema.raw_appointments.insert(), [
            {**appointment(f"{prefix}1"), "patient_id": "7"},
            {**appointment(f"{prefix}2"), "patient_id": "8"}])
        connection.execute(schema.raw_document_entries.insert(),
                           [{**entry(f"{prefix}100"), "patient_id": "7"}])
        connection.execute(schema.raw_patients.insert(), [
            {**patient(f"{prefix}7"), "birth_date": "0001-01-01"},  # every version of 7 is bad
            {**patient(f"{prefix}8"), "ivoris_id": "8"}])
    stage_window(warehouse, mapping, practice, ENTITIES, DAY, DAY)
    assert held(warehouse) == {("appointment", f"{prefix}1"), ("document_entry", f"{prefix}100")}
    assert keys(warehouse, schema.stg_appointments, "appointment_key") == {f"{prefix}2"}
    assert keys(warehouse, schema.stg_document_entries, "entry_key") == set()

    # a good version of patient 7 arrives on a later day; staging that day alone releases DAY's records
    with warehouse.transaction() as connection:
        connection.execute(schema.raw_patients.insert(), [
            {**patient(f"{prefix}7"), "partition_date": LATER, "modified_at": "2026-03-20T08:00:00Z",
             "reason": "modified"}])
    stage_window(warehouse, mapping, practice, [PATIENT], LATER, LATER)
    assert held(warehouse) == set()
    assert keys(warehouse, schema.stg_appointments, "appointment_key") == {f"{prefix}1", f"{prefix}2"}
    assert keys(warehouse, schema.stg_document_entries, "entry_key") == {f"{prefix}100"}
