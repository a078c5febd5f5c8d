"""Deals and contact roll-ups per practice: one unpartitioned multi-asset each (a treatment journey
spans many days), refreshed by `biss_pipeline.domain.deals.refresh`."""

# No `from __future__ import annotations`: Dagster reads the resource parameters' annotations.

import datetime as dt
from collections.abc import Iterator, Sequence

from dagster import (
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    multi_asset,
)
from pydantic import Field

from biss_pipeline.domain.deals.refresh import deal_rules_for, refresh_deals
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.keys import deals_group, practice_asset_key
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


class DealsConfig(Config):
    full_rebuild: bool = Field(default=False, description="Recompute every patient's deals.")
    as_of: str | None = Field(default=None, description="As-of date (YYYY-MM-DD) for time-based rules; "
                              "default: the day of the newest Ivoris modification seen.")


def build_practice_deal_assets(practice: PracticeConfig, upstream: Sequence[AssetKey]) -> list:
    pid = practice.practice_id
    group = deals_group(practice)

    @multi_asset(
        name=f"{pid}_deals",
        specs=[
            AssetSpec(practice_asset_key(practice, "deals"), group_name=group, deps=list(upstream),
                      description=f"{practice.name}: treatment-journey deals with stage and revenue "
                                  "(tables deals, deal_appointments, deal_revenue, deal_entries)."),
            AssetSpec(practice_asset_key(practice, "contact_rollups"), group_name=group,
                      deps=[practice_asset_key(practice, "deals")],
                      description=f"{practice.name}: per patient open deals, last/next appointment, "
                                  "lifetime revenue."),
        ],
    )
    def deals_asset(context: OpExecutionContext, config: DealsConfig, warehouse: WarehouseResource,
                    mapping: MappingResource) -> Iterator[MaterializeResult]:
        as_of = dt.date.fromisoformat(config.as_of) if config.as_of else None
        rules = deal_rules_for(mapping.load(), practice)
        figures = refresh_deals(warehouse.get(), pid, rules, as_of, config.full_rebuild)
        context.log.info(f"{pid}: {figures['mode']}, {figures['patients_recomputed']} of "
                         f"{figures['patients_total']} patients recomputed, as of {figures['as_of']}")
        yield MaterializeResult(asset_key=practice_asset_key(practice, "deals"), metadata={
            "dagster/row_count": figures["deals"],
            "mode": figures["mode"],
            "as_of": figures["as_of"],
            "patients_recomputed": figures["patients_recomputed"],
            "deals_by_stage": MetadataValue.json(figures["deals_by_stage"]),
            "amount_eur": figures["amount_eur"],
        })
        yield MaterializeResult(asset_key=practice_asset_key(practice, "contact_rollups"),
                                metadata={"dagster/row_count": figures["contacts"]})

    return [deals_asset]
