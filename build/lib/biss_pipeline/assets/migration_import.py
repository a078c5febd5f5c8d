"""One-off historical import per practice: CSV exports → raw, staging and quarantine tables.

The asset `<practice_id>/historical_import` (group `migration_<practice_id>`) runs
`biss_pipeline.domain.migration.csv_import.run_import` for the files named in its run config; see
docs/migration-import.md. It is unpartitioned (an import is one window before the practice's
`history_start`, chosen by the files or the config), and nothing depends on it: the deals asset
reads every staging row of the practice, so its next run picks the history up.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from biss_pipeline.domain.mapping.config import check_types_mapped
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.migration.csv_import import ImportFiles, ImportResult, run_import
from biss_pipeline.domain.staging.window import known_type_keys
from biss_pipeline.keys import OWNERS, practice_asset_key
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


class HistoricalImportConfig(Config):
    """Paths are read by the process that runs the step (the run worker), not the UI's machine."""

    appointments_csv: str = Field(description="Appointments export: CSV with the Ivoris contract columns "
                                  "id, patientId, chairId, typeId, start, end, status, modifiedAt.")
    patients_csv: str = Field(description="Patients export: id, firstName, lastName, birthDate, email, "
                              "phone, insurance, modifiedAt.")
    document_entries_csv: str | None = Field(
        default=None, description="Optional billing-line export: id, patientId, appointmentId, date, type, "
        "code, description, amount, modifiedAt. Without it the entry tables are left as they are.")
    date_from: str | None = Field(default=None, description="First day to import (YYYY-MM-DD); default: "
                                  "the earliest day in the files.")
    date_to: str | None = Field(default=None, description="Last day to import (YYYY-MM-DD); default and "
                                "latest allowed: the day before the practice's history_start.")


def _day(name: str, value: str | None) -> dt.date | None:
    if value is None or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"run config {name}: {value!r} is not a date (YYYY-MM-DD)") from None


def import_metadata(result: ImportResult) -> dict[str, Any]:
    """Counts and reasons only (quarantine reasons never carry record content)."""
    return {
        "window": result.window,
        "dagster/row_count": sum(result.rows.values()),
        "rows_by_table": MetadataValue.json(dict(sorted(result.rows.items()))),
        "lines_read": MetadataValue.json(dict(sorted(result.lines.items()))),
        "quarantined": result.quarantined_total,
        "quarantine_reasons": MetadataValue.json(
            {group: dict(sorted(reasons.items())) for group, reasons in sorted(result.quarantined.items())}),
        "duplicates_dropped": MetadataValue.json(dict(sorted(result.duplicates_dropped.items()))),
        "outside_window_not_imported": MetadataValue.json(dict(sorted(result.outside_window.items()))),
        "transactions": result.transactions,
    }


def _build(practice: PracticeConfig) -> AssetsDefinition:
    pid = practice.practice_id

    @asset(
        key=practice_asset_key(practice, "historical_import"),
        group_name=f"migration_{pid}",
        # it reads the practice's Ivoris appointment types to validate appointments
        deps=[practice_asset_key(practice, "appointment_types")],
        kinds={"csv", "sql"},
        owners=OWNERS,
        description=f"{practice.name}: one-off import of historical CSV exports (before history_start "
                    f"{practice.history_start.isoformat()}) through the same validation and quarantine as "
                    "the API path. See docs/migration-import.md.",
    )
    def historical_import(context: AssetExecutionContext, config: HistoricalImportConfig,
                          warehouse: WarehouseResource, mapping: MappingResource) -> MaterializeResult:
        store, mapping_config = warehouse.get(), mapping.load()
        known_types = set(known_type_keys(store, pid))
        files = ImportFiles(
            appointments=Path(config.appointments_csv), patients=Path(config.patients_csv),
            document_entries=Path(config.document_entries_csv) if config.document_entries_csv else None)
        result = run_import(
            store, pid, practice.key_prefix, practice.history_start, files, known_types,
            check_types=lambda used: check_types_mapped(mapping_config, used),
            date_from=_day("date_from", config.date_from), date_to=_day("date_to", config.date_to))
        context.log.info(f"{pid}: imported {result.window}: {sum(result.rows.values())} rows written, "
                         f"{result.quarantined_total} quarantined, in {result.transactions} transactions")
        return MaterializeResult(metadata=import_metadata(result))

    return historical_import


def build_migration_import_assets(practices: Sequence[PracticeConfig]) -> list[AssetsDefinition]:
    """One `<practice_id>/historical_import` asset per practice."""
    return [_build(practice) for practice in practices]
