"""`preview_<practice>`: the HubSpot dry run as a job of its own, launched without config. It shows
the diff summary on the run, writes nothing to HubSpot or the ledger and records no sync
materialization; the real sync afterwards does what the preview said."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.demo import hubspot_write_calls
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_ivoris_raw import range_tags

WINDOW = (dt.date(2026, 6, 29), dt.date(2026, 7, 5))
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SYNC = AssetKey(["hubspot", "mb", "sync"])


def test_the_preview_shows_the_diff_writes_nothing_and_the_sync_then_matches_it(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    defs = build_definitions(mapping_file)
    pipeline = defs.resolve_job_def("pipeline_mb")
    upstream = [key for key in pipeline.asset_layer.executable_asset_keys
                if key.path[0] not in ("hubspot", "kpi")]
    warehouse = WarehouseResource(url=sqlite_url).get()
    with instance_for_test() as instance:
        assert defs.resolve_job_def("refresh_reference_mb").execute_in_process(
            instance=instance, run_config=QUIET).success
        # Ivoris → deals, without the sync: the warehouse knows deals HubSpot has not seen
        assert pipeline.execute_in_process(instance=instance, tags=range_tags(*WINDOW), run_config=QUIET,
                                           asset_selection=upstream).success
        before = len(hubspot.request_log)
        preview = defs.resolve_job_def("preview_mb").execute_in_process(instance=instance)  # no config
        assert preview.success
        [output] = [e for e in preview.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
        assert metadata["dry_run"] is True and metadata["write_calls"] == 0
        assert metadata["contacts_create"] > 0 and metadata["deals_create"] > 0
        assert "| contacts |" in metadata["diff"] and "| deals |" in metadata["diff"]
        assert hubspot_write_calls(hubspot, before) == 0 and not hubspot.objects("deals")
        assert warehouse.read_rows(sa.select(schema.hubspot_ledger)) == []
        assert instance.get_latest_materialization_event(SYNC) is None

        sync = pipeline.execute_in_process(instance=instance, tags=range_tags(*WINDOW), run_config=QUIET,
                                           asset_selection=[AssetKey(["hubspot", "portal_setup"]), SYNC])
        assert sync.success
        [materialization] = sync.asset_materializations_for_node("hubspot__mb__sync")
        synced = {k: v.value for k, v in materialization.metadata.items()}
        for name in ("contacts", "deals", "appointments"):
            assert synced[f"{name}_create"] == metadata[f"{name}_create"], name
        assert len(hubspot.objects("deals")) == metadata["deals_create"]
