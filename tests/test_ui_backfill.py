"""A backfill launched the way the Dagster UI launches it (GraphQL `launchPartitionBackfill`)
against the project's own definitions."""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from pathlib import Path

import pytest
from dagster._core.instance_for_test import instance_for_test

from bench.backfill_runs import drive_backfill, launch_backfill_like_the_ui, measure_project_definitions
from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain import paths as settings
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource

DEFINITIONS_FILE = settings.PROJECT_ROOT / "biss_pipeline" / "definitions.py"


def test_a_ui_backfill_of_one_practice_is_one_run_that_extracts_the_window() -> None:
    figures = measure_project_definitions(days=10, start=dt.date(2026, 6, 19))
    assert figures["status"] == "COMPLETED_SUCCESS"
    assert figures["runs"] == 1
    assert figures["raw_appointments"] == figures["expected_appointments"] > 0
    assert figures["raw_document_entries"] > 0


def test_a_ui_backfill_of_every_asset_of_the_three_practices_runs_through_to_hubspot(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Selecting the practices' whole pipelines in the UI: staging is a multi-asset, which Dagster
    1.13 refused to backfill while it was not subsettable (see assets/staging.py)."""
    monkeypatch.setenv("BISS_MAPPING_FILE", str(mapping_file))
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    # Runs execute in this process and load `defs` from the module, which another test may have
    # imported with another mapping.
    for module in ("definitions", "biss_pipeline.definitions"):  # as loaded from the file, and imported
        monkeypatch.delitem(sys.modules, module, raising=False)
    practices = ("mb", "rb", "le")
    defs = build_definitions(mapping_file)
    assets = sorted({tuple(key.path) for p in practices
                     for key in defs.resolve_job_def(f"pipeline_{p}").asset_layer.selected_asset_keys})
    days = [(dt.date(2026, 6, 24) + dt.timedelta(days=i)).isoformat() for i in range(7)]
    with HubSpotEmulator(token="ui-backfill-token", search_index_delay_s=0.0) as hubspot, \
            instance_for_test(synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "ui-backfill-token")
        monkeypatch.setenv("BISS_HUBSPOT_HOST", hubspot.base_url)
        assert defs.resolve_job_def("refresh_reference_data").execute_in_process(instance=instance).success
        backfill_id = launch_backfill_like_the_ui(instance, DEFINITIONS_FILE, "defs", days,
                                                  [list(path) for path in assets])
        drive_backfill(instance, DEFINITIONS_FILE, "defs", backfill_id)
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None and backfill.status.value == "COMPLETED_SUCCESS"
        runs = instance.get_runs()
        assert all(run.status.value == "SUCCESS" for run in runs)
        deal_keys = Counter(d["properties"].get("ivoris_deal_key") for d in hubspot.objects("deals"))

    warehouse = WarehouseResource(url=sqlite_url).get()
    for practice in practices:
        assert warehouse.count_rows(schema.raw_appointments, practice) > 0
        deals = warehouse.count_rows(schema.deals, practice)
        assert deals == sum(1 for key in deal_keys if key.startswith(f"{practice.upper()}_")) > 0
    assert max(deal_keys.values()) == 1
