"""The Dagster assets: a small Definitions of our own, materialized in process against the emulator."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from dagster import AssetKey, Definitions, materialize

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.assets.hubspot import build_hubspot_assets
from biss_pipeline.domain.hubspot import SyncMapping
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.keys import HUBSPOT_POOL, PORTAL_SETUP_KEY, sync_asset_key
from tests.sync.conftest import TOKEN, dagster_resources
from tests.sync.seed import Seed, ledger_rows, write_requests


@dataclass(frozen=True)
class Practice:
    practice_id: str
    name: str


PRACTICES = [Practice("mb", "Magdeburg"), Practice("rb", "Rümeysa")]
DEPS = {
    p.practice_id: [AssetKey([p.practice_id, "deals"]), AssetKey([p.practice_id, "contact_rollups"])]
    for p in PRACTICES
}


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)


def test_the_factory_builds_setup_and_one_sync_per_practice(sqlite_url: str, emu: HubSpotEmulator) -> None:
    assets = build_hubspot_assets(PRACTICES, DEPS, sync_mapping=SyncMapping())
    defs = Definitions(assets=assets, resources=dagster_resources(emu, sqlite_url))
    graph = defs.resolve_asset_graph()

    assert {PORTAL_SETUP_KEY, sync_asset_key("mb"), sync_asset_key("rb")} <= graph.get_all_asset_keys()
    assert graph.get(sync_asset_key("mb")).parent_keys == {PORTAL_SETUP_KEY, *DEPS["mb"]}
    assert {asset.node_def.pool for asset in assets} == {HUBSPOT_POOL}  # one writer at a time


def test_materialize_syncs_and_a_rerun_writes_nothing(
    sqlite_url: str, warehouse: Warehouse, emu: HubSpotEmulator
) -> None:
    seed = Seed(patients=8).write(warehouse)
    Seed(practice_id="rb", prefix="RB_", patients=3).write(warehouse)
    assets = build_hubspot_assets(PRACTICES, DEPS, sync_mapping=SyncMapping(revenue_buckets=("goz",)))

    result = materialize(assets, resources=dagster_resources(emu, sqlite_url))

    assert result.success
    metadata = {
        key: result.asset_materializations_for_node(node)[0].metadata
        for key, node in ((PORTAL_SETUP_KEY, "hubspot__portal_setup"), ("mb", "hubspot__mb__sync"))
    }
    setup = metadata[PORTAL_SETUP_KEY]
    assert setup["dry_run"].value is False and setup["created"].value > 0
    mb = metadata["mb"]
    assert mb["contacts_create"].value == seed.counts["contacts"]
    assert mb["deals_hubspot_new"].value == seed.counts["deals"]
    assert mb["assoc_deals_appointments_added"].value == seed.counts["deals-appointments"]
    assert mb["errors"].value == 0 and mb["dry_run"].value is False
    assert mb["write_calls"].value > 0
    assert len(emu.objects("contacts")) == seed.counts["contacts"] + 3
    assert {r["record_key"][:3] for r in ledger_rows(warehouse).values()} == {"MB_", "RB_"}

    log_mark = len(emu.request_log)
    again = materialize(assets, resources=dagster_resources(emu, sqlite_url))

    assert again.success
    assert write_requests(emu, log_mark) == []
    rerun = again.asset_materializations_for_node("hubspot__mb__sync")[0].metadata
    assert (rerun["write_calls"].value, rerun["contacts_unchanged"].value) == (0, seed.counts["contacts"])


def test_dry_run_materialization_writes_nothing(
    sqlite_url: str, warehouse: Warehouse, emu: HubSpotEmulator
) -> None:
    seed = Seed(patients=5).write(warehouse)
    assets = build_hubspot_assets(PRACTICES[:1], DEPS, sync_mapping=SyncMapping())

    result = materialize(assets, resources=dagster_resources(emu, sqlite_url, dry_run=True))

    assert result.success
    assert write_requests(emu) == []
    assert ledger_rows(warehouse) == {}
    metadata = result.asset_materializations_for_node("hubspot__mb__sync")[0].metadata
    assert metadata["dry_run"].value is True
    assert metadata["contacts_create"].value == seed.counts["contacts"]
    assert metadata["write_calls"].value == 0
    assert metadata["samples"].value["deals"][0]["action"] == "create"


def test_a_stopped_sync_fails_the_asset_with_its_counts(
    sqlite_url: str, warehouse: Warehouse, emu: HubSpotEmulator
) -> None:
    Seed(patients=3).write(warehouse)
    emu.token = "another-token"  # e.g. a revoked private app

    result = materialize(
        build_hubspot_assets(PRACTICES[:1], DEPS, sync_mapping=SyncMapping())[1:],  # the sync asset alone
        resources=dagster_resources(emu, sqlite_url),
        raise_on_error=False,
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "401" in failure.step_failure_data.error.message
    assert TOKEN not in str(failure.step_failure_data.error.to_string())
