"""The jobs people launch: per practice the extraction alone and the whole pipeline for a date window,
and the reference-data refresh of every practice."""

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
    REFERENCE_JOB,
    extraction_job_name,
    ivoris_group,
    pipeline_job_name,
    practice_asset_key,
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
    ]


def build_reference_job(practices: Sequence[PracticeConfig]) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        REFERENCE_JOB,
        selection=AssetSelection.groups(*(ivoris_group(p) for p in practices))
        - AssetSelection.assets(*(key for p in practices for key in raw_keys(p)))
        | AssetSelection.assets(MAPPING_ASSET_KEY),
        description="Mapping config, and practices, chairs and appointment types of every active practice.",
    )
