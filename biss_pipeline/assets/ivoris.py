"""Ivoris extraction assets per practice: the reference data (practice, chairs, appointment types)
and one daily-partitioned raw asset per source declared in `biss_pipeline.domain.ivoris.entities`.

Why one set of assets per practice (see docs/architecture.md for the measurements): Dagster splits a
single-run backfill of a date × practice multi-partitioned asset into one run per date, so a one-year
backfill becomes hundreds of runs. Daily partitions per practice with `BackfillPolicy.single_run()`
make the same backfill one run, and a practice's outage only fails that practice's runs.
"""

# No `from __future__ import annotations`: Dagster reads the resource parameters' annotations.

import datetime as dt
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    multi_asset,
)

from biss_pipeline.domain.ivoris.entities import ENTITIES, IvorisEntity, RawSource
from biss_pipeline.domain.ivoris.extraction import (
    ExtractionContext,
    ExtractionTotals,
    extract_window,
    record_extraction_run,
    reference_data_gap,
    write_reference_data,
)
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.keys import (
    OWNERS,
    ivoris_group,
    ivoris_pool,
    partition_window,
    practice_asset_key,
    practice_partitions,
)
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource

# Single-run backfills are the reason for this layout (see the module docstring), so the
# beta notice on `backfill_policy` is expected rather than news.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

# No jitter: Dagster prints the delay as it is ("requested a retry in 111.865... seconds"); whole
# delays (30 s, then 60 s) read well in the UI, and each practice has a server of its own, so
# simultaneous retries of different practices do not meet anyway.
IVORIS_RETRY_POLICY = RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL)
REFERENCE_NAMES = ("practice", "chairs", "appointment_types")


def _window_metadata(date_from: dt.date, date_to: dt.date, totals: ExtractionTotals,
                     stats: dict[str, Any]) -> dict[str, Any]:
    """The run's range totals: an observation of the asset, not any one day's row count."""
    return {
        "window": f"{date_from.isoformat()} .. {date_to.isoformat()}",
        "days": (date_to - date_from).days + 1,
        "window_rows": totals.rows,
        "chunks": totals.chunks,
        "quarantined": totals.quarantined,
        "quarantine_reasons": MetadataValue.json(dict(totals.quarantine_reasons)),
        **stats,
    }


def per_partition_metadata(context: AssetExecutionContext, date_from: dt.date, date_to: dt.date,
                           rows: Counter[dt.date], quarantined: Counter[dt.date],
                           asset_key: AssetKey | None = None) -> None:
    """Each day's materialization carries that day's counts (a ranged run otherwise stamps the
    window's total on every day, and per-day plots are wrong)."""
    day = date_from
    while day <= date_to:
        context.add_asset_metadata({"dagster/row_count": rows[day], "quarantined": quarantined[day]},
                                   asset_key=asset_key, partition_key=day.isoformat())
        day += dt.timedelta(days=1)


def _reference_asset(practice: PracticeConfig) -> Any:
    pid, group = practice.practice_id, ivoris_group(practice)
    descriptions = {"practice": "the practice record as Ivoris reports it.",
                    "chairs": f"dentist chairs (key prefix {practice.key_prefix}).",
                    "appointment_types": "appointment types (Terminarten)."}

    @multi_asset(
        name=f"{pid}_ivoris_reference",
        specs=[AssetSpec(practice_asset_key(practice, name), group_name=group,
                         description=f"{practice.name}: {descriptions[name]}") for name in REFERENCE_NAMES],
        required_resource_keys={practice.resource_key, "warehouse"},
        pool=ivoris_pool(practice),
        retry_policy=IVORIS_RETRY_POLICY,
    )
    def reference(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        ivoris: IvorisResource = getattr(context.resources, practice.resource_key)
        warehouse: WarehouseResource = context.resources.warehouse
        with ivoris.client() as client:
            counts = write_reference_data(warehouse.get(), pid, practice.name, practice.key_prefix, client)
        yield MaterializeResult(asset_key=practice_asset_key(practice, "practice"),
                                metadata={"dagster/row_count": 1, **client.stats.as_metadata()})
        yield MaterializeResult(asset_key=practice_asset_key(practice, "chairs"), metadata={
            "dagster/row_count": counts["chairs"], "skipped_without_id": counts["chairs_without_id"]})
        yield MaterializeResult(asset_key=practice_asset_key(practice, "appointment_types"), metadata={
            "dagster/row_count": counts["appointment_types"],
            "skipped_without_id": counts["types_without_id"]})

    return reference


# The source before whose extraction the practice's reference data is made current (staging checks
# the appointments against the types, so a pipeline run never stages against missing reference data).
REFERENCE_GUARD_SOURCE = "raw_appointments"


def _raw_asset(practice: PracticeConfig, entity: IvorisEntity, source: RawSource) -> Any:
    pid = practice.practice_id
    open_reader = entity.reader(source)
    guard = source.name == REFERENCE_GUARD_SOURCE
    resource_keys = {practice.resource_key, "warehouse", *(["mapping"] if guard else [])}

    @asset(
        key=practice_asset_key(practice, source.name),
        deps=[practice_asset_key(practice, name) for name in source.reads],
        description=f"{practice.name}: {source.description}",
        group_name=ivoris_group(practice),
        required_resource_keys=resource_keys,
        kinds={"sql"},
        owners=OWNERS,
        partitions_def=practice_partitions(practice),
        backfill_policy=BackfillPolicy.single_run(),
        pool=ivoris_pool(practice),
        retry_policy=IVORIS_RETRY_POLICY,
    )
    def raw(context: AssetExecutionContext) -> MaterializeResult:
        ivoris: IvorisResource = getattr(context.resources, practice.resource_key)
        warehouse_resource: WarehouseResource = context.resources.warehouse
        warehouse = warehouse_resource.get()
        date_from, date_to = partition_window(context)
        with ivoris.client() as client:
            if guard:
                _refresh_reference_if_needed(context, practice, warehouse, client)
            extraction = ExtractionContext(pid, practice.key_prefix, client, warehouse, date_from, date_to)
            totals = extract_window(extraction, source.table, source.quarantine_entity, open_reader,
                                    ivoris.chunk_days)
            record_extraction_run(warehouse, context.run.run_id, pid, context.asset_key.to_user_string(),
                                  date_from, date_to, totals.rows, client)
            anomalies = [a for a in client.anomalies if not a.resolved]
        per_partition_metadata(context, date_from, date_to, totals.rows_by_day, totals.quarantined_by_day)
        context.log_event(AssetObservation(
            asset_key=context.asset_key,
            metadata={**_window_metadata(date_from, date_to, totals, client.stats.as_metadata()),
                      "paging_anomalies": len(anomalies),
                      **{f"repair_{name}": value for plan in extraction.repair_plans
                         for name, value in (("candidates", plan.candidates), ("asked", len(plan.asked)),
                                             ("changed", plan.changed), ("flagged", plan.flagged),
                                             ("rotation", plan.rotation))}}))
        return MaterializeResult(metadata={"window": f"{date_from.isoformat()} .. {date_to.isoformat()}"})

    return raw


def _refresh_reference_if_needed(context: AssetExecutionContext, practice: PracticeConfig,
                                 warehouse: Any, client: Any) -> None:
    """The practice pipeline does not depend on someone having run `refresh_reference_data` first."""
    mapping: MappingResource = context.resources.mapping
    pid = practice.practice_id
    config = mapping.load()
    mapped = {str(t.type_id) for t in config.appointment_types if t.practice_id == pid}
    gap = reference_data_gap(warehouse, pid, practice.key_prefix, mapped)
    if gap is None:
        return
    counts = write_reference_data(warehouse, pid, practice.name, practice.key_prefix, client)
    context.log.info("%s: reference data refreshed before extraction (%s): %s", pid, gap, counts)


def build_practice_raw_assets(practice: PracticeConfig) -> list[Any]:
    """Reference and raw extraction assets for one practice."""
    return [_reference_asset(practice),
            *(_raw_asset(practice, entity, source) for entity in ENTITIES for source in entity.sources)]
