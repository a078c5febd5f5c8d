"""Ivoris → warehouse → deals → HubSpot through Dagster, both emulators over HTTP.

Ivoris' clock moves forward (appointments complete, get cancelled, new ones are booked) and
then back (every status returns to what it was): HubSpot's deal stages follow both ways, a
run with nothing new writes nothing, and no deal exists twice.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.demo import hubspot_write_calls
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_ivoris_raw import range_tags

WINDOW = (dt.date(2026, 6, 17), dt.date(2026, 7, 14))
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def hubspot_stages(hubspot: HubSpotEmulator) -> dict[str, str]:
    keys = Counter(d["properties"].get("ivoris_deal_key") for d in hubspot.objects("deals"))
    assert not [k for k, n in keys.items() if n > 1], "a deal exists twice in HubSpot"
    return {d["properties"]["ivoris_deal_key"]: d["properties"]["dealstage"] for d in hubspot.objects("deals")
            if d["properties"].get("ivoris_deal_key", "").startswith("MB_")}


def test_deal_stages_follow_ivoris_forward_and_back(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    defs = build_definitions(mapping_file)
    pipeline = defs.resolve_job_def("pipeline_mb")
    start_clock = ivoris.clock
    with instance_for_test() as instance:
        def run() -> int:
            before = len(hubspot.request_log)
            result = pipeline.execute_in_process(instance=instance, tags=range_tags(*WINDOW),
                                                 run_config=QUIET)
            assert result.success
            return hubspot_write_calls(hubspot, before)

        assert defs.resolve_job_def("refresh_reference_data").execute_in_process(
            instance=instance, run_config=QUIET).success
        first_writes = run()
        before = hubspot_stages(hubspot)
        assert run() == 0  # nothing changed in Ivoris: nothing is written

        ivoris.advance_clock(dt.timedelta(days=4))
        run()
        forward = hubspot_stages(hubspot)

        ivoris.set_clock(start_clock)
        run()
        back = hubspot_stages(hubspot)

    warehouse = WarehouseResource(url=sqlite_url).get()
    assert first_writes > 0 and len(before) == warehouse.count_rows(schema.deals, "mb") > 10
    moved = {key for key in before if forward.get(key) != before[key]}
    assert moved, "four days of Ivoris activity should move some deal"
    assert {key: back[key] for key in before} == before
    # HubSpot agrees with the warehouse after every run: the last one here
    ledger = {r["record_key"]: r["hubspot_id"] for r in warehouse.read_rows(
        sa.select(schema.hubspot_ledger).where(schema.hubspot_ledger.c.object_type == "deals"))}
    assert set(before) <= set(ledger)
