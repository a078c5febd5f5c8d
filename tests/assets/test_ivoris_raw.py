"""The raw assets through Dagster, on SQLite and on PostgreSQL, against the Ivoris emulator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource

RANGE_START, RANGE_END = dt.date(2026, 6, 22), dt.date(2026, 7, 3)
RAW_TABLES = (schema.raw_appointments, schema.raw_patients, schema.raw_document_entries,
              schema.quarantine, schema.practices, schema.chairs, schema.appointment_types)


def range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat()}


def extract(mapping_file: Path, instance: DagsterInstance, practice: str = "mb",
            start: dt.date = RANGE_START, end: dt.date = RANGE_END) -> None:
    defs = build_definitions(mapping_file)
    assert defs.resolve_job_def("refresh_reference_data").execute_in_process(instance=instance).success
    result = defs.resolve_job_def(f"extract_{practice}").execute_in_process(
        instance=instance, tags=range_tags(start, end))
    assert result.success


def snapshot(warehouse_url: str) -> dict[str, list[tuple]]:
    warehouse = WarehouseResource(url=warehouse_url).get()
    return {table.name: sorted(tuple(map(str, row.values())) for row in warehouse.read_rows(sa.select(table)))
            for table in RAW_TABLES}


@pytest.fixture
def warehouse_env(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", warehouse_url)
    return warehouse_url


def test_raw_assets_extract_a_window_completely(warehouse_env: str, mapping_file: Path,
                                                ivoris: IvorisEmulator) -> None:
    with instance_for_test() as instance:
        extract(mapping_file, instance)
        runs = instance.get_runs()
        materialized = instance.get_materialized_partitions(AssetKey(["mb", "raw_document_entries"]))

    warehouse = WarehouseResource(url=warehouse_env).get()
    rows = {t.name: warehouse.read_rows(sa.select(t).where(t.c.practice_id == "mb"))
            for t in (schema.raw_appointments, schema.raw_patients, schema.raw_document_entries)}
    truth_appointments = ivoris.truth.appointments("mb", RANGE_START, RANGE_END)
    truth_entries = ivoris.truth.document_entries("mb", RANGE_START, RANGE_END)

    assert sorted(r["appointment_key"] for r in rows["raw_appointments"]) == sorted(
        f"MB_{a['id']}" for a in truth_appointments)
    assert sorted(r["entry_key"] for r in rows["raw_document_entries"]) == sorted(
        f"MB_{e['id']}" for e in truth_entries)
    referenced = {str(a["patientId"]) for a in truth_appointments}
    assert referenced <= {r["ivoris_id"] for r in rows["raw_patients"]}
    assert len(truth_appointments) > 20 and len(truth_entries) > 20
    # one run covered the whole twelve-day range (reference job + extraction job)
    assert len(runs) == 2
    assert len(materialized) == (RANGE_END - RANGE_START).days + 1
    assert warehouse.count_rows(schema.chairs, "mb") >= 6
    assert warehouse.count_rows(schema.appointment_types, "mb") == 14
    assert warehouse.count_rows(schema.quarantine) == 0


def test_rerunning_a_window_leaves_identical_tables(warehouse_env: str, mapping_file: Path) -> None:
    with instance_for_test() as instance:
        extract(mapping_file, instance)
        first = snapshot(warehouse_env)
        extract(mapping_file, instance)
        second = snapshot(warehouse_env)
    assert first == second
    assert len(first["raw_appointments"]) > 0


def test_rerunning_part_of_a_window_replaces_only_that_part(warehouse_env: str, mapping_file: Path,
                                                            ivoris: IvorisEmulator) -> None:
    with instance_for_test() as instance:
        extract(mapping_file, instance)
        before = snapshot(warehouse_env)
        # Ivoris moves on a day: statuses change, so re-extracting two days must change only them.
        ivoris.advance_clock(dt.timedelta(days=1))
        extract(mapping_file, instance, start=dt.date(2026, 7, 1), end=dt.date(2026, 7, 2))
        after = snapshot(warehouse_env)

    def outside(rows: list[tuple]) -> list[tuple]:
        return [r for r in rows if not ("2026-07-01" <= r[1] <= "2026-07-02")]

    assert outside(after["raw_appointments"]) == outside(before["raw_appointments"])
    assert after["raw_appointments"] != before["raw_appointments"]


def test_practices_are_extracted_independently(warehouse_env: str, mapping_file: Path,
                                               ivoris: IvorisEmulator) -> None:
    ivoris.set_outage("rb", mode="503")
    with instance_for_test() as instance:
        defs = build_definitions(mapping_file)
        ok = defs.resolve_job_def("extract_mb").execute_in_process(
            instance=instance, tags=range_tags(RANGE_START, RANGE_START))
        assert ok.success
    warehouse = WarehouseResource(url=warehouse_env).get()
    assert warehouse.count_rows(schema.raw_appointments, "mb") > 0
    assert warehouse.count_rows(schema.raw_appointments, "rb") == 0


def test_a_patient_changed_just_after_local_midnight_lands_in_that_local_day(
        warehouse_env: str, mapping_file: Path, ivoris: IvorisEmulator) -> None:
    """Partitions are Europe/Berlin days: a patient changed at 00:30 on 25 June in Berlin (22:30 UTC
    the day before) belongs to the 25th, so extracting the 25th must ask Ivoris for changes since
    Berlin midnight, not UTC midnight, and place the patient on the 25th."""
    day = dt.date(2026, 6, 25)
    changed = {"id": 987654, "firstName": "A", "lastName": "B", "birthDate": "1980-01-01",
               "email": None, "phone": None, "insurance": "GKV", "modifiedAt": "2026-06-24T22:30:00Z"}

    def with_the_change(answer: dict, query: dict[str, str]) -> dict:
        # what a server does: the change is listed for any `modifiedSince` at or before it
        since = query.get("modifiedSince")
        if since and since <= changed["modifiedAt"] and query.get("page", "1") == "1":
            answer["items"].append(dict(changed))
            answer["total"] += 1
        return answer

    ivoris.rewrite_response("/patients", with_the_change, site_id="mb", times=None)
    with instance_for_test() as instance:
        extract(mapping_file, instance, start=day, end=day)

    warehouse = WarehouseResource(url=warehouse_env).get()
    placed = warehouse.read_rows(sa.select(schema.raw_patients.c.partition_date, schema.raw_patients.c.reason)
                                 .where(schema.raw_patients.c.patient_key == "MB_987654"))
    assert placed == [{"partition_date": day, "reason": "modified"}]
