"""The code location: every asset, resource, job, schedule and sensor, assembled from config.

Practices come from the mapping (the local file by default, the Google Sheet when
`BISS_MAPPING_SOURCE=gsheet`), so onboarding a practice is a row in the `practices` tab plus
a definitions reload ("Reload" in the UI), not a code change.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Definitions,
    EnvVar,
    define_asset_job,
    in_process_executor,
)

from biss_pipeline.assets.deals import DealRules, build_practice_deal_assets, deals_asset_key
from biss_pipeline.assets.hubspot import PORTAL_SETUP_KEY, build_hubspot_assets, sync_asset_key
from biss_pipeline.assets.ivoris_raw import build_practice_raw_assets, practice_group, raw_asset_key
from biss_pipeline.assets.kpi import build_kpi_assets, kpi_asset_key
from biss_pipeline.assets.mapping import MAPPING_ASSET_KEY, mapping_config
from biss_pipeline.assets.migration_import import build_migration_import_assets
from biss_pipeline.assets.staging import build_practice_staging_assets, staging_asset_key
from biss_pipeline.checks.document_entries import build_document_entry_checks
from biss_pipeline.checks.hubspot import build_hubspot_checks
from biss_pipeline.checks.quarantine import build_quarantine_checks
from biss_pipeline.config.mapping import MappingConfig
from biss_pipeline.config.practices import PracticeConfig
from biss_pipeline.jobs.remediation import build_remediation_job
from biss_pipeline.logic.deals import Stage
from biss_pipeline.logic.entry_rules import TREATMENT_CATEGORIES
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource
from biss_pipeline.sensors.alerts import run_failure_alert_sensor
from biss_pipeline.sensors.catch_up import build_catch_up_sensors
from biss_pipeline.sensors.config_change import build_config_change_sensor
from biss_pipeline.sensors.schedules import SyncWindows, build_practice_schedules
from biss_pipeline.sync.model import PipelineSpec, StageSpec, SyncMapping

RAW_PARTITIONED = ("raw_appointments", "raw_patients", "raw_document_entries",
                   "raw_repaired_document_entries")
STAGING = ("stg_patients", "stg_appointments", "stg_document_entries")
KPI_TABLES = ("appointments", "deals", "revenue", "report")
STAGE_OUTCOMES = {Stage.ABGESCHLOSSEN: "won", Stage.VERLOREN: "lost"}


def warehouse_resource() -> WarehouseResource:
    if os.environ.get("BISS_WAREHOUSE_URL"):
        return WarehouseResource(url=EnvVar("BISS_WAREHOUSE_URL"))
    return WarehouseResource()


def mapping_resource(mapping_path: Path | None = None) -> MappingResource:
    if os.environ.get("BISS_MAPPING_SOURCE", "local") == "gsheet":
        return MappingResource(source="gsheet", sheet_id=os.environ.get("BISS_GSHEET_ID"))
    return MappingResource(path=str(mapping_path) if mapping_path else None)


def hubspot_resource() -> HubSpotResource:
    """Token from HUBSPOT_ACCESS_TOKEN; BISS_HUBSPOT_HOST points the SDK elsewhere (the emulator)."""
    overrides = {"host": os.environ["BISS_HUBSPOT_HOST"]} if os.environ.get("BISS_HUBSPOT_HOST") else {}
    return HubSpotResource.from_env(tier=os.environ.get("BISS_HUBSPOT_TIER", "professional"), **overrides)


def sync_mapping_for(mapping: MappingConfig) -> SyncMapping:
    """What the HubSpot sync takes from the mapping: pipeline and stages, the contact-field
    allowlist (SPEC §7), revenue buckets and appointment labels."""
    stages = tuple(
        StageSpec(row.stage.value, row.stage_label, float(row.probability),
                  STAGE_OUTCOMES.get(row.stage, "open"), row.stage_id)
        for row in mapping.stages)
    return SyncMapping(
        pipeline=PipelineSpec(mapping.pipeline_label, stages, mapping.pipeline_id),
        allowed_contact_fields=mapping.settings.hubspot_contact_fields,
        revenue_buckets=sorted({rule.revenue_bucket for rule in mapping.entry_rules if rule.billable}),
        treatment_categories=TREATMENT_CATEGORIES,
        appointment_type_labels={t.type_key: t.hubspot_label for t in mapping.appointment_types
                                 if t.hubspot_label},
    )


def ivoris_resource(practice: PracticeConfig) -> IvorisResource:
    return IvorisResource(practice_id=practice.practice_id, base_url=practice.ivoris_base_url,
                          api_key=EnvVar(practice.api_key_env))


def extraction_job_name(practice: PracticeConfig) -> str:
    return f"extract_{practice.practice_id}"


def pipeline_job_name(practice: PracticeConfig) -> str:
    return f"pipeline_{practice.practice_id}"


def deal_rules_for(mapping: MappingConfig, practice: PracticeConfig) -> DealRules:
    """The part of the mapping a practice's deals depend on, and a hash of exactly that part,
    so onboarding another practice does not rebuild this one's deals."""
    roles = {key: role for key, role in mapping.deal_roles.items()
             if key.startswith(practice.key_prefix)}
    relevant = [mapping.tab_hashes.get("entry_rules", ""), str(mapping.settings.close_after_days),
                *sorted(f"{key}={role}" for key, role in roles.items())]
    return DealRules(deal_roles=roles, entry_rules=mapping.entry_rules, settings=mapping.deal_settings,
                     mapping_hash=hashlib.sha256("\n".join(relevant).encode()).hexdigest())


def _deal_rules(context: AssetExecutionContext, practice: PracticeConfig) -> DealRules:
    resource: MappingResource = context.resources.mapping
    return deal_rules_for(resource.load(), practice)


def _practice_assets(practice: PracticeConfig) -> list:
    staging_keys = [staging_asset_key(practice, name) for name in STAGING]
    return [
        *build_practice_raw_assets(practice),
        *build_practice_staging_assets(practice, extra_deps=[MAPPING_ASSET_KEY]),
        *build_practice_deal_assets(practice, _deal_rules, upstream=[*staging_keys, MAPPING_ASSET_KEY]),
    ]


def _practice_jobs(practice: PracticeConfig) -> list:
    pid = practice.practice_id
    raw = [raw_asset_key(practice, n) for n in RAW_PARTITIONED]
    downstream = [*(staging_asset_key(practice, n) for n in STAGING),
                  deals_asset_key(practice), deals_asset_key(practice, "contact_rollups"),
                  PORTAL_SETUP_KEY, sync_asset_key(pid), *(kpi_asset_key(n) for n in KPI_TABLES)]
    return [
        define_asset_job(extraction_job_name(practice), selection=AssetSelection.assets(*raw),
                         description=f"Extract {practice.name} from Ivoris for a date window.",
                         tags={"practice": pid}),
        define_asset_job(pipeline_job_name(practice), selection=AssetSelection.assets(*raw, *downstream),
                         description=f"{practice.name}: Ivoris → warehouse → deals → HubSpot, and the "
                                     "KPIs, for a date window (a partition range; one run covers it).",
                         tags={"practice": pid}),
    ]


def build_definitions(mapping_path: Path | None = None,
                      windows: SyncWindows | None = None) -> Definitions:
    mapping = mapping_resource(mapping_path)
    practices: Sequence[PracticeConfig] = mapping.load().active_practices
    windows = windows or SyncWindows()
    deal_keys = {p.practice_id: [deals_asset_key(p), deals_asset_key(p, "contact_rollups")]
                 for p in practices}
    practice_ids = [p.practice_id for p in practices]

    def sync_mapping() -> SyncMapping:
        return sync_mapping_for(mapping.load())  # read at run time: a sheet edit applies without reload

    assets = [
        mapping_config,
        *(a for practice in practices for a in _practice_assets(practice)),
        *build_hubspot_assets(practices, deal_keys, mapping=sync_mapping),
        *build_kpi_assets([key for keys in deal_keys.values() for key in keys]),
        *build_migration_import_assets(practices),
    ]
    jobs = [job for practice in practices for job in _practice_jobs(practice)]
    jobs.append(define_asset_job(
        "refresh_reference_data",
        selection=AssetSelection.groups(*(practice_group(p) for p in practices))
        - AssetSelection.assets(*(raw_asset_key(p, n) for p in practices for n in RAW_PARTITIONED))
        | AssetSelection.assets(MAPPING_ASSET_KEY),
        description="Mapping config, and practices, chairs and appointment types of every active practice.",
    ))
    schedules = [s for p in practices for s in build_practice_schedules(p, pipeline_job_name(p), windows)]
    resources = {
        "warehouse": warehouse_resource(),
        "mapping": mapping,
        "hubspot": hubspot_resource(),
        **{p.resource_key: ivoris_resource(p) for p in practices},
    }
    jobs.append(build_remediation_job(practice_ids, mapping=sync_mapping))
    checks = [
        *(check for p in practices for check in build_document_entry_checks(p)),
        *build_hubspot_checks(practice_ids, mapping=sync_mapping),
        *build_quarantine_checks(practice_ids),
    ]
    sensors = [
        *build_catch_up_sensors(practices, pipeline_job_name),
        build_config_change_sensor(practices, extra_keys=[kpi_asset_key(n) for n in KPI_TABLES]),
        run_failure_alert_sensor,
    ]
    # Steps run in the run's own process. The default multiprocess executor starts a process per step
    # that imports Dagster and this package again (about 4 s each here; a run has 10-15 steps), while
    # the pools (one Ivoris and one HubSpot step at a time) and the chain raw → staging → deals → sync
    # leave almost nothing to run side by side. bench/full_history.py measured a 3-day backfill of
    # three practices at 374 s with per-step processes.
    return Definitions(assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules, sensors=sensors,
                       resources=resources, executor=in_process_executor)


defs = build_definitions()
