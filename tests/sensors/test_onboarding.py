"""Onboarding is config: a new active practice row is extractable after a definitions reload, no code."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.keys import window_tags
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.warehouse import WarehouseResource

HALLE = {"id": "hl", "name": "Zahnarztpraxis Halle", "key_prefix": "HL_",
         "ivoris_base_url": "http://127.0.0.1:8710/sites/hl", "api_key_env": "IVORIS_API_KEY_HL",
         "history_start": "2026-04-01", "active": True}


def write(path: Path, tabs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_a_new_active_practice_gets_assets_resource_jobs_schedules_and_sensors(tmp_path: Path) -> None:
    tabs = load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml")
    mapping = write(tmp_path / "mapping.yaml", tabs)
    before = build_definitions(mapping)
    assert not any(k.path[0] == "hl" for k in before.resolve_asset_graph().get_all_asset_keys())

    watcher = before.resolve_sensor_def("mapping_config_change")
    mapping_resource = {"mapping": before.resources["mapping"]}
    with DagsterInstance.ephemeral() as instance:
        baseline = watcher.evaluate_tick(build_sensor_context(instance=instance, resources=mapping_resource))

        # Onboarding: one row in the practices tab (and the practice's Terminarten) ...
        tabs["practices"].append(HALLE)
        tabs["appointment_types"] += [{**r, "practice": "hl"} for r in tabs["appointment_types"]
                                      if r["practice"] == "mb"]
        write(mapping, tabs)
        # ... which the mapping sensor of the loaded definitions notices and flags for a reload.
        after_edit = build_sensor_context(instance=instance, resources=mapping_resource,
                                          cursor=baseline.cursor)
        [request] = watcher.evaluate_tick(after_edit).run_requests
    assert request.tags["biss/reload_definitions_for"] == "hl"
    assert request.asset_selection == [AssetKey(["mapping_config"])]

    # The reload: what building the definitions again from the same mapping is.
    defs = build_definitions(mapping)
    Definitions.validate_loadable(defs)

    keys = defs.resolve_asset_graph().get_all_asset_keys()
    for name in ("raw_appointments", "raw_patients", "raw_document_entries", "stg_appointments", "deals",
                 "contact_rollups"):
        assert AssetKey(["hl", name]) in keys
    assert AssetKey(["hubspot", "hl", "sync"]) in keys
    resource = defs.resources["ivoris_hl"]
    assert isinstance(resource, IvorisResource)
    assert resource.base_url == HALLE["ivoris_base_url"] and resource.practice_id == "hl"
    for job in ("extract_hl", "pipeline_hl"):
        assert defs.resolve_job_def(job).tags["practice"] == "hl"
    for schedule in ("hl_incremental_sync", "hl_nightly_resync"):
        assert defs.resolve_schedule_def(schedule).job_name == "pipeline_hl"
    assert defs.resolve_sensor_def("hl_catch_up").job_name == "pipeline_hl"
    graph = defs.resolve_asset_graph()
    partitions = graph.get(AssetKey(["hl", "raw_appointments"])).partitions_def
    assert partitions is not None and partitions.get_first_partition_key() == "2026-04-01"
    # the practices already there are untouched
    assert set(before.resolve_asset_graph().get_all_asset_keys()) <= set(keys)


def test_an_inactive_row_stays_out_until_it_is_switched_on(tmp_path: Path) -> None:
    tabs = load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml")
    tabs["practices"].append({**HALLE, "active": False})
    mapping = write(tmp_path / "mapping.yaml", tabs)
    defs = build_definitions(mapping)
    assert not any(k.path[0] == "hl" for k in defs.resolve_asset_graph().get_all_asset_keys())
    assert "ivoris_hl" not in defs.resources


def test_the_new_practice_extracts_after_the_reload(
        mapping_file: Path, ivoris: IvorisEmulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The emulator has no Halle site; Leipzig's server stands in for it under Halle's id, prefix and key.
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    monkeypatch.setenv("IVORIS_API_KEY_HL", ivoris.api_key("le"))
    tabs = load_mapping_tabs(mapping_file)
    tabs["practices"].append({**HALLE, "ivoris_base_url": ivoris.site_url("le")})
    defs = build_definitions(write(mapping_file, tabs))
    with instance_for_test() as instance:
        result = defs.resolve_job_def("extract_hl").execute_in_process(
            instance=instance, tags=window_tags(dt.date(2026, 6, 22), dt.date(2026, 6, 23)))
    assert result.success
    rows = WarehouseResource(url=sqlite_url).get().read_rows(
        sa.select(schema.raw_appointments).where(schema.raw_appointments.c.practice_id == "hl"))
    assert rows and all(r["appointment_key"].startswith("HL_") for r in rows)
