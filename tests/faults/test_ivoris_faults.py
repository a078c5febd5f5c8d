"""Ivoris misbehaving during a whole pipeline run (refresh_reference_data, then pipeline_mb for the
window): random 504s throughout and an outage in the middle of the backfill. Retries absorb both; the
warehouse and HubSpot end exactly as after a fault-free run, and a re-run changes nothing.

(One run carries both faults: every full pipeline run costs tens of seconds, and the suite must stay
within a few minutes.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.demo import hubspot_write_calls
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.faults.conftest import (
    PRACTICE,
    Reference,
    assert_matches_reference,
    fault_definitions,
    ivoris_requests,
    run_job,
    run_pipeline,
    table_rows,
    when,
)

pytestmark = pytest.mark.faults


def extraction_retries(url: str) -> int:
    """Retries the Ivoris client made, as the raw assets recorded them (`extraction_runs`)."""
    rows = WarehouseResource(url=url).get().read_rows(
        sa.select(schema.extraction_runs.c.retries).where(schema.extraction_runs.c.practice_id == PRACTICE))
    return sum(int(r["retries"]) for r in rows)


def test_random_504s_and_an_outage_mid_backfill_end_as_the_reference_and_a_rerun_changes_nothing(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 % of Ivoris' answers are 504s for the whole run, and once the backfill is half done (by the
    reference run's request count) the practice's server refuses connections for a few seconds. The
    client retries with backoff, the run completes and equals the fault-free one. The re-run of the
    same window after the outage rewrites identical rows and writes nothing to HubSpot."""
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    ivoris.faults.random_504_rate = 0.3
    ivoris.faults.seed = 504
    outage_s = 4.0
    started: list[float] = []

    def outage() -> None:
        started.append(time.monotonic())
        ivoris.set_outage(PRACTICE, mode="refuse", seconds=outage_s)

    defs = fault_definitions(mapping_file)
    with instance_for_test() as instance:
        watcher = when(lambda: ivoris_requests(ivoris) >= reference.ivoris_requests // 2, outage)
        run_pipeline(defs, instance)  # asserts that both runs succeeded
        watcher.join(timeout=1)
        stats = ivoris.stats()
        injected, requests = stats["faults"].get("random_504", 0), ivoris_requests(ivoris)
        # the 504s really happened, often (30 % of the draws; the order of concurrent requests varies)
        assert injected >= max(8, 0.1 * requests), stats["faults"]
        assert requests >= reference.ivoris_requests + injected  # every 504 was asked again
        assert started, "the outage never started"
        assert time.monotonic() - started[0] > outage_s  # the run outlived the outage
        retries = extraction_retries(sqlite_url)
        assert retries > 0
        assert table_rows(sqlite_url) == reference.tables  # raw, staging and deals as without faults
        assert_matches_reference(hubspot, sqlite_url, mapping_file, reference)

        ivoris.faults.random_504_rate = 0.0
        log_mark = len(hubspot.request_log)
        assert run_job(defs, f"pipeline_{PRACTICE}", instance).success  # the re-run after the outage

    assert hubspot_write_calls(hubspot, log_mark) == 0
    rows = table_rows(sqlite_url)
    assert rows == reference.tables  # the re-run replaced the partitions: nothing twice, nothing lost
    compared = assert_matches_reference(hubspot, sqlite_url, mapping_file, reference)
    print(f"\nivoris: {injected} of {requests} requests answered 504 (reference run: "
          f"{reference.ivoris_requests} requests), connections refused for {outage_s}s after "
          f"{reference.ivoris_requests // 2} requests, {retries} extraction retries recorded; re-run wrote "
          f"{sum(map(len, rows.values()))} rows again, 0 HubSpot writes; compared {compared}")
