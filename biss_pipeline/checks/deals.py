"""Asset checks on each practice's deals asset (`<practice_id>/deals`), SPEC §5 r2:

* `uncounted_revenue`: WARN with euros per reason while billable entries count for no deal;
* `stale_appointments`: WARN with count, oldest and appointment keys while appointments nobody
  updated in Ivoris are still pending after `stale_after_days`.

Both judge what the deals step just wrote; keys, counts and euros only, never patient data.
"""

# No `from __future__ import annotations`: Dagster reads the check function's resource annotations.

from collections.abc import Sequence

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, asset_check

from biss_pipeline.checks import check_result
from biss_pipeline.domain.deals.quality import (
    stale_outcome,
    stale_summary,
    uncounted_outcome,
    uncounted_summary,
)
from biss_pipeline.keys import practice_asset_key
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


def build_deal_quality_checks(practice_id: str) -> list[AssetChecksDefinition]:
    deals_key = practice_asset_key(practice_id, "deals")

    @asset_check(asset=deals_key, name="uncounted_revenue", blocking=False,
                 description="WARN while billable entries count for no deal (euros per reason).")
    def uncounted_revenue(context: AssetCheckExecutionContext,
                          warehouse: WarehouseResource) -> AssetCheckResult:
        outcome = uncounted_outcome(uncounted_summary(warehouse.get(), practice_id))
        context.log.info("%s: %s", practice_id, outcome.description)
        return check_result(outcome)

    @asset_check(asset=deals_key, name="stale_appointments", blocking=False,
                 description="WARN while appointments stay booked/confirmed/arrived after stale_after_days "
                             "(count, oldest, appointment keys).")
    def stale_appointments(context: AssetCheckExecutionContext, warehouse: WarehouseResource,
                           mapping: MappingResource) -> AssetCheckResult:
        outcome = stale_outcome(stale_summary(warehouse.get(), practice_id),
                                mapping.load().deal_settings.stale_after_days)
        context.log.info("%s: %s", practice_id, outcome.description)
        return check_result(outcome)

    return [uncounted_revenue, stale_appointments]


def build_deal_quality_checks_for(practice_ids: Sequence[str]) -> list[AssetChecksDefinition]:
    """Resource keys: `warehouse`, `mapping`."""
    return [check for practice_id in practice_ids for check in build_deal_quality_checks(practice_id)]
