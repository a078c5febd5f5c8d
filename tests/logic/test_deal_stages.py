"""Deal membership and stages: SPEC §5, the worked example, and the choices in the deals module docstring."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from biss_pipeline.domain.deals import DealSettings, Stage, classify_entries, compute_deals
from tests.logic.factories import RULES, A, E, appointments_frame, compute, day, deal, entries_frame, members


def test_worked_example_step_by_step() -> None:
    # 1. A1 (lead, booked 03-01) → deal MB_A1, Termin gebucht.
    step1 = compute([A("MB_A1", "lead", "03-01", "booked")], as_of="02-20")
    assert deal(step1, "MB_A1")["stage"] == "termin_gebucht"
    assert deal(step1, "MB_A1")["stage_label"] == "Termin gebucht"
    assert deal(step1, "MB_A1")["is_open"]

    # 2. A1 completed → Erstberatung.
    step2 = compute([A("MB_A1", "lead", "03-01", "completed")], as_of="03-01")
    assert deal(step2, "MB_A1")["stage"] == "erstberatung"

    # 3. A2 (treatment) completed 03-10 with a billable GOZ entry of 480.00 → In Behandlung.
    a2_entry = E("MB_9001", 48000, appointment="MB_A2", on="03-10", entry_type="goz", code="2060")
    step3 = compute(
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")],
        [a2_entry],
        as_of="03-10",
    )
    assert {key: deal(step3, "MB_A1")[key] for key in ("stage", "behandlungsstart", "amount_cents")} == {
        "stage": "in_behandlung",
        "behandlungsstart": day("03-10"),
        "amount_cents": 48000,
    }
    assert members(step3) == {"MB_A1": ["MB_A1", "MB_A2"]}

    # 4. A2 corrected back to booked → Erstberatung again, behandlungsstart empty, amount 0.00.
    step4 = compute(
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "booked")],
        [a2_entry],
        as_of="03-12",
    )
    assert {key: deal(step4, "MB_A1")[key] for key in ("stage", "behandlungsstart", "amount_cents")} == {
        "stage": "erstberatung",
        "behandlungsstart": None,
        "amount_cents": 0,
    }
    assert step4.uncounted_entries["reason"].tolist() == ["appointment_not_completed"]

    # 5. Instead of 2: A1 cancelled, nothing booked ahead → Verloren; a later A3 opens deal MB_A3.
    step5 = compute([A("MB_A1", "lead", "03-01", "cancelled")], as_of="03-01")
    assert deal(step5, "MB_A1")["stage"] == "verloren"
    assert deal(step5, "MB_A1")["stage_label"] == "Verloren"
    assert not deal(step5, "MB_A1")["is_open"]
    assert deal(step5, "MB_A1")["lost_reason"] == "cancelled"

    step5_later = compute(
        [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A3", "lead", "04-15", "booked")], as_of="04-01"
    )
    assert deal(step5_later, "MB_A1")["stage"] == "verloren"
    assert deal(step5_later, "MB_A3")["stage"] == "termin_gebucht"
    assert members(step5_later) == {"MB_A1": ["MB_A1"], "MB_A3": ["MB_A3"]}


@dataclass(frozen=True)
class Case:
    name: str
    appointments: list[A]
    expected: dict[str, dict[str, object]]
    entries: list[E] = field(default_factory=list)
    as_of: str = "03-15"
    settings: DealSettings = field(default_factory=DealSettings)
    membership: dict[str, list[str]] | None = None


BILLED_A2 = E("MB_9001", 48000, appointment="MB_A2", on="03-10")

STAGE_CASES = [
    # Stage 1: only booked/confirmed appointments.
    Case("booked", [A("MB_A1", "lead", "03-20")], {"MB_A1": {"stage": "termin_gebucht", "is_open": True}}),
    Case("confirmed", [A("MB_A1", "lead", "03-20", "confirmed")], {"MB_A1": {"stage": "termin_gebucht"}}),
    Case(
        "arrived completes nothing yet",
        [A("MB_A1", "lead", "03-15", "arrived")],
        {"MB_A1": {"stage": "termin_gebucht"}},
    ),
    Case(
        "treatment booked, nothing completed",
        [A("MB_A1", "treatment", "03-20")],
        {"MB_A1": {"stage": "termin_gebucht", "behandlungsstart": None}},
    ),
    # Stage 2: a lead appointment completed (and the documented choices).
    Case("lead completed", [A("MB_A1", "lead", "03-01", "completed")], {"MB_A1": {"stage": "erstberatung"}}),
    Case(
        "lead completed, treatment booked ahead",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-20")],
        {"MB_A1": {"stage": "erstberatung", "driving_appointment_key": "MB_A2"}},
    ),
    Case(
        "treatment completed without billable entry",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")],
        {"MB_A1": {"stage": "erstberatung", "behandlungsstart": None}},
        entries=[E("MB_9001", 0, appointment="MB_A2", entry_type="text", code="Befund")],
    ),
    Case(
        "treatment completed with a non-billable BEMA entry only",
        [A("MB_A2", "treatment", "03-10", "completed")],
        {"MB_A2": {"stage": "erstberatung", "amount_cents": 0}},
        entries=[E("MB_9001", 1500, appointment="MB_A2", entry_type="bema", code="Ä1")],
    ),
    Case(
        "followup-only deal completed",
        [A("MB_A1", "followup", "03-10", "completed")],
        {"MB_A1": {"stage": "erstberatung"}},
    ),
    Case(
        "billed followup is revenue but not treatment",
        [A("MB_A1", "followup", "03-10", "completed")],
        {"MB_A1": {"stage": "erstberatung", "amount_cents": 9900, "behandlungsstart": None}},
        entries=[E("MB_9001", 9900, appointment="MB_A1")],
    ),
    Case(
        "unlinked billable entry in the window does not start treatment",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")],
        {"MB_A1": {"stage": "erstberatung", "amount_cents": 48000}},
        entries=[E("MB_9001", 48000, appointment=None, on="03-05")],
    ),
    # Stage 3: a treatment appointment completed with at least one billable entry.
    Case(
        "treatment completed and billed",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")],
        {"MB_A1": {"stage": "in_behandlung", "behandlungsstart": day("03-10"), "is_open": True}},
        entries=[BILLED_A2],
    ),
    Case(
        "treatment opens the deal itself",
        [A("MB_A2", "treatment", "03-10", "completed")],
        {"MB_A2": {"stage": "in_behandlung", "behandlungsstart": day("03-10")}},
        entries=[BILLED_A2],
    ),
    Case(
        "behandlungsstart is the first billed treatment, not the first treatment",
        [
            A("MB_A1", "treatment", "03-05", "completed"),
            A("MB_A2", "treatment", "03-10", "completed"),
            A("MB_A3", "treatment", "03-12", "completed"),
        ],
        {"MB_A1": {"stage": "in_behandlung", "behandlungsstart": day("03-10")}},
        entries=[BILLED_A2, E("MB_9002", 100, appointment="MB_A3", on="03-12")],
    ),
    Case(
        "stage 3 stays while the next treatment is booked",
        [A("MB_A2", "treatment", "03-10", "completed"), A("MB_A4", "treatment", "04-20")],
        {"MB_A2": {"stage": "in_behandlung"}},
        entries=[BILLED_A2],
        as_of="05-20",
    ),
]

LOST_CASES = [
    Case(
        "stage 1, driving appointment cancelled",
        [A("MB_A1", "lead", "03-01", "cancelled")],
        {
            "MB_A1": {
                "stage": "verloren",
                "lost_reason": "cancelled",
                "closed_date": day("03-01"),
                "is_open": False,
            }
        },
    ),
    Case(
        "stage 1, driving appointment no-show",
        [A("MB_A1", "lead", "03-01", "no_show")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "no_show"}},
    ),
    Case(
        "stage 1, driving appointment clarified",
        [A("MB_A1", "lead", "03-01", "clarified")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "clarified"}},
    ),
    Case(
        "stage 2, driving appointment no-show",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "no_show")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "no_show", "closed_date": day("03-10")}},
    ),
    Case(
        "stage 2, driving appointment cancelled in the future",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "04-10", "cancelled")],
        {"MB_A1": {"stage": "verloren", "closed_date": day("04-10")}},
    ),
    Case(
        "not lost: another appointment is still booked",
        [A("MB_A1", "lead", "03-20", "booked"), A("MB_A2", "treatment", "03-25", "cancelled")],
        {"MB_A1": {"stage": "termin_gebucht", "lost_reason": None, "closed_date": None}},
    ),
    Case(
        "not lost: arrived is not final",
        [A("MB_A1", "lead", "03-15", "arrived", hour=9), A("MB_A2", "lead", "03-15", "cancelled", hour=10)],
        {"MB_A1": {"stage": "termin_gebucht"}},
    ),
    Case(
        "cancelled, then seen the same day: the lost deal stays lost, a new one opens",
        [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A2", "lead", "03-01", "completed", hour=10)],
        {"MB_A1": {"stage": "verloren"}, "MB_A2": {"stage": "erstberatung"}},
        membership={"MB_A1": ["MB_A1"], "MB_A2": ["MB_A2"]},
    ),
    Case(
        "not lost: stage 3 deal with a cancelled driving appointment",
        [A("MB_A2", "treatment", "03-10", "completed"), A("MB_A3", "treatment", "03-12", "cancelled")],
        {"MB_A2": {"stage": "in_behandlung", "lost_reason": None}},
        entries=[BILLED_A2],
    ),
    Case(
        "ignore-type appointment is not the driving appointment",
        [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_X1", "ignore", "03-05", "booked")],
        {"MB_A1": {"stage": "verloren", "driving_appointment_key": "MB_A1"}},
        membership={"MB_A1": ["MB_A1"]},
    ),
    Case(
        "lost deal, next appointment opens a new deal",
        [
            A("MB_A1", "lead", "03-01", "completed"),
            A("MB_A2", "followup", "03-05", "no_show"),
            A("MB_A3", "lead", "03-06", "completed"),
        ],
        {"MB_A1": {"stage": "verloren", "lost_reason": "no_show"}, "MB_A3": {"stage": "erstberatung"}},
        membership={"MB_A1": ["MB_A1", "MB_A2"], "MB_A3": ["MB_A3"]},
    ),
]

BILLED_TREATMENT = [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")]

WON_CASES = [
    Case(
        "won: quiet one day short of close_after_days",
        BILLED_TREATMENT,
        {"MB_A1": {"stage": "in_behandlung", "closed_date": None}},
        entries=[BILLED_A2],
        as_of="05-08",  # 03-10 + 59 days
    ),
    Case(
        "won: quiet exactly close_after_days",
        BILLED_TREATMENT,
        {"MB_A1": {"stage": "abgeschlossen", "stage_label": "Abgeschlossen", "closed_date": day("05-09")}},
        entries=[BILLED_A2],
        as_of="05-09",
    ),
    Case(
        "won: configured close_after_days",
        BILLED_TREATMENT,
        {"MB_A1": {"stage": "abgeschlossen", "closed_date": day("03-20"), "is_open": False}},
        entries=[BILLED_A2],
        as_of="03-20",
        settings=DealSettings(close_after_days=10),
    ),
    Case(
        "won: quiet period counts from the last appointment of any status",
        [*BILLED_TREATMENT, A("MB_A3", "followup", "03-20", "cancelled")],
        {"MB_A1": {"stage": "in_behandlung"}},
        entries=[BILLED_A2],
        as_of="05-09",
    ),
    Case(
        "won: not while an appointment is booked ahead",
        [*BILLED_TREATMENT, A("MB_A3", "treatment", "03-20", "booked")],
        {"MB_A1": {"stage": "in_behandlung"}},
        entries=[BILLED_A2],
        as_of="06-30",
    ),
    Case(
        "won: needs billed treatment (stage 2 stays open)",
        BILLED_TREATMENT,
        {"MB_A1": {"stage": "erstberatung", "closed_date": None}},
        as_of="12-31",
    ),
    Case(
        "walk: next appointment one day inside the quiet period joins",
        [*BILLED_TREATMENT, A("MB_A3", "followup", "05-08", "completed")],
        {"MB_A1": {"stage": "in_behandlung", "driving_appointment_key": "MB_A3"}},
        entries=[BILLED_A2],
        as_of="05-10",
        membership={"MB_A1": ["MB_A1", "MB_A2", "MB_A3"]},
    ),
    Case(
        "walk: next appointment after the quiet period opens a new deal",
        [*BILLED_TREATMENT, A("MB_A3", "lead", "05-09", "completed")],
        {
            "MB_A1": {"stage": "abgeschlossen", "closed_date": day("05-09")},
            "MB_A3": {"stage": "erstberatung"},
        },
        entries=[BILLED_A2],
        as_of="05-10",
        membership={"MB_A1": ["MB_A1", "MB_A2"], "MB_A3": ["MB_A3"]},
    ),
    Case(
        "walk: next appointment booked beyond the quiet period closes the deal before as_of",
        [*BILLED_TREATMENT, A("MB_A3", "followup", "09-01", "booked")],
        {
            "MB_A1": {"stage": "abgeschlossen", "closed_date": day("05-09")},
            "MB_A3": {"stage": "termin_gebucht"},
        },
        entries=[BILLED_A2],
        as_of="03-15",
        membership={"MB_A1": ["MB_A1", "MB_A2"], "MB_A3": ["MB_A3"]},
    ),
    Case(
        "walk: stage 2 has no closing rule, a late appointment joins",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "lead", "2025-03-01", "booked")],
        {"MB_A1": {"stage": "erstberatung"}},
        as_of="2025-02-01",
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
    ),
]

MEMBERSHIP_CASES = [
    Case(
        "ignore-type appointments belong to no deal and open none",
        [A("MB_X1", "ignore", "02-01", "completed"), A("MB_A1", "lead", "03-01", "completed")],
        {"MB_A1": {"stage": "erstberatung", "first_appointment_date": day("03-01"), "num_appointments": 1}},
        membership={"MB_A1": ["MB_A1"]},
    ),
    Case(
        "same start: the appointment key breaks the tie",
        [A("MB_A2", "lead", "03-01", "booked"), A("MB_A1", "lead", "03-01", "booked")],
        {"MB_A1": {"driving_appointment_key": "MB_A2"}},
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
    ),
    Case(
        "start order, not key order",
        [A("MB_A1", "lead", "03-05", "booked"), A("MB_A2", "lead", "03-01", "completed")],
        {"MB_A2": {"opened_by_appointment_key": "MB_A2", "driving_appointment_key": "MB_A1"}},
        membership={"MB_A2": ["MB_A2", "MB_A1"]},
    ),
    Case(
        "patients and practices have their own deals",
        [
            A("MB_A1", "lead", "03-01", "booked"),
            A("MB_A2", "lead", "03-01", "booked", patient="MB_554"),
            A("RK_A1", "lead", "03-01", "booked", patient="RK_553", practice="rk"),
        ],
        {
            "MB_A1": {"patient_key": "MB_553", "practice_id": "mb"},
            "MB_A2": {"patient_key": "MB_554"},
            "RK_A1": {"patient_key": "RK_553", "practice_id": "rk"},
        },
        membership={"MB_A1": ["MB_A1"], "MB_A2": ["MB_A2"], "RK_A1": ["RK_A1"]},
    ),
]


@pytest.mark.parametrize(
    "case",
    STAGE_CASES + LOST_CASES + WON_CASES + MEMBERSHIP_CASES,
    ids=lambda case: case.name,
)
def test_stage_rules(case: Case) -> None:
    computation = compute(case.appointments, case.entries, as_of=case.as_of, settings=case.settings)
    assert sorted(computation.deals["deal_key"]) == sorted(case.expected)
    for deal_key, expected in case.expected.items():
        actual = deal(computation, deal_key)
        assert {key: actual[key] for key in expected} == expected, deal_key
    if case.membership is not None:
        assert members(computation) == case.membership


def test_set_back_regression_moves_every_field_back() -> None:
    completed = [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")]
    set_back = [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "booked")]
    before = compute(completed, [BILLED_A2], as_of="05-20")
    after = compute(set_back, [BILLED_A2], as_of="05-20")
    assert deal(before, "MB_A1")["stage"] == "abgeschlossen"
    assert {key: deal(after, "MB_A1")[key] for key in ("stage", "closed_date", "behandlungsstart")} == {
        "stage": "erstberatung",
        "closed_date": None,
        "behandlungsstart": None,
    }
    assert deal(after, "MB_A1")["amount_cents"] == 0
    assert after.deal_revenue.empty
    assert deal(after, "MB_A1")["treatment_category"] is None


def test_set_back_merges_deals_that_a_lost_cut_had_split() -> None:
    # A cancelled lead cut the history in two; once it is corrected to booked, it is one journey again.
    cancelled = [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A3", "lead", "03-05", "completed")]
    corrected = [A("MB_A1", "lead", "03-01", "booked"), A("MB_A3", "lead", "03-05", "completed")]
    assert members(compute(cancelled)) == {"MB_A1": ["MB_A1"], "MB_A3": ["MB_A3"]}
    assert members(compute(corrected)) == {"MB_A1": ["MB_A1", "MB_A3"]}


def test_stage_metadata() -> None:
    assert [stage.label for stage in Stage] == [
        "Termin gebucht",
        "Erstberatung",
        "In Behandlung",
        "Abgeschlossen",
        "Verloren",
    ]
    assert [stage.number for stage in Stage] == [1, 2, 3, 4, 5]
    assert [stage.is_open for stage in Stage] == [True, True, True, False, False]


def test_membership_does_not_depend_on_as_of() -> None:
    history = [*BILLED_TREATMENT, A("MB_A3", "followup", "06-01", "booked")]
    by_as_of = [members(compute(history, [BILLED_A2], as_of=as_of)) for as_of in ("03-10", "05-09", "12-31")]
    assert by_as_of[0] == by_as_of[1] == by_as_of[2]


def test_no_wall_clock() -> None:
    far_past = compute(BILLED_TREATMENT, [BILLED_A2], as_of="03-12")
    assert deal(far_past, "MB_A1")["stage"] == "in_behandlung"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"deal_role": "vip"}, "deal_role"),
        ({"status": "done"}, "status"),
    ],
)
def test_rejects_values_outside_the_contract(change: dict[str, str], message: str) -> None:
    frame = appointments_frame([A("MB_A1", "lead", "03-01")]).assign(**change)
    with pytest.raises(ValueError, match=message):
        compute_deals(frame, classify_entries(entries_frame([]), RULES), DealSettings(), day("03-15"))


def test_rejects_duplicate_appointments() -> None:
    frame = appointments_frame([A("MB_A1", "lead", "03-01"), A("MB_A1", "lead", "03-01")])
    with pytest.raises(ValueError, match="duplicate appointment_key"):
        compute_deals(frame, classify_entries(entries_frame([]), RULES), DealSettings(), day("03-15"))


def test_settings_reject_a_quiet_period_below_one_day() -> None:
    with pytest.raises(ValueError, match="close_after_days"):
        DealSettings(close_after_days=0)
