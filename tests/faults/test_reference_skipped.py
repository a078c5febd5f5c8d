"""Issue 13, "the README's onboarding path gives a green run with no data": `pipeline_mb` launched
before anyone ran `refresh_reference_data`. The pipeline reads the reference data itself, so the
run ends as the fault-free reference (raw, staging, deals and HubSpot); and every daily partition's
materialization carries that day's row count, not the window's."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.keys import practice_asset_key
from tests.faults.conftest import (
    PRACTICE,
    Reference,
    assert_matches_reference,
    fault_definitions,
    run_job,
    table_rows,
)

pytestmark = pytest.mark.faults


def test_the_pipeline_without_the_reference_job_first_ends_as_the_reference(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    with instance_for_test() as instance:
        result = run_job(fault_definitions(mapping_file), f"pipeline_{PRACTICE}", instance)
        assert result.success
    assert table_rows(sqlite_url) == reference.tables
    assert_matches_reference(hubspot, sqlite_url, mapping_file, reference)

    # per-partition metadata: each day's row count is that day's
    key = practice_asset_key(PRACTICE, "raw_appointments")
    per_day = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == key:
            per_day[materialization.partition] = materialization.metadata["dagster/row_count"].value
    rows = Counter(row[1] for row in reference.tables["raw_appointments"])  # (practice, day, ...)
    assert per_day == {day: rows.get(day, 0) for day in per_day}
    assert len(set(per_day.values())) > 1
    assert sum(per_day.values()) == len(reference.tables["raw_appointments"])
