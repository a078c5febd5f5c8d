"""Staging assets per practice: raw partitions → typed, validated rows plus quarantine.

One multi-asset per practice, because appointments are checked against the patients staged
in the same window. Partitioned like the raw assets, single-run backfills, and idempotent:
a window's staging rows and its staging quarantine rows are replaced together.
"""

import datetime as dt
from collections import Counter
from typing import Any

import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from biss_pipeline.assets.ivoris_raw import partition_window, practice_partitions, raw_asset_key
from biss_pipeline.config.mapping import check_types_mapped
from biss_pipeline.config.practices import PracticeConfig
from biss_pipeline.resources.ivoris import iter_date_chunks
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import Warehouse, WarehouseResource
from biss_pipeline.staging import StagedRows, stage_appointments, stage_document_entries, stage_patients
from biss_pipeline.warehouse import schema

# Staging reads from the warehouse, not Ivoris, so it can take bigger steps than extraction.
STAGING_CHUNK_DAYS = 31
STAGING_TABLES = (("patient", "stg_patients"), ("appointment", "stg_appointments"),
                  ("document_entry", "stg_document_entries"))


def staging_asset_key(practice: PracticeConfig, name: str) -> AssetKey:
    return AssetKey([practice.practice_id, name])


def _raw(warehouse: Warehouse, table: sa.Table, practice_id: str, date_from: dt.date,
         date_to: dt.date) -> list[dict[str, Any]]:
    return warehouse.read_rows(sa.select(table).where(
        table.c.practice_id == practice_id,
        table.c.partition_date >= date_from, table.c.partition_date <= date_to))


def _write(warehouse: Warehouse, practice_id: str, date_from: dt.date, date_to: dt.date,
           staged: dict[str, tuple[sa.Table, StagedRows]]) -> None:
    quarantine = schema.quarantine
    with warehouse.transaction() as connection:
        for entity, (table, result) in staged.items():
            warehouse.replace_partitions(table, practice_id, date_from, date_to, result.rows, connection)
            # the same rejected key can arrive through both entry routes: one quarantine row
            unique = list({tuple(sorted(q.items())): q for q in result.quarantined}.values())
            warehouse.replace_partitions(
                quarantine, practice_id, date_from, date_to, unique, connection,
                extra_filter=sa.and_(quarantine.c.entity == entity, quarantine.c.stage == "staging"))


def build_practice_staging_assets(practice: PracticeConfig, extra_deps: list[AssetKey] | None = None,
                                  ) -> list[Any]:
    """Staging for one practice; `extra_deps` (the mapping asset) become upstream of every table.

    A type Ivoris uses but the mapping lacks fails the run with the tab and type named: that is a
    gap in the sheet to fix, not bad data to quarantine.
    """
    pid, prefix = practice.practice_id, practice.key_prefix
    group = f"staging_{pid}"
    specs = [
        AssetSpec(staging_asset_key(practice, "stg_patients"), group_name=group,
                  deps=[raw_asset_key(practice, "raw_patients"), *(extra_deps or [])],
                  description=f"{practice.name}: patients, typed and validated (newest version wins)."),
        AssetSpec(staging_asset_key(practice, "stg_appointments"), group_name=group,
                  deps=[raw_asset_key(practice, "raw_appointments"), *(extra_deps or [])],
                  description=f"{practice.name}: appointments, typed and validated."),
        AssetSpec(staging_asset_key(practice, "stg_document_entries"), group_name=group,
                  deps=[raw_asset_key(practice, "raw_document_entries"),
                        raw_asset_key(practice, "raw_repaired_document_entries"), *(extra_deps or [])],
                  description=f"{practice.name}: billing lines with exact amounts in cents."),
    ]

    keys = {entity: staging_asset_key(practice, name) for entity, name in STAGING_TABLES}

    # Subsettable although the three tables are usually staged together: Dagster 1.13 refuses a UI
    # backfill that selects all keys of a partitioned non-subsettable multi-asset (its check compares
    # the keys' equal partition subsets with `!=`, which is true for equal TimeWindowPartitionsSubsets;
    # tests/test_ui_backfill.py launches such a backfill). Each table only reads raw tables, so staging
    # a subset is as correct as staging all three.
    @multi_asset(
        name=f"{pid}_staging",
        specs=specs,
        partitions_def=practice_partitions(practice),
        backfill_policy=BackfillPolicy.single_run(),
        required_resource_keys={"warehouse", "mapping"},
        can_subset=True,
    )
    def staging(context: AssetExecutionContext):  # type: ignore[no-untyped-def]
        resource: WarehouseResource = context.resources.warehouse
        mapping_resource: MappingResource = context.resources.mapping
        warehouse, mapping = resource.get(), mapping_resource.load()
        selected = {entity for entity, key in keys.items() if key in context.selected_asset_keys}
        date_from, date_to = partition_window(context)
        known_types = {row["type_key"] for row in warehouse.read_rows(
            sa.select(schema.appointment_types.c.type_key).where(
                schema.appointment_types.c.practice_id == pid))}
        counts: dict[str, Counter[str]] = {e: Counter() for e in selected}
        for chunk_from, chunk_to in iter_date_chunks(date_from, date_to, STAGING_CHUNK_DAYS):
            staged: dict[str, tuple[sa.Table, StagedRows]] = {}
            if selected & {"patient", "appointment"}:
                raw_patients = _raw(warehouse, schema.raw_patients, pid, chunk_from, chunk_to)
            if "patient" in selected:
                staged["patient"] = (schema.stg_patients, stage_patients(raw_patients, as_of=date_to))
            if "appointment" in selected:
                raw_appointments = _raw(warehouse, schema.raw_appointments, pid, chunk_from, chunk_to)
                used_types = {f"{prefix}{row['type_id']}" for row in raw_appointments} & known_types
                check_types_mapped(mapping, used_types)
                staged["appointment"] = (schema.stg_appointments, stage_appointments(
                    raw_appointments, prefix, {row["patient_key"] for row in raw_patients}, known_types))
            if "document_entry" in selected:
                # both routes: what the date filter returned and what the repair re-fetched
                staged["document_entry"] = (schema.stg_document_entries, stage_document_entries(
                    _raw(warehouse, schema.raw_document_entries, pid, chunk_from, chunk_to)
                    + _raw(warehouse, schema.raw_repaired_document_entries, pid, chunk_from, chunk_to),
                    prefix))
            _write(warehouse, pid, chunk_from, chunk_to, staged)
            for entity, (_, result) in staged.items():
                counts[entity]["rows"] += len(result.rows)
                counts[entity].update(q["reason"] for q in result.quarantined)
        window = f"{date_from.isoformat()} .. {date_to.isoformat()}"
        for entity, _ in STAGING_TABLES:
            if entity not in selected:
                continue
            reasons = {k: v for k, v in counts[entity].items() if k != "rows"}
            yield MaterializeResult(asset_key=keys[entity], metadata={
                "dagster/row_count": counts[entity]["rows"],
                "window": window,
                "quarantined": sum(reasons.values()),
                "quarantine_reasons": MetadataValue.json(dict(sorted(reasons.items()))),
            })

    return [staging]
