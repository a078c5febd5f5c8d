"""The quarantine check on `<practice>/deals`, run through Dagster on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dagster import AssetCheckSeverity, AssetKey, Definitions

from biss_pipeline.checks.quarantine import build_quarantine_checks
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource


def _row(day: int, entity: str, stage: str, key: str, reason: str, practice: str = "mb") -> dict[str, Any]:
    return {
        "practice_id": practice,
        "partition_date": dt.date(2026, 3, day),
        "entity": entity,
        "stage": stage,
        "record_key": key,
        "reason": reason,
    }


ROWS = [
    _row(2, "appointments", "staging", "MB_A1", "unknown patient"),
    _row(3, "appointments", "staging", "MB_A2", "unknown patient"),
    _row(3, "appointments", "raw", "MB_A3", "missing patient"),
    _row(5, "patients", "staging", "MB_P7", "invalid email (dropped)"),
]


def _evaluate(warehouse_url: str) -> dict[str, Any]:
    defs = Definitions(
        asset_checks=build_quarantine_checks(["mb", "rb"]),
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process()
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {(e.asset_key, e.check_name) for e in evaluations} == {
        (AssetKey([p, "deals"]), "quarantine") for p in ("mb", "rb")
    }
    return {e.asset_key.path[0]: e for e in evaluations}


def test_quarantine_rows_warn_with_counts_and_an_empty_quarantine_passes(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    with warehouse.transaction() as connection:
        connection.execute(schema.quarantine.insert(), ROWS)

    evaluations = _evaluate(warehouse_url)

    mb = evaluations["mb"]
    assert not mb.passed and mb.severity == AssetCheckSeverity.WARN
    metadata = {k: v.value for k, v in mb.metadata.items()}
    assert metadata["quarantined_rows"] == 4
    assert metadata["by_entity"] == {"appointments": 3, "patients": 1}
    assert metadata["by_stage"] == {"raw": 1, "staging": 3}
    assert metadata["by_reason"] == {"invalid email (dropped)": 1, "missing patient": 1, "unknown patient": 2}
    assert {
        (g["entity"], g["stage"], g["reason"], g["rows"]) for g in metadata["by_entity_stage_reason"]
    } == {
        ("appointments", "raw", "missing patient", 1),
        ("appointments", "staging", "unknown patient", 2),
        ("patients", "staging", "invalid email (dropped)", 1),
    }
    assert (metadata["first_partition_date"], metadata["last_partition_date"]) == ("2026-03-02", "2026-03-05")
    assert "MB_A1" not in str(metadata)  # counts, not records
    assert evaluations["rb"].passed  # another practice's quarantine is not this one's

    with warehouse.transaction() as connection:
        connection.execute(schema.quarantine.delete())

    assert _evaluate(warehouse_url)["mb"].passed
