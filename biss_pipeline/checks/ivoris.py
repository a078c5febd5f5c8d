"""Asset checks on a practice's Ivoris extraction: `date_route_complete` and
`document_entries_complete` on the entry assets (the comparison:
`biss_pipeline.domain.ivoris.entry_routes`); `ivoris_paging_consistent`, `appointment_volume` and the
blocking `quarantined_share` (the rules: `biss_pipeline.domain.ivoris.anomalies`)."""

# No `from __future__ import annotations`: Dagster reads the check functions' annotations.

import datetime as dt
from collections.abc import Mapping

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, asset_check

from biss_pipeline.checks import check_result
from biss_pipeline.domain.ivoris.anomalies import paging_outcome, quarantine_share_outcome, volume_outcome
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

RANGE_START, RANGE_END, PARTITION = ("dagster/asset_partition_range_start",
                                     "dagster/asset_partition_range_end", "dagster/partition")


def run_window(tags: Mapping[str, str]) -> tuple[dt.date, dt.date] | None:
    """The run's partition window from its tags (a check on a partitioned asset runs unpartitioned)."""
    try:
        if RANGE_START in tags and RANGE_END in tags:
            return dt.date.fromisoformat(tags[RANGE_START]), dt.date.fromisoformat(tags[RANGE_END])
        if PARTITION in tags:
            day = dt.date.fromisoformat(tags[PARTITION])
            return day, day
    except ValueError:
        return None
    return None


NO_WINDOW = AssetCheckResult(passed=True, metadata={"note": "the run has no partition window"})
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


def build_extraction_checks(practice: PracticeConfig) -> list[AssetChecksDefinition]:
    """Per practice: the run's paging anomalies, an empty window, and the quarantined share (blocking:
    deals and HubSpot wait while a window is mostly quarantined)."""
    pid = practice.practice_id

    @asset_check(
        asset=practice_asset_key(practice, "stg_appointments"), name="ivoris_paging_consistent",
        required_resource_keys={"warehouse"}, blocking=False,
        description="WARN when a paged Ivoris answer of this run did not add up even after re-reading "
        "and narrowing (SPEC §3 rev. 2); the records served were kept, the windows are listed.",
    )
    def ivoris_paging_consistent(context: AssetCheckExecutionContext) -> AssetCheckResult:
        warehouse: WarehouseResource = context.resources.warehouse
        return check_result(paging_outcome(warehouse.get(), pid, context.run.run_id))

    @asset_check(
        asset=practice_asset_key(practice, "raw_appointments"), name="appointment_volume",
        required_resource_keys={"warehouse"}, blocking=False,
        description="WARN when the run's window has working days but Ivoris returned no appointment.",
    )
    def appointment_volume(context: AssetCheckExecutionContext) -> AssetCheckResult:
        window = run_window(context.run.tags)
        if window is None:
            return NO_WINDOW
        warehouse: WarehouseResource = context.resources.warehouse
        return check_result(volume_outcome(warehouse.get(), pid, *window))

    @asset_check(
        asset=practice_asset_key(practice, "stg_appointments"), name="quarantined_share",
        required_resource_keys={"warehouse", "mapping"}, blocking=True,
        description="ERROR (blocking deals and HubSpot) when more than the mapping's "
        "max_quarantined_share of the window's appointments is quarantined; names the top reason.",
    )
    def quarantined_share(context: AssetCheckExecutionContext) -> AssetCheckResult:
        window = run_window(context.run.tags)
        if window is None:
            return NO_WINDOW
        warehouse: WarehouseResource = context.resources.warehouse
        mapping: MappingResource = context.resources.mapping
        share = mapping.load().settings.max_quarantined_share
        return check_result(quarantine_share_outcome(warehouse.get(), pid, *window, share))

    return [ivoris_paging_consistent, appointment_volume, quarantined_share]
