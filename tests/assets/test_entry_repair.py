"""Ivoris' date route hides entries: the check flags the gap, the repair re-fetches exactly the
hidden entries through the per-patient route, and the completeness check then passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_ivoris_raw import RANGE_END, RANGE_START, range_tags


def checks_of(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_hidden_entries_are_flagged_then_re_fetched(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    ivoris.faults.date_route_gap_rate = 0.15
    hidden = {f"MB_{i}" for i in ivoris.truth.hidden_document_entry_ids("mb", RANGE_START, RANGE_END)}
    assert hidden, "the emulator must hide something for this test to mean anything"
    defs = build_definitions(mapping_file)
    job = defs.resolve_implicit_global_asset_job_def()
    raw = [AssetKey(["mb", "raw_appointments"]), AssetKey(["mb", "raw_document_entries"])]
    with instance_for_test() as instance:
        date_route = job.execute_in_process(instance=instance, asset_selection=raw,
                                            tags=range_tags(RANGE_START, RANGE_END))
        repair = job.execute_in_process(instance=instance,
                                        asset_selection=[AssetKey(["mb", "raw_repaired_document_entries"])],
                                        tags=range_tags(RANGE_START, RANGE_END))

    assert checks_of(date_route) == {"date_route_complete": False, "appointment_volume": True}
    [evaluation] = repair.get_asset_check_evaluations()
    assert evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()}
    warehouse = WarehouseResource(url=sqlite_url).get()
    repaired = {r["entry_key"] for r in warehouse.read_rows(sa.select(schema.raw_repaired_document_entries))}
    delivered = {r["entry_key"] for r in warehouse.read_rows(sa.select(schema.raw_document_entries))}
    # exactly the hidden entries of completed appointments' patients were re-fetched
    assert repaired and repaired <= hidden
    assert not repaired & delivered
    truth = {f"MB_{e['id']}" for e in ivoris.truth.document_entries("mb", RANGE_START, RANGE_END)}
    assert delivered | repaired == truth


def per_patient_requests(ivoris: IvorisEmulator) -> int:
    return sum(n for (route, _status), n in ivoris.stats()["requests"].items()
               if route.endswith("/patients/{patient_id}/document-entries"))


def test_a_later_repair_asks_only_changed_flagged_and_rotating_patients(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15, 2c: the first repair of a practice asks every patient with a completed appointment;
    a later one only those whose completed appointment changed, those with a completed appointment
    without billing lines, and the day's rotating slice (every patient within `repair_period_days`).
    What the earlier repair found for the patients not asked stays."""
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    ivoris.faults.date_route_gap_rate = 0.15
    defs = build_definitions(mapping_file)
    job = defs.resolve_implicit_global_asset_job_def()
    raw = [AssetKey(["mb", "raw_appointments"]), AssetKey(["mb", "raw_document_entries"])]
    repair = [AssetKey(["mb", "raw_repaired_document_entries"])]
    warehouse = WarehouseResource(url=sqlite_url).get()
    counts = []
    repaired = []
    with instance_for_test() as instance:
        job.execute_in_process(instance=instance, asset_selection=raw,
                               tags=range_tags(RANGE_START, RANGE_END))
        for _ in range(2):
            before = per_patient_requests(ivoris)
            assert job.execute_in_process(instance=instance, asset_selection=repair,
                                          tags=range_tags(RANGE_START, RANGE_END)).success
            counts.append(per_patient_requests(ivoris) - before)
            repaired.append(sorted(r["entry_key"] for r in warehouse.read_rows(
                sa.select(schema.raw_repaired_document_entries))))
    first, second = counts
    print(f"\nentry repair per-patient requests: first run {first}, second run {second}")
    assert first > 0 and second < first
    assert repaired[0] and repaired[1] == repaired[0]
