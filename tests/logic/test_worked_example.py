"""SPEC §5 rev. 2, the worked example: prefix `MB_`, one patient, default settings, one test per step.

The example gives no as-of date for most steps; each test picks one at which the step's statement holds
and says why where it matters (a booking becomes stale `stale_after_days` = 3 days after its date).
"""

from __future__ import annotations

from biss_pipeline.domain.deals import DealSettings, stale_appointments
from tests.logic.factories import A, E, appointments_frame, compute, day, deal, members

A2_ENTRY = E("MB_9001", 48000, appointment="MB_A2", on="03-10", entry_type="goz", code="2060")
STEP_3 = [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")]


def fields(computation: object, deal_key: str, *names: str) -> dict[str, object]:
    row = deal(computation, deal_key)  # type: ignore[arg-type]
    return {name: row[name] for name in names}


def test_step_1_a_booked_lead_opens_deal_mb_a1_in_termin_gebucht() -> None:
    computation = compute([A("MB_A1", "lead", "03-01", "booked")], as_of="02-20")
    assert fields(computation, "MB_A1", "stage", "stage_label", "is_open", "opened_by_appointment_key") == {
        "stage": "termin_gebucht",
        "stage_label": "Termin gebucht",
        "is_open": True,
        "opened_by_appointment_key": "MB_A1",
    }
    assert members(computation) == {"MB_A1": ["MB_A1"]}


def test_step_2_a1_completed_gives_erstberatung() -> None:
    computation = compute([A("MB_A1", "lead", "03-01", "completed")], as_of="03-01")
    assert fields(computation, "MB_A1", "stage", "is_open") == {"stage": "erstberatung", "is_open": True}


def test_step_3_a_billed_treatment_gives_in_behandlung_with_start_and_amount() -> None:
    computation = compute(STEP_3, [A2_ENTRY], as_of="03-10")
    assert fields(computation, "MB_A1", "stage", "behandlungsstart", "amount_cents") == {
        "stage": "in_behandlung",
        "behandlungsstart": day("03-10"),
        "amount_cents": 48000,
    }
    assert members(computation) == {"MB_A1": ["MB_A1", "MB_A2"]}


def test_step_4_a2_set_back_to_booked_moves_everything_back_and_reports_the_entry() -> None:
    set_back = [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "booked")]
    computation = compute(set_back, [A2_ENTRY], as_of="03-12")
    assert fields(computation, "MB_A1", "stage", "behandlungsstart", "amount_cents") == {
        "stage": "erstberatung",
        "behandlungsstart": None,
        "amount_cents": 0,
    }
    uncounted = computation.uncounted_entries
    assert uncounted[["entry_key", "amount_cents", "reason"]].to_dict("records") == [
        {"entry_key": "MB_9001", "amount_cents": 48000, "reason": "appointment_not_completed"}
    ]
    assert computation.deal_entries.empty


def test_step_5_a1_cancelled_nothing_booked_is_verloren_cancelled() -> None:
    computation = compute([A("MB_A1", "lead", "03-01", "cancelled")], as_of="03-01")
    assert fields(computation, "MB_A1", "stage", "stage_label", "is_open", "lost_reason", "closed_date") == {
        "stage": "verloren",
        "stage_label": "Verloren",
        "is_open": False,
        "lost_reason": "cancelled",
        "closed_date": day("03-01"),
    }


def test_step_5_a3_booked_within_30_days_reopens_mb_a1_at_termin_gebucht() -> None:
    # As of the day A3 is booked (A3 itself lies ahead).
    history = [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A3", "lead", "03-20", "booked")]
    computation = compute(history, as_of="03-05")
    assert fields(
        computation, "MB_A1", "stage", "is_open", "lost_reason", "closed_date", "reopened_count"
    ) == {
        "stage": "termin_gebucht",
        "is_open": True,
        "lost_reason": None,
        "closed_date": None,
        "reopened_count": 1,
    }
    assert members(computation) == {"MB_A1": ["MB_A1", "MB_A3"]}


def test_step_5_a3_booked_beyond_30_days_leaves_mb_a1_lost_and_opens_mb_a3() -> None:
    history = [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A3", "lead", "05-15", "booked")]
    computation = compute(history, as_of="03-05")
    assert fields(computation, "MB_A1", "stage", "lost_reason", "reopened_count") == {
        "stage": "verloren",
        "lost_reason": "cancelled",
        "reopened_count": 0,
    }
    assert fields(computation, "MB_A3", "stage", "is_open") == {"stage": "termin_gebucht", "is_open": True}
    assert members(computation) == {"MB_A1": ["MB_A1"], "MB_A3": ["MB_A3"]}


def test_step_6_a1_completed_and_nothing_for_120_days_is_verloren_inactive() -> None:
    history = [A("MB_A1", "lead", "03-01", "completed")]
    assert deal(compute(history, as_of="06-28"), "MB_A1")["stage"] == "erstberatung"  # 119 days
    computation = compute(history, as_of="06-29")  # 03-01 + 120 days
    assert fields(computation, "MB_A1", "stage", "is_open", "lost_reason", "closed_date") == {
        "stage": "verloren",
        "is_open": False,
        "lost_reason": "inactive",
        "closed_date": day("06-29"),
    }


STEP_7 = [*STEP_3, A("MB_A4", "followup", "03-17", "booked")]


def test_step_7_a4_left_booked_is_stale_as_of_03_21() -> None:
    computation = compute(STEP_7, [A2_ENTRY], as_of="03-21")
    flags = computation.deal_appointments.set_index("appointment_key")["is_stale"].to_dict()
    assert flags == {"MB_A1": False, "MB_A2": False, "MB_A4": True}
    # A member still, but not the driving appointment, and the deal is still in treatment.
    assert members(computation) == {"MB_A1": ["MB_A1", "MB_A2", "MB_A4"]}
    assert fields(computation, "MB_A1", "stage", "driving_appointment_key") == {
        "stage": "in_behandlung",
        "driving_appointment_key": "MB_A2",
    }
    listed = stale_appointments(appointments_frame(STEP_7), DealSettings(), day("03-21"))
    assert listed[["appointment_key", "status", "days_stale"]].to_dict("records") == [
        {"appointment_key": "MB_A4", "status": "booked", "days_stale": 4}
    ]


def test_step_7_as_of_05_10_the_deal_is_abgeschlossen_and_the_check_lists_a4() -> None:
    computation = compute(STEP_7, [A2_ENTRY], as_of="05-10")
    assert fields(computation, "MB_A1", "stage", "is_open", "closed_date", "amount_cents") == {
        "stage": "abgeschlossen",
        "is_open": False,
        "closed_date": day("05-09"),  # 60 days after A2, not after the stale A4
        "amount_cents": 48000,
    }
    listed = stale_appointments(appointments_frame(STEP_7), DealSettings(), day("05-10"), practice_id="mb")
    assert listed[["practice_id", "appointment_key", "patient_key", "days_stale"]].to_dict("records") == [
        {"practice_id": "mb", "appointment_key": "MB_A4", "patient_key": "MB_553", "days_stale": 54}
    ]
