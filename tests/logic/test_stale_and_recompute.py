"""The stale-appointment listing for the data-quality check, and which patients to recompute when the
settings or the as-of date move (SPEC §5 rev. 2)."""

from __future__ import annotations

import pandas as pd

from biss_pipeline.domain.deals import DealSettings, patients_to_recompute, stale_appointments
from tests.logic.factories import A, E, appointments_frame, compute, day

STALE_COLUMNS = ["practice_id", "appointment_key", "patient_key", "start", "status", "days_stale"]


def listed(appointments: list[A], as_of: str, practice_id: str | None = None, **settings: int) -> list[str]:
    frame = stale_appointments(
        appointments_frame(appointments), DealSettings(**settings), day(as_of), practice_id
    )
    return frame["appointment_key"].tolist()


def test_stale_listing_has_keys_only_and_is_typed() -> None:
    frame = stale_appointments(
        appointments_frame([A("MB_10", "lead", "03-01", "arrived", hour=11)]), DealSettings(), day("03-15")
    )
    assert list(frame.columns) == STALE_COLUMNS
    assert frame.to_dict("records") == [
        {
            "practice_id": "mb",
            "appointment_key": "MB_10",
            "patient_key": "MB_553",
            "start": pd.Timestamp("2024-03-01 11:00"),
            "status": "arrived",
            "days_stale": 14,
        }
    ]
    assert frame["days_stale"].dtype == "int64"


def test_stale_listing_threshold_is_inclusive_and_configurable() -> None:
    appointments = [A("MB_1", "lead", "03-10", "confirmed")]
    assert listed(appointments, "03-12") == []
    assert listed(appointments, "03-13") == ["MB_1"]
    assert listed(appointments, "03-10", stale_after_days=1) == []
    assert listed(appointments, "03-11", stale_after_days=1) == ["MB_1"]


def test_stale_listing_leaves_out_final_future_and_ignore_type_appointments() -> None:
    appointments = [
        A("MB_1", "lead", "03-01", "completed"),
        A("MB_2", "lead", "03-01", "cancelled", hour=10),
        A("MB_3", "ignore", "03-01", "booked", hour=11),  # an internal blocker nobody closes
        A("MB_4", "lead", "03-20", "booked"),  # ahead
        A("MB_5", "followup", "03-02", "booked"),
    ]
    assert listed(appointments, "03-15") == ["MB_5"]


def test_stale_listing_per_practice_in_start_and_numeric_id_order() -> None:
    appointments = [
        A("MB_34", "lead", "03-01", "booked"),
        A("MB_7", "lead", "03-01", "booked", patient="MB_554"),
        A("MB_2", "lead", "03-02", "booked"),
        A("RK_1", "lead", "02-01", "booked", patient="RK_9", practice="rk"),
    ]
    assert listed(appointments, "03-15") == ["MB_7", "MB_34", "MB_2", "RK_1"]
    assert listed(appointments, "03-15", practice_id="rk") == ["RK_1"]
    assert listed([], "03-15") == []


# --- patients_to_recompute -------------------------------------------------------------------------


def _patient(name: str, appointments: list[A]) -> list[A]:
    return [
        A(f"{name}_{index}", a.role, a.on, a.status, hour=a.hour, patient=name)
        for index, a in enumerate(appointments, start=1)
    ]


# One patient per way a result can depend on the as-of date; the entries bill the treatments.
WON_LONG_AGO = _patient(
    "MB_P1", [A("x", "lead", "01-05", "completed"), A("x", "treatment", "01-10", "completed")]
)
IN_TREATMENT = _patient(
    "MB_P2", [A("x", "lead", "03-01", "completed"), A("x", "treatment", "03-10", "completed")]
)
LOST_CANCELLED = _patient("MB_P3", [A("x", "lead", "02-01", "cancelled")])
OPEN_CONSULTATION = _patient("MB_P4", [A("x", "lead", "03-01", "completed")])
BOOKING_TURNS_STALE = _patient(
    "MB_P5", [A("x", "lead", "03-01", "completed"), A("x", "followup", "05-08", "booked")]
)
HISTORY = [*WON_LONG_AGO, *IN_TREATMENT, *LOST_CANCELLED, *OPEN_CONSULTATION, *BOOKING_TURNS_STALE]
ENTRIES = [
    E("MB_E1", 1000, "MB_P1_2", "01-10", patient="MB_P1"),
    E("MB_E2", 1000, "MB_P2_2", "03-10", patient="MB_P2"),
]


def _to_recompute(previous_as_of: str, as_of: str, before: DealSettings, after: DealSettings) -> set[str]:
    previous = compute(HISTORY, ENTRIES, as_of=previous_as_of, settings=before)
    return patients_to_recompute(
        previous.deals,
        appointments_frame(HISTORY),
        previous_settings=before,
        settings=after,
        previous_as_of=day(previous_as_of),
        as_of=day(as_of),
    )


def test_nothing_moves_nothing_to_recompute() -> None:
    assert _to_recompute("05-10", "05-10", DealSettings(), DealSettings()) == set()


def test_a_later_as_of_recomputes_the_patients_with_an_open_deal() -> None:
    assert _to_recompute("05-07", "05-20", DealSettings(), DealSettings()) == {"MB_P2", "MB_P4", "MB_P5"}


def test_an_earlier_as_of_recomputes_deals_closed_by_time_since_and_bookings_stale_since() -> None:
    # As of 07-20: MB_P2 won on 05-09, MB_P4 and MB_P5 lost as inactive on 06-29 (MB_P5's booking became
    # stale on 05-11). MB_P1 won in March and MB_P3's loss has no date threshold.
    assert _to_recompute("07-20", "06-01", DealSettings(), DealSettings()) == {"MB_P4", "MB_P5"}
    assert _to_recompute("07-20", "05-09", DealSettings(), DealSettings()) == {"MB_P4", "MB_P5"}
    assert _to_recompute("07-20", "05-08", DealSettings(), DealSettings()) == {"MB_P2", "MB_P4", "MB_P5"}
    assert _to_recompute("05-12", "05-10", DealSettings(), DealSettings()) == {"MB_P5"}


def test_changed_settings_recompute_every_patient_with_a_deal() -> None:
    assert _to_recompute("05-10", "05-10", DealSettings(), DealSettings(rebook_days=7)) == {
        "MB_P1",
        "MB_P2",
        "MB_P3",
        "MB_P4",
        "MB_P5",
    }
