"""Every asset says who owns it, what it is built with, and (where it is a warehouse table) which
table with which columns; the pipeline's assets carry the nightly run's freshness policy."""

from __future__ import annotations

import pytest
from dagster import AssetSpec, TableSchema
from dagster._core.definitions.freshness import CronFreshnessPolicy

from biss_pipeline.assets.catalog import COLUMN_SCHEMA, LAYER_TAG, TABLE_NAME
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.sensors.schedules import SyncWindows

# Assets that hold no warehouse table of their own: HubSpot's portal, the HTML report, the one-off
# CSV import (it writes the raw tables the raw assets describe).
NOT_TABLES = {"hubspot/portal_setup", "kpi/report", "historical_import", "report"}


@pytest.fixture(scope="module")
def specs() -> list[AssetSpec]:
    return list(build_definitions(PROJECT_ROOT / "config" / "mapping.yaml").resolve_all_asset_specs())


def is_table_asset(spec: AssetSpec) -> bool:
    return spec.key.to_user_string() not in NOT_TABLES and spec.key.path[-1] not in NOT_TABLES


def test_every_asset_has_owner_kinds_and_layer(specs: list[AssetSpec]) -> None:
    assert len(specs) > 40
    missing = [spec.key.to_user_string() for spec in specs
               if not spec.owners or not spec.kinds or LAYER_TAG not in spec.tags]
    assert not missing


def test_every_table_asset_has_its_tables_columns(specs: list[AssetSpec]) -> None:
    table_assets = [spec for spec in specs if is_table_asset(spec)]
    assert len(table_assets) > 30
    for spec in table_assets:
        name = spec.metadata.get(TABLE_NAME)
        column_schema = spec.metadata.get(COLUMN_SCHEMA)
        assert name in schema.metadata.tables, spec.key
        assert isinstance(column_schema, TableSchema), spec.key
        table = schema.metadata.tables[name]
        assert [c.name for c in column_schema.columns] == [c.name for c in table.columns], spec.key
        assert [c.type for c in column_schema.columns] == [str(c.type) for c in table.columns]
    by_key = {spec.key.to_user_string(): spec for spec in specs}
    assert by_key["mb/raw_appointments"].metadata[TABLE_NAME] == "raw_appointments"
    assert by_key["mb/practice"].metadata[TABLE_NAME] == "practices"
    assert by_key["mb/deals"].metadata["warehouse_tables"] == (
        "deals, deal_appointments, deal_revenue, deal_entries")


def test_pipeline_assets_carry_the_nightly_freshness_policy(specs: list[AssetSpec]) -> None:
    windows = SyncWindows()
    layers = {"raw", "staging", "deals", "hubspot", "kpi"}
    for spec in specs:
        policy = spec.freshness_policy
        if spec.tags[LAYER_TAG] in layers:
            assert isinstance(policy, CronFreshnessPolicy), spec.key
            assert policy.deadline_cron == windows.nightly_deadline_cron
            assert policy.timezone == "Europe/Berlin"
        else:
            assert policy is None, spec.key  # reference data, the mapping and the import run on demand
