"""The code location: every asset, resource, job, schedule and sensor, assembled from config.

Practices come from the mapping config, so onboarding a practice is a config row plus a
definitions reload (`dagster dev` reloads on the "Reload" button), not a code change.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import AssetSelection, Definitions, EnvVar, define_asset_job

from biss_pipeline.assets.ivoris_raw import build_practice_raw_assets, practice_group, raw_asset_key
from biss_pipeline.config.practices import PracticeConfig, load_practices
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.warehouse import WarehouseResource
from biss_pipeline.settings import mapping_file

RAW_PARTITIONED = ("raw_appointments", "raw_patients", "raw_document_entries")


def warehouse_resource() -> WarehouseResource:
    if os.environ.get("BISS_WAREHOUSE_URL"):
        return WarehouseResource(url=EnvVar("BISS_WAREHOUSE_URL"))
    return WarehouseResource()


def ivoris_resource(practice: PracticeConfig) -> IvorisResource:
    return IvorisResource(practice_id=practice.practice_id, base_url=practice.ivoris_base_url,
                          api_key=EnvVar(practice.api_key_env))


def extraction_job_name(practice: PracticeConfig) -> str:
    return f"extract_{practice.practice_id}"


def build_definitions(mapping_path: Path | None = None) -> Definitions:
    practices = [p for p in load_practices(mapping_path or mapping_file()) if p.active]
    assets = [a for practice in practices for a in build_practice_raw_assets(practice)]
    jobs = [
        define_asset_job(
            extraction_job_name(practice),
            selection=AssetSelection.assets(*(raw_asset_key(practice, n) for n in RAW_PARTITIONED)),
            description=f"Extract {practice.name} from Ivoris for a date window.",
            tags={"practice": practice.practice_id},
        )
        for practice in practices
    ]
    jobs.append(define_asset_job(
        "refresh_reference_data",
        selection=AssetSelection.groups(*(practice_group(p) for p in practices))
        - AssetSelection.assets(*(raw_asset_key(p, n) for p in practices for n in RAW_PARTITIONED)),
        description="Practices, chairs and appointment types of every active practice.",
    ))
    resources = {
        "warehouse": warehouse_resource(),
        **{p.resource_key: ivoris_resource(p) for p in practices},
    }
    return Definitions(assets=assets, jobs=jobs, resources=resources)


defs = build_definitions()
