"""The data-quality verdicts on a practice's deals (SPEC §5 r2), on both backends: uncounted revenue
with euros per reason, and stale appointments with count, oldest and keys. Never patient data."""

from __future__ import annotations

import datetime as dt

from biss_pipeline.domain.deals.quality import (
    stale_outcome,
    stale_summary,
    uncounted_outcome,
    uncounted_summary,
)
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.kpi.test_kpi_asset import appointment


def uncounted(practice: str, key: str, cents: int, reason: str, detail: str | None) -> dict:
    return {"entry_key": key, "practice_id": practice, "patient_key": f"{practice.upper()}_P1",
            "appointment_key": None, "entry_date": dt.date(2026, 3, 4), "amount_cents": cents,
            "reason": reason, "detail": detail}


def member(practice: str, key: str, stale: bool) -> dict:
    return {"deal_key": key, "practice_id": practice, "patient_key": "MB_P1", "appointment_key": key,
            "is_stale": stale}


def test_uncounted_revenue_warns_with_euros_per_reason(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    with warehouse.transaction() as connection:
        connection.execute(schema.uncounted_entries.insert(), [
            uncounted("mb", "MB_1", 48000, "appointment_not_completed", "booked"),  # set back
            uncounted("mb", "MB_2", 2550, "appointment_not_completed", "arrived"),  # left arrived
            uncounted("mb", "MB_3", 12000, "outside_deal_windows", "after_grace_window"),  # late lab bill
            uncounted("mb", "MB_4", 999, "not_billable", None),  # never revenue
            uncounted("rb", "RB_1", 100, "appointment_unknown", None),  # another practice
        ])
    outcome = uncounted_outcome(uncounted_summary(warehouse, "mb"))
    assert not outcome.passed and outcome.severity.value == "WARN"
    assert outcome.metadata["uncounted_eur"] == 625.50
    assert outcome.metadata["uncounted_entries"] == 3
    assert outcome.metadata["eur_appointment_not_completed"] == 505.50
    assert outcome.metadata["eur_outside_deal_windows"] == 120.00
    assert "eur_not_billable" not in outcome.metadata
    assert outcome.metadata["eur_by_reason_and_detail"] == {
        "appointment_not_completed/arrived": 25.50,
        "appointment_not_completed/booked": 480.00,
        "outside_deal_windows/after_grace_window": 120.00,
    }
    assert "625.50 EUR in 3 billable entries" in outcome.description
    assert "MB_P1" not in repr(outcome)  # no patient key
    assert uncounted_outcome(uncounted_summary(warehouse, "xx")).passed


def test_stale_appointments_lists_count_oldest_and_keys(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    with warehouse.transaction() as connection:
        connection.execute(schema.stg_appointments.insert(), [
            # an older version elsewhere must not make the oldest look older than it is
            appointment("mb", "MB_7", "MB_P1", "2026-02-01T09:00", "booked", "2026-01-20T08:00"),
            appointment("mb", "MB_7", "MB_P1", "2026-03-02T09:00", "arrived", "2026-03-02T08:00"),
            appointment("mb", "MB_34", "MB_P1", "2026-03-05T09:00", "booked", "2026-03-01T08:00"),
            appointment("mb", "MB_8", "MB_P1", "2026-03-06T09:00", "completed", "2026-03-06T10:00"),
        ])
        connection.execute(schema.deal_appointments.insert(), [
            member("mb", "MB_7", True), member("mb", "MB_34", True), member("mb", "MB_8", False)])
    summary = stale_summary(warehouse, "mb")
    assert summary == {
        "stale_appointments": 2,
        "oldest_start": "2026-03-02",
        "oldest_appointment_key": "MB_7",
        "by_status": {"arrived": 1, "booked": 1},
        "appointment_keys": ["MB_7", "MB_34"],
    }
    outcome = stale_outcome(summary, 3)
    assert not outcome.passed and outcome.metadata["stale_appointments"] == 2
    assert "2 appointments" in outcome.description and "MB_7" in outcome.description
    assert "MB_P1" not in repr(outcome)
    assert stale_outcome(stale_summary(warehouse, "rb")).passed
