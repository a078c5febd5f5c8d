"""The code location `biss_pipeline`: every asset, check, job, schedule, sensor and resource,
assembled from the mapping's active practices.

Practices come from the mapping (the local file by default, the Google Sheet when
`BISS_MAPPING_SOURCE=gsheet`), so onboarding a practice is a row in the `practices` tab plus a
definitions reload ("Reload" in the UI), not a code change.
"""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions, in_process_executor

from biss_pipeline.assets.catalog import describe_assets, nightly_freshness
from biss_pipeline.assets.deals import build_practice_deal_assets
from biss_pipeline.assets.hubspot import build_hubspot_assets
from biss_pipeline.assets.ivoris import build_practice_raw_assets
from biss_pipeline.assets.kpi import build_kpi_assets
from biss_pipeline.assets.mapping import mapping_config
from biss_pipeline.assets.migration_import import build_migration_import_assets
from biss_pipeline.assets.staging import build_practice_staging_assets
from biss_pipeline.checks.deals import build_deal_quality_checks_for
from biss_pipeline.checks.hubspot import build_hubspot_checks
from biss_pipeline.checks.ivoris import build_document_entry_checks, build_extraction_checks
from biss_pipeline.checks.quarantine import build_quarantine_checks
from biss_pipeline.domain.ivoris.entities import ENTITIES
from biss_pipeline.jobs.pipelines import build_practice_jobs, build_reference_job
from biss_pipeline.jobs.preview import build_preview_job
from biss_pipeline.jobs.remediation import build_remediation_job
from biss_pipeline.jobs.rule_preview import build_rule_preview_job
from biss_pipeline.keys import KPI_ASSET_KEYS, MAPPING_ASSET_KEY, pipeline_job_name, practice_asset_key
from biss_pipeline.resources import mapping_resource, resources_for
from biss_pipeline.sensors.alerts import run_failure_alert_sensor
from biss_pipeline.sensors.catch_up import build_catch_up_sensors
from biss_pipeline.sensors.config_change import build_config_change_sensor
from biss_pipeline.sensors.schedules import SyncWindows, build_practice_schedules


def build_definitions(mapping_path: Path | None = None, windows: SyncWindows | None = None) -> Definitions:
    mapping = mapping_resource(mapping_path)
    practices = mapping.load().active_practices
    windows = windows or SyncWindows()
    practice_ids = [p.practice_id for p in practices]
    deal_keys = {p.practice_id: [practice_asset_key(p, "deals"), practice_asset_key(p, "contact_rollups")]
                 for p in practices}
    practice_assets = [
        asset
        for p in practices
        for asset in (
            *build_practice_raw_assets(p),
            *build_practice_staging_assets(p, extra_deps=[MAPPING_ASSET_KEY]),
            *build_practice_deal_assets(p, upstream=[
                *(practice_asset_key(p, entity.staging_name) for entity in ENTITIES), MAPPING_ASSET_KEY]),
        )
    ]
    definitions = Definitions(
        assets=[
            mapping_config,
            *practice_assets,
            *build_hubspot_assets(practices, deal_keys),
            *build_kpi_assets([key for keys in deal_keys.values() for key in keys]),
            *build_migration_import_assets(practices),
        ],
        asset_checks=[
            *(check for p in practices for check in build_document_entry_checks(p)),
            *(check for p in practices for check in build_extraction_checks(p)),
            *build_hubspot_checks(practice_ids),
            *build_quarantine_checks(practice_ids),
            *build_deal_quality_checks_for(practice_ids),
        ],
        jobs=[
            *(job for p in practices for job in build_practice_jobs(p)),
            *(build_rule_preview_job(p) for p in practices),
            build_reference_job(practices),
            build_remediation_job(practice_ids),
            *(build_preview_job(pid) for pid in practice_ids),
        ],
        schedules=[s for p in practices for s in build_practice_schedules(p, pipeline_job_name(p), windows)],
        sensors=[
            *build_catch_up_sensors(practices, pipeline_job_name),
            build_config_change_sensor(practices, extra_keys=KPI_ASSET_KEYS),
            run_failure_alert_sensor,
        ],
        resources=resources_for(practices, mapping),
        # Steps run in the run's own process. The default multiprocess executor starts a process per
        # step that imports Dagster and this package again (about 4 s each here; a run has 10-15
        # steps), while the pools (one Ivoris and one HubSpot step at a time) and the chain raw →
        # staging → deals → sync leave almost nothing to run side by side. bench/full_history.py
        # measured a 3-day backfill of three practices at 374 s with per-step processes.
        executor=in_process_executor,
    )
    # Owners, kinds, tags, table names and column schemas, and the nightly run's freshness, in one place.
    return describe_assets(definitions, practice_ids,
                           nightly_freshness(windows.nightly_deadline_cron, windows.nightly_lower_bound))


defs = build_definitions()
