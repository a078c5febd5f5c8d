"""Staging assets per practice: raw partitions → typed, validated rows plus quarantine, one table per
entity declared in `biss_pipeline.domain.ivoris.entities` (the work: `domain.staging.window`).

One multi-asset per practice, because appointments are checked against the patients staged in the
same window. Partitioned like the raw assets, single-run backfills, and idempotent.
"""

# No `from __future__ import annotations`: Dagster reads the resource parameters' annotations.

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from biss_pipeline.domain.ivoris.entities import ENTITIES
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.staging.window import stage_window
from biss_pipeline.keys import partition_window, practice_asset_key, practice_partitions, staging_group
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


def build_practice_staging_assets(practice: PracticeConfig, extra_deps: Sequence[AssetKey] = (),
                                  ) -> list:
    """Staging for one practice; `extra_deps` (the mapping asset) become upstream of every table."""
    group = staging_group(practice)
    keys = {entity: practice_asset_key(practice, entity.staging_name) for entity in ENTITIES}
    specs = [
        AssetSpec(key, group_name=group, description=f"{practice.name}: {entity.staging_description}",
                  deps=[*(practice_asset_key(practice, name) for name in entity.raw_names),
                        *(practice_asset_key(practice, name) for name in entity.reference_names),
                        *extra_deps])
        for entity, key in keys.items()
    ]

    # Subsettable although the tables are usually staged together: Dagster 1.13 refuses a UI backfill
    # that selects all keys of a partitioned non-subsettable multi-asset (its check compares the keys'
    # equal partition subsets with `!=`, which is true for equal TimeWindowPartitionsSubsets;
    # tests/test_ui_backfill.py launches such a backfill). Each table only reads raw tables, so staging
    # a subset is as correct as staging all of them.
    @multi_asset(
        name=f"{practice.practice_id}_staging",
        specs=specs,
        partitions_def=practice_partitions(practice),
        backfill_policy=BackfillPolicy.single_run(),
        can_subset=True,
    )
    def staging(context: AssetExecutionContext, warehouse: WarehouseResource,
                mapping: MappingResource) -> Iterator[MaterializeResult]:
        selected = [entity for entity, key in keys.items() if key in context.selected_asset_keys]
        date_from, date_to = partition_window(context)
        by_day: dict = {}
        counts = stage_window(warehouse.get(), mapping.load(), practice, selected, date_from, date_to,
                              by_day=by_day)
        window = f"{date_from.isoformat()} .. {date_to.isoformat()}"
        for entity, count in counts.items():
            reasons = {k: v for k, v in count.items() if k != "rows"}
            # each day's materialization carries that day's rows; the window's totals are an observation
            day = date_from
            while day <= date_to:
                context.add_asset_metadata({"dagster/row_count": by_day.get(entity, Counter())[day]},
                                           asset_key=keys[entity], partition_key=day.isoformat())
                day += dt.timedelta(days=1)
            context.log_event(AssetObservation(asset_key=keys[entity], metadata={
                "window": window, "window_rows": count["rows"], "quarantined": sum(reasons.values()),
                "quarantine_reasons": MetadataValue.json(dict(sorted(reasons.items())))}))
            yield MaterializeResult(asset_key=keys[entity], metadata={"window": window})

    return [staging]
