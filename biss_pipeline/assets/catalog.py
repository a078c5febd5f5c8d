"""What the UI shows about every asset, applied once to the assembled definitions (issue 16, item 7):
owners, kinds and tags; the warehouse table an asset writes (`dagster/table_name`) with its columns
(`dagster/column_schema`) from the SQLAlchemy tables in `domain/warehouse/schema.py`; and a freshness
policy where a schedule sets an expectation (the nightly re-sync touches every asset of a practice's
pipeline, so each should have materialized since the night's run started by the policy's deadline).

The asset modules keep declaring what they compute; `describe_assets` adds the rest from the asset's
key, so a new asset gets owner, kinds and its table without touching this file when its name follows
the pattern (`<practice>/raw_*`, `stg_*`, a warehouse table's name, ...). Kinds and tags an asset sets
itself are kept.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from dagster import (
    AssetKey,
    AssetSpec,
    Definitions,
    FreshnessPolicy,
    PreviewWarning,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
)

from biss_pipeline.domain.warehouse import schema
from biss_pipeline.keys import KPI_GROUP, OWNERS, PRACTICE_TAG, PRACTICE_TIMEZONE, REFERENCE_ASSET_NAMES

LAYER_TAG = "layer"
PII_TAG = "pii"
TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"
# Layers whose assets every nightly pipeline run materializes (the freshness policy's scope).
SCHEDULED_LAYERS = frozenset({"raw", "staging", "deals", "hubspot", "kpi"})
# Tables that hold patient identity or contact data.
PERSONAL_TABLES = frozenset({"raw_patients", "stg_patients", "contact_rollups"})

REFERENCE_TABLES = {"practice": "practices", "chairs": "chairs", "appointment_types": "appointment_types"}
DEAL_TABLES = ("deals", "deal_appointments", "deal_revenue", "deal_entries")


@dataclass(frozen=True)
class AssetFacts:
    layer: str
    kinds: frozenset[str]
    tables: tuple[str, ...] = ()
    practice: str | None = None


def table_schema(table: sa.Table) -> TableSchema:
    """The table's columns as Dagster shows them (type as SQLAlchemy names it, key and nullability)."""
    return TableSchema(columns=[
        TableColumn(name=column.name, type=str(column.type), description=column.comment,
                    constraints=TableColumnConstraints(
                        nullable=bool(column.nullable) and not column.primary_key,
                        unique=bool(column.unique) or (column.primary_key and len(table.primary_key) == 1),
                        other=["primary key"] if column.primary_key else []))
        for column in table.columns])


def facts_for(key: AssetKey, practice_ids: Collection[str]) -> AssetFacts:
    """Layer, kinds, tables and practice of an asset, from its key."""
    path, name = key.path, key.path[-1]
    practice = next((part for part in path[:-1] if part in practice_ids), None)
    tables = (name,) if name in schema.metadata.tables else ()
    if path == ["mapping_config"]:
        return AssetFacts("config", frozenset({"googlesheets", "sql"}), ("mapping_last_good",))
    if path[0] == "hubspot":
        ledger = ("hubspot_ledger",) if practice else ()  # portal setup keeps no table
        return AssetFacts("hubspot", frozenset({"hubspot"}), ledger, practice)
    if KPI_GROUP in path[:-1] or name.startswith("kpi_"):
        table = name if name.startswith("kpi_") else f"kpi_{name}"
        if table in schema.metadata.tables:
            return AssetFacts("kpi", frozenset({"sql"}), (table,), practice)
        return AssetFacts("kpi", frozenset({"html", "python"}), (), practice)
    if name in REFERENCE_ASSET_NAMES and practice:
        return AssetFacts("reference", frozenset({"ivoris", "sql"}), (REFERENCE_TABLES[name],), practice)
    if name.startswith("raw_"):
        return AssetFacts("raw", frozenset({"ivoris", "sql"}), tables, practice)
    if name.startswith("stg_"):
        return AssetFacts("staging", frozenset({"sql"}), tables, practice)
    if name == "deals":
        return AssetFacts("deals", frozenset({"python", "sql"}), DEAL_TABLES, practice)
    if name == "contact_rollups":
        return AssetFacts("deals", frozenset({"python", "sql"}), tables, practice)
    if name == "historical_import":
        return AssetFacts("import", frozenset({"csv", "sql"}), (), practice)
    return AssetFacts("other", frozenset({"python", *(["sql"] if tables else [])}), tables, practice)


def nightly_freshness(deadline_cron: str, lower_bound: dt.timedelta) -> FreshnessPolicy:
    return FreshnessPolicy.cron(deadline_cron=deadline_cron, lower_bound_delta=lower_bound,
                                timezone=PRACTICE_TIMEZONE)


def describe_asset(spec: AssetSpec, practice_ids: Collection[str],
                   freshness: FreshnessPolicy | None) -> AssetSpec:
    facts = facts_for(spec.key, practice_ids)
    tags = {LAYER_TAG: facts.layer}
    if facts.practice:
        tags[PRACTICE_TAG] = facts.practice
    if PERSONAL_TABLES.intersection(facts.tables) or (facts.layer == "hubspot" and facts.practice):
        tags[PII_TAG] = "true"
    metadata: dict[str, object] = {}
    if facts.tables:
        main = schema.metadata.tables[facts.tables[0]]
        metadata[TABLE_NAME] = main.name
        metadata[COLUMN_SCHEMA] = table_schema(main)
        if len(facts.tables) > 1:
            metadata["warehouse_tables"] = ", ".join(facts.tables)
    described = spec.merge_attributes(
        owners=[owner for owner in OWNERS if owner not in spec.owners],
        kinds=set(facts.kinds) - set(spec.kinds),
        tags={k: v for k, v in tags.items() if k not in spec.tags},
        metadata={k: v for k, v in metadata.items() if k not in spec.metadata},
    )
    if freshness is not None and facts.layer in SCHEDULED_LAYERS and spec.freshness_policy is None:
        described = described.replace_attributes(freshness_policy=freshness)
    return described


def describe_assets(defs: Definitions, practice_ids: Collection[str],
                    freshness: FreshnessPolicy | None = None) -> Definitions:
    # Definitions.map_asset_specs is "preview" in 1.13; it is the documented way to set attributes of
    # every asset in one place, and the tests pin its result (tests/test_asset_catalog.py).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return defs.map_asset_specs(func=lambda spec: describe_asset(spec, practice_ids, freshness))
