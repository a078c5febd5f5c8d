"""Ivoris' paging lies and garbled answers (SPEC §3 rev. 2, docs/ivoris-emulator.md) through Dagster:
`refresh_reference_data` and `pipeline_mb` over the fault suite's window, with one of the emulator's
lie knobs switched on for the practice's site. Each run must succeed, and the warehouse (raw,
quarantine, staging, deals) and the HubSpot portal must equal the fault-free reference: re-reading,
narrowing and retrying recover every record. What cannot be made consistent (a phantom `total`) is
kept and reported by the `ivoris_paging_consistent` check and the `ivoris_anomalies` table.
Non-integer ids are bad input: quarantined with a reason, never staged, never in HubSpot."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import ExecuteInProcessResult
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import FaultConfig, IvorisEmulator
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.faults.conftest import (
    PRACTICE,
    WINDOW,
    Reference,
    assert_matches_reference,
    fault_definitions,
    portal_snapshot,
    run_pipeline,
    table_rows,
)

pytestmark = pytest.mark.faults

LIES: dict[str, dict[str, Any]] = {
    "short_page": {"short_page_rate": 0.3},
    "wide_short_page": {"wide_short_page_rate": 0.6},
    "growing_or_shrinking_total": {"total_drift_rate": 0.4},
    "paged_ids_and_per_patient_routes": {"paged_lists_page_size": 3},
    "html_with_200": {"html_200_rate": 0.15},
    "truncated_json_with_200": {"truncated_json_rate": 0.15},
}


def check_results(result: ExecuteInProcessResult, name: str) -> list[Any]:
    return [e for e in result.get_asset_check_evaluations() if e.check_name == name]


def anomalies(url: str) -> list[dict[str, Any]]:
    table = schema.ivoris_anomalies
    return WarehouseResource(url=url).get().read_rows(sa.select(table).where(table.c.practice_id == PRACTICE))


def lie(ivoris: IvorisEmulator, **knobs: Any) -> None:
    # new FaultConfig: restarts the emulator's attempt counts; only Magdeburg's site lies
    ivoris.faults = dataclasses.replace(FaultConfig(), lie_sites=(PRACTICE,), **knobs)


@pytest.mark.parametrize("knobs", list(LIES.values()), ids=list(LIES))
def test_a_recoverable_lie_ends_as_the_reference(
        knobs: dict[str, Any], sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator,
        hubspot: HubSpotEmulator, reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    lie(ivoris, **knobs)
    with instance_for_test() as instance:
        result = run_pipeline(fault_definitions(mapping_file), instance)
    told = ivoris.stats()["faults"]
    # paged lists are legitimate server behaviour, not a lie the emulator counts
    assert told or "paged_lists_page_size" in knobs, "the emulator told no lie"
    assert table_rows(sqlite_url) == reference.tables
    assert_matches_reference(hubspot, sqlite_url, mapping_file, reference)
    [paging] = check_results(result, "ivoris_paging_consistent")
    assert paging.passed, paging.description
    print(f"\n{knobs}: emulator {dict(told)}; anomalies resolved by narrowing "
          f"{sum(1 for a in anomalies(sqlite_url) if a['resolved'])}")


def test_a_phantom_total_keeps_every_record_and_reports_the_windows(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    """`total` = the real count + 617 on every page, however narrow the request: nothing can make it
    add up. The run succeeds with every record Ivoris holds, and the windows are reported."""
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    lie(ivoris, phantom_total_extra=617)
    with instance_for_test() as instance:
        result = run_pipeline(fault_definitions(mapping_file), instance)
    assert table_rows(sqlite_url) == reference.tables
    assert_matches_reference(hubspot, sqlite_url, mapping_file, reference)
    rows = [a for a in anomalies(sqlite_url) if not a["resolved"]]
    assert rows and all("617" in a["problem"] or "total" in a["problem"] for a in rows)
    assert {a["route"] for a in rows} >= {"appointments", "document-entries"}
    days = {a["request_window"] for a in rows if a["route"] == "appointments"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \.\. \d{4}-\d\d-\d\d", d) for d in days)
    [paging] = check_results(result, "ivoris_paging_consistent")
    assert not paging.passed and "did not add up" in (paging.description or "")
    print(f"\nphantom total: {len(rows)} unresolved anomalies, e.g. {rows[0]['route']} "
          f"{rows[0]['request_window']}: {rows[0]['problem']}")


def test_non_integer_ids_are_quarantined_and_never_reach_hubspot(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    lie(ivoris, non_integer_id_rate=0.05, non_integer_id_references=True)
    with instance_for_test() as instance:
        run_pipeline(fault_definitions(mapping_file), instance)
    warehouse = WarehouseResource(url=sqlite_url).get()
    quarantine = warehouse.read_rows(sa.select(schema.quarantine).where(
        schema.quarantine.c.practice_id == PRACTICE))
    reasons = {q["reason"] for q in quarantine}
    assert "non-integer id" in reasons
    table = schema.stg_appointments
    staged = {r["appointment_key"] for r in warehouse.read_rows(sa.select(table.c.appointment_key))}
    reference_staged = {row[2] for row in reference.tables["stg_appointments"]}
    truth = ivoris.truth.appointments(PRACTICE, *WINDOW)
    spoiled = ivoris.truth.non_integer_ids(PRACTICE, "appointments", [a["id"] for a in truth])
    assert spoiled, "the window has no spoiled appointment"
    assert not {f"MB_{i}" for i in spoiled} & staged
    assert staged < reference_staged  # only good records, and most of them
    assert len(staged) >= 0.8 * len(reference_staged)
    portal = portal_snapshot(hubspot)
    for name, objects in portal.items():
        if name in ("contacts", "deals", "appointments"):
            for key in objects:
                assert re.fullmatch(r"MB_\d+(-.*)?", key), f"{name} key {key!r} is not an integer id"
    print(f"\nnon-integer ids: {len(spoiled)} spoiled appointments; quarantine reasons {sorted(reasons)}; "
          f"staged {len(staged)} of {len(reference_staged)} reference appointments")
