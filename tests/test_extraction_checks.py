"""The rules behind the extraction checks (`domain/ivoris/anomalies.py`) and the guards that keep a
window from being staged against missing reference data, on a real (SQLite) warehouse."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from biss_pipeline.domain.ivoris.anomalies import quarantine_share_outcome, volume_outcome
from biss_pipeline.domain.ivoris.entities import ENTITIES, ReferenceDataMissingError
from biss_pipeline.domain.ivoris.extraction import reference_data_gap
from biss_pipeline.domain.mapping.config import parse_mapping
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.staging.window import stage_window
from biss_pipeline.domain.verdicts import Severity
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.test_staging import appointment

MONDAY, FRIDAY, SATURDAY, SUNDAY = (dt.date(2026, 3, 2), dt.date(2026, 3, 6), dt.date(2026, 3, 7),
                                    dt.date(2026, 3, 8))


def _quarantine(key: str, reason: str) -> dict:
    return {"practice_id": "mb", "partition_date": MONDAY, "entity": "appointment", "stage": "staging",
            "record_key": key, "reason": reason}


def test_a_mostly_quarantined_window_fails_at_error_naming_the_top_reason(sqlite_url: str) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    with warehouse.transaction() as connection:
        connection.execute(schema.quarantine.insert(), [
            _quarantine("MB_1", "unknown appointment type"), _quarantine("MB_2", "unknown appointment type"),
            _quarantine("MB_3", "unknown patient")])
    outcome = quarantine_share_outcome(warehouse, "mb", MONDAY, FRIDAY, Decimal("0.2"))
    assert not outcome.passed and outcome.severity is Severity.ERROR
    assert "3 of 3 appointments" in outcome.description
    assert "'unknown appointment type' (2)" in outcome.description
    assert quarantine_share_outcome(warehouse, "mb", SATURDAY, SUNDAY, Decimal("0.2")).passed


def test_no_appointment_in_a_window_with_working_days_warns_with_the_window(sqlite_url: str) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    outcome = volume_outcome(warehouse, "mb", MONDAY, FRIDAY)
    assert not outcome.passed and outcome.severity is Severity.WARN
    assert "2026-03-02 .. 2026-03-06" in outcome.description and "5 working days" in outcome.description
    assert volume_outcome(warehouse, "mb", SATURDAY, SUNDAY).passed  # a weekend may be empty


def test_appointments_are_never_staged_against_an_empty_types_table(sqlite_url: str) -> None:
    mapping = parse_mapping(load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml"))
    practice = mapping.practice("mb")
    warehouse = WarehouseResource(url=sqlite_url).get()
    with warehouse.transaction() as connection:
        connection.execute(schema.raw_appointments.insert(), [appointment(f"{practice.key_prefix}1")])
    mapped = {str(t.type_id) for t in mapping.appointment_types if t.practice_id == "mb"}
    assert reference_data_gap(warehouse, "mb", practice.key_prefix, mapped) == \
        "no appointment types in the warehouse"
    with pytest.raises(ReferenceDataMissingError, match="run refresh_reference_data"):
        stage_window(warehouse, mapping, practice, ENTITIES, dt.date(2026, 3, 3), dt.date(2026, 3, 3))
    with warehouse.transaction() as connection:
        connection.execute(schema.appointment_types.insert().values(
            type_key=f"{practice.key_prefix}4", practice_id="mb", ivoris_id="4"))
    gap = reference_data_gap(warehouse, "mb", practice.key_prefix, mapped)
    assert gap is not None and gap.startswith("the mapping has type ids the warehouse lacks")
