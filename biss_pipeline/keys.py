"""Names the Dagster wiring shares: asset keys, groups, pools, job names and run tags, plus the
calendar facts (time zone, booking look-ahead) the partitions and schedules are built from.

Every wiring module takes its names from here, so no asset, check, job or sensor module imports
another one to learn a key.
"""

from __future__ import annotations

import datetime as dt

from dagster import AssetExecutionContext, AssetKey, DailyPartitionsDefinition

from biss_pipeline.domain.calendar import BOOKING_LOOKAHEAD_DAYS, PRACTICE_TIMEZONE
from biss_pipeline.domain.mapping.practices import PracticeConfig

__all__ = ["BOOKING_LOOKAHEAD_DAYS", "PRACTICE_TIMEZONE"]

OWNERS = ["team:data-engineering"]

# -- assets ------------------------------------------------------------------------------------------
MAPPING_ASSET_KEY = AssetKey(["mapping_config"])
MAPPING_GROUP = "config"
MAPPING_VALID_CHECK = "practices_valid"
MAPPING_READABLE_CHECK = "sheet_readable"
HUBSPOT_GROUP = "hubspot"
PORTAL_SETUP_KEY = AssetKey(["hubspot", "portal_setup"])
REFERENCE_ASSET_NAMES = ("practice", "chairs", "appointment_types")  # `<practice>/<name>`, from Ivoris
KPI_GROUP = "kpi"
KPI_NAMES = ("appointments", "deals", "revenue", "report")


def practice_asset_key(practice: PracticeConfig | str, name: str) -> AssetKey:
    """A practice's own asset: raw, reference, staging, deal and import assets are `<practice>/<name>`."""
    pid = practice if isinstance(practice, str) else practice.practice_id
    return AssetKey([pid, name])


def sync_asset_key(practice: PracticeConfig | str) -> AssetKey:
    pid = practice if isinstance(practice, str) else practice.practice_id
    return AssetKey(["hubspot", pid, "sync"])


def kpi_asset_key(name: str) -> AssetKey:
    return AssetKey([KPI_GROUP, name])


KPI_ASSET_KEYS = tuple(kpi_asset_key(name) for name in KPI_NAMES)


def ivoris_group(practice: PracticeConfig) -> str:
    return f"ivoris_{practice.practice_id}"


def staging_group(practice: PracticeConfig) -> str:
    return f"staging_{practice.practice_id}"


def deals_group(practice: PracticeConfig) -> str:
    return f"deals_{practice.practice_id}"


# -- partitions: one calendar day of a practice, from its history start to the booking look-ahead ------


def practice_partitions(practice: PracticeConfig) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=practice.history_start.isoformat(),
                                     end_offset=BOOKING_LOOKAHEAD_DAYS, timezone=PRACTICE_TIMEZONE)


def partition_window(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The run's inclusive date window (one partition or a whole backfill range)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


# -- pools: one Ivoris step per on-premise server, one HubSpot writer per app --------------------------
HUBSPOT_POOL = "hubspot"


def ivoris_pool(practice: PracticeConfig) -> str:
    return f"ivoris_{practice.practice_id}"


# -- jobs --------------------------------------------------------------------------------------------
REFERENCE_JOB = "refresh_reference_data"
REMEDIATION_JOB = "remediate_duplicate_deals"


def extraction_job_name(practice: PracticeConfig) -> str:
    return f"extract_{practice.practice_id}"


def preview_job_name(practice: PracticeConfig | str) -> str:
    pid = practice if isinstance(practice, str) else practice.practice_id
    return f"preview_{pid}"


def reference_job_name(practice: PracticeConfig) -> str:
    return f"refresh_reference_{practice.practice_id}"


def pipeline_job_name(practice: PracticeConfig) -> str:
    return f"pipeline_{practice.practice_id}"


def rule_preview_job_name(practice: PracticeConfig) -> str:
    """The dry run of a deal-rule change (not the HubSpot sync's dry run)."""
    return f"rule_preview_{practice.practice_id}"


# -- run tags ----------------------------------------------------------------------------------------
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
DATA_VERSION_TAG = "dagster/data_version"
PRACTICE_TAG = "practice"
SYNC_KIND_TAG = "sync"
CATCH_UP_TAG = "biss/catch_up"
CATCH_UP_RUNS_TAG = "biss/catch_up_of_runs"
TRIGGER_TAG = "biss/trigger"
RELOAD_TAG = "biss/reload_definitions_for"


def window_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    """Tags that make a run cover the partition range first..last."""
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
