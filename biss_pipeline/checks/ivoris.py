"""Asset checks on a practice's raw entry assets: `date_route_complete` and
`document_entries_complete` (the comparison: `biss_pipeline.domain.ivoris.entry_routes`)."""

# No `from __future__ import annotations`: Dagster reads the check functions' annotations.

import datetime as dt

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, asset_check

from biss_pipeline.checks import check_result
from biss_pipeline.domain.ivoris.entry_routes import (
    GRACE_DAYS,
    WINDOW_DAYS,
    compare_routes,
    completed_without_entries,
    entry_outcome,
    recent_window,
)
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.keys import practice_asset_key
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource

NOTHING_EXTRACTED = AssetCheckResult(passed=True, metadata={"note": "no completed appointments extracted"})


def build_document_entry_checks(practice: PracticeConfig) -> list[AssetChecksDefinition]:
    resource_key = practice.resource_key
    pid = practice.practice_id

    @asset_check(
        asset=practice_asset_key(practice, "raw_document_entries"),
        name="date_route_complete",
        required_resource_keys={resource_key, "warehouse"},
        description="Per-patient route vs. date-filtered route for a stable sample of patients.",
    )
    def date_route_complete(context: AssetCheckExecutionContext) -> AssetCheckResult:
        ivoris: IvorisResource = getattr(context.resources, resource_key)
        warehouse: WarehouseResource = context.resources.warehouse
        store = warehouse.get()
        window = recent_window(store, pid, WINDOW_DAYS)
        if window is None:
            return NOTHING_EXTRACTED
        with ivoris.client() as client:
            comparison = compare_routes(client, store, practice, [schema.raw_document_entries], window)
        return check_result(entry_outcome(comparison))

    @asset_check(
        asset=practice_asset_key(practice, "raw_repaired_document_entries"),
        name="document_entries_complete",
        required_resource_keys={resource_key, "warehouse", "mapping"},
        description="After the repair: nothing the per-patient route knows is missing, and "
        f"no completed appointment older than {GRACE_DAYS} days is unbilled.",
    )
    def document_entries_complete(context: AssetCheckExecutionContext) -> AssetCheckResult:
        ivoris: IvorisResource = getattr(context.resources, resource_key)
        warehouse: WarehouseResource = context.resources.warehouse
        mapping: MappingResource = context.resources.mapping
        store = warehouse.get()
        window = recent_window(store, pid, WINDOW_DAYS)
        if window is None:
            return NOTHING_EXTRACTED
        with ivoris.client() as client:
            comparison = compare_routes(
                client, store, practice,
                [schema.raw_document_entries, schema.raw_repaired_document_entries], window)
        ignored = {key for key, role in mapping.load().deal_roles.items() if role == "ignore"}
        unbilled = completed_without_entries(
            store, practice, window[0], window[1] - dt.timedelta(days=GRACE_DAYS), ignored)
        return check_result(entry_outcome(comparison, unbilled))

    return [date_route_complete, document_entries_complete]
