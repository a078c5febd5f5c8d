"""The jobs people launch: per practice the extraction alone, the whole pipeline for a date window and
the reference-data refresh, and the reference-data refresh of every practice at once.

`refresh_reference_<practice>` needs only that practice's Ivoris key, so one practice's unset key or
unreachable server fails only its own refresh; `refresh_reference_data` does all practices in one run
(a first setup) and fails as a whole when any practice's key is unset (Dagster resolves every
resource's environment variables when the run starts)."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetKey, AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from biss_pipeline.domain.ivoris.entities import ENTITIES, RAW_SOURCES
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.keys import (
    KPI_ASSET_KEYS,
    MAPPING_ASSET_KEY,
    PORTAL_SETUP_KEY,
    PRACTICE_TAG,
    REFERENCE_ASSET_NAMES,
    REFERENCE_JOB,
    extraction_job_name,
    ivoris_group,
    pipeline_job_name,
    practice_asset_key,
    reference_job_name,
    sync_asset_key,
)


def raw_keys(practice: PracticeConfig) -> list[AssetKey]:
    return [practice_asset_key(practice, source.name) for source in RAW_SOURCES]


def build_practice_jobs(practice: PracticeConfig) -> list[UnresolvedAssetJobDefinition]:
    pid = practice.practice_id
    raw = raw_keys(practice)
    downstream = [*(practice_asset_key(practice, entity.staging_name) for entity in ENTITIES),
                  practice_asset_key(practice, "deals"), practice_asset_key(practice, "contact_rollups"),
                  PORTAL_SETUP_KEY, sync_asset_key(practice), *KPI_ASSET_KEYS]
    return [
        define_asset_job(extraction_job_name(practice), selection=AssetSelection.assets(*raw),
                         description=f"Extract {practice.name} from Ivoris for a date window.",
                         tags={PRACTICE_TAG: pid}),
        define_asset_job(pipeline_job_name(practice), selection=AssetSelection.assets(*raw, *downstream),
                         description=f"{practice.name}: Ivoris → warehouse → deals → HubSpot, and the "
                                     "KPIs, for a date window (a partition range; one run covers it).",
                         tags={PRACTICE_TAG: pid}),
        build_practice_reference_job(practice),
    ]


def reference_keys(practice: PracticeConfig) -> list[AssetKey]:
    return [practice_asset_key(practice, name) for name in REFERENCE_ASSET_NAMES]


def build_practice_reference_job(practice: PracticeConfig) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        reference_job_name(practice),
        selection=AssetSelection.assets(MAPPING_ASSET_KEY, *reference_keys(practice)),
        description=f"Mapping config, and {practice.name}'s practice record, chairs and appointment types.",
        tags={PRACTICE_TAG: practice.practice_id})


def build_reference_job(practices: Sequence[PracticeConfig]) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        REFERENCE_JOB,
        selection=AssetSelection.groups(*(ivoris_group(p) for p in practices))
        - AssetSelection.assets(*(key for p in practices for key in raw_keys(p)))
        | AssetSelection.assets(MAPPING_ASSET_KEY),
        description="Mapping config, and practices, chairs and appointment types of every active practice.",
    )
