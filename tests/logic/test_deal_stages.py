"""Deal membership and stages: SPEC §5 rev. 2 and the choices in the deals module docstring.

The worked example of §5 is in test_worked_example.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from biss_pipeline.domain.deals import DealSettings, Stage, classify_entries, compute_deals, key_order
from tests.logic.factories import RULES, A, E, appointments_frame, compute, day, deal, entries_frame, members


@dataclass(frozen=True)
class Case:
    name: str
    appointments: list[A]
    expected: dict[str, dict[str, object]]
    entries: list[E] = field(default_factory=list)
    as_of: str = "03-15"
    settings: DealSettings = field(default_factory=DealSettings)
    membership: dict[str, list[str]] | None = None
    stale: list[str] | None = None  # appointment keys flagged `is_stale` in deal_appointments


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
        "stage 3 stays while the next treatment is pending",
        [A("MB_A2", "treatment", "03-10", "completed"), A("MB_A4", "treatment", "05-08")],
        {"MB_A2": {"stage": "in_behandlung", "driving_appointment_key": "MB_A4"}},
        entries=[BILLED_A2],
        as_of="05-10",  # MB_A4 is stale from 05-11
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
        "cancelled, then seen the same day: a rebooking, the deal reopens",
        [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A2", "lead", "03-01", "completed", hour=10)],
        {"MB_A1": {"stage": "erstberatung", "reopened_count": 1, "driving_appointment_key": "MB_A2"}},
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
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
        "lost deal, next appointment after the rebooking window opens a new deal",
        [
            A("MB_A1", "lead", "03-01", "completed"),
            A("MB_A2", "followup", "03-05", "no_show"),
            A("MB_A3", "lead", "04-05", "completed"),  # 31 days after the no-show
        ],
        {
            "MB_A1": {"stage": "verloren", "lost_reason": "no_show", "reopened_count": 0},
            "MB_A3": {"stage": "erstberatung", "reopened_count": 0},
        },
        as_of="04-10",
        membership={"MB_A1": ["MB_A1", "MB_A2"], "MB_A3": ["MB_A3"]},
    ),
    Case(
        "lost by the driving appointment even when another is cancelled before it",
        [A("MB_A1", "lead", "03-01", "no_show"), A("MB_A2", "lead", "03-05", "cancelled")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "cancelled", "closed_date": day("03-05")}},
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
    ),
]

INACTIVE_CASES = [
    Case(
        "(r2) inactive: stage 2, quiet one day short of lost_after_days",
        [A("MB_A1", "lead", "03-01", "completed")],
        {"MB_A1": {"stage": "erstberatung", "is_open": True, "closed_date": None}},
        as_of="06-28",  # 03-01 + 119 days
    ),
    Case(
        "(r2) inactive: stage 2, quiet exactly lost_after_days",
        [A("MB_A1", "lead", "03-01", "completed")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "inactive", "closed_date": day("06-29")}},
        as_of="06-29",
    ),
    Case(
        "(r2) inactive: configured lost_after_days",
        [A("MB_A1", "followup", "03-01", "completed")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "inactive", "closed_date": day("03-11")}},
        as_of="03-11",
        settings=DealSettings(lost_after_days=10),
    ),
    Case(
        "(r2) inactive: a completed treatment that is never billed",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "inactive", "closed_date": day("07-08")}},
        as_of="07-08",
    ),
    Case(
        "(r2) inactive: S5a comes first, a cancellation long ago keeps its status as the reason",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "lead", "03-05", "cancelled")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "cancelled", "closed_date": day("03-05")}},
        as_of="12-31",
    ),
    Case(
        "(r2) inactive: the quiet period counts from the last non-stale appointment",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "followup", "03-20", "booked")],
        {
            "MB_A1": {
                "stage": "verloren",
                "lost_reason": "inactive",
                "closed_date": day("06-29"),
                "driving_appointment_key": "MB_A1",
                "last_appointment_date": day("03-20"),
            }
        },
        as_of="06-29",
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
        stale=["MB_A2"],
    ),
    Case(
        "(r2) inactive: a deal whose only appointment is stale counts from its first appointment",
        [A("MB_A1", "lead", "03-01", "booked")],
        {
            "MB_A1": {
                "stage": "verloren",
                "lost_reason": "inactive",
                "closed_date": day("06-29"),
                "driving_appointment_key": None,
            }
        },
        as_of="06-29",
        stale=["MB_A1"],
    ),
    Case(
        "(r2) inactive: a stage-3 deal is never lost by inactivity",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")],
        {"MB_A1": {"stage": "in_behandlung", "lost_reason": None}},
        entries=[BILLED_A2],
        as_of="12-31",
        settings=DealSettings(close_after_days=365),
    ),
    Case(
        "(r2) walk: a stage-2 deal quiet for lost_after_days is lost before the next appointment",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "lead", "2025-03-01", "booked")],
        {
            "MB_A1": {"stage": "verloren", "lost_reason": "inactive", "closed_date": day("06-29")},
            "MB_A2": {"stage": "termin_gebucht"},
        },
        as_of="2025-02-01",
        membership={"MB_A1": ["MB_A1"], "MB_A2": ["MB_A2"]},
    ),
    Case(
        "(r2) walk: the next appointment one day inside lost_after_days joins",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "lead", "06-28", "completed")],
        {"MB_A1": {"stage": "erstberatung", "driving_appointment_key": "MB_A2"}},
        as_of="07-01",
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
    ),
]

STALE_CASES = [
    Case(
        "(r2) stale: pending up to stale_after_days after its date, stale on that day",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "followup", "03-10", "confirmed")],
        {"MB_A1": {"driving_appointment_key": "MB_A2"}},
        as_of="03-12",
        stale=[],
    ),
    Case(
        "(r2) stale: on stale_after_days after its date it is no longer the driving appointment",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "followup", "03-10", "confirmed")],
        {"MB_A1": {"stage": "erstberatung", "driving_appointment_key": "MB_A1"}},
        as_of="03-13",
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
        stale=["MB_A2"],
    ),
    Case(
        "(r2) stale: configured stale_after_days",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "followup", "03-10", "arrived")],
        {"MB_A1": {"driving_appointment_key": "MB_A1"}},
        as_of="03-11",
        settings=DealSettings(stale_after_days=1),
        stale=["MB_A2"],
    ),
    Case(
        "(r2) stale: a booking left unupdated no longer blocks won",
        [A("MB_A2", "treatment", "03-10", "completed"), A("MB_A4", "treatment", "04-20")],
        {
            "MB_A2": {
                "stage": "abgeschlossen",
                "closed_date": day("05-09"),
                "driving_appointment_key": "MB_A2",
                "last_appointment_date": day("04-20"),
            }
        },
        entries=[BILLED_A2],
        as_of="05-20",
        membership={"MB_A2": ["MB_A2", "MB_A4"]},
        stale=["MB_A4"],
    ),
    Case(
        "(r2) stale: a stale arrived appointment completes nothing",
        [A("MB_A1", "treatment", "03-01", "arrived")],
        {"MB_A1": {"stage": "termin_gebucht", "is_open": True, "driving_appointment_key": None}},
        entries=[E("MB_9001", 48000, appointment="MB_A1", on="03-01")],
        as_of="03-15",
        stale=["MB_A1"],
    ),
    Case(
        "(r2) stale: a stale rebooking does not save a lost deal",
        [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A2", "lead", "03-05", "booked")],
        {
            "MB_A1": {
                "stage": "verloren",
                "lost_reason": "cancelled",
                "closed_date": day("03-01"),
                "reopened_count": 1,
            }
        },
        as_of="03-15",
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
        stale=["MB_A2"],
    ),
    Case(
        "(r2) stale: every pending status goes stale, final ones never",
        [
            A("MB_A1", "lead", "01-10", "booked"),
            A("MB_A2", "lead", "01-11", "confirmed"),
            A("MB_A3", "lead", "01-12", "arrived"),
            A("MB_A4", "lead", "01-13", "cancelled"),
            A("MB_A5", "lead", "01-14", "no_show"),
            A("MB_A6", "lead", "01-15", "clarified"),
            A("MB_A7", "lead", "01-16", "completed"),
        ],
        {"MB_A1": {"stage": "erstberatung", "driving_appointment_key": "MB_A7"}},
        as_of="02-01",
        stale=["MB_A1", "MB_A2", "MB_A3"],
    ),
]

REBOOK_CASES = [
    Case(
        "(r2) rebooking: the next appointment exactly rebook_days after the lost one reopens",
        [
            A("MB_A1", "lead", "03-01", "completed"),
            A("MB_A2", "followup", "03-05", "no_show"),
            A("MB_A3", "lead", "04-04", "completed"),  # 30 days after the no-show
        ],
        {
            "MB_A1": {
                "stage": "erstberatung",
                "is_open": True,
                "lost_reason": None,
                "closed_date": None,
                "reopened_count": 1,
                "driving_appointment_key": "MB_A3",
            }
        },
        as_of="04-10",
        membership={"MB_A1": ["MB_A1", "MB_A2", "MB_A3"]},
    ),
    Case(
        "(r2) rebooking: configured rebook_days",
        [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A3", "lead", "03-09", "booked")],
        {"MB_A1": {"stage": "verloren"}, "MB_A3": {"stage": "termin_gebucht"}},
        settings=DealSettings(rebook_days=7),
        as_of="03-05",
        membership={"MB_A1": ["MB_A1"], "MB_A3": ["MB_A3"]},
    ),
    Case(
        "(r2) rebooking: the reopened deal's stage comes from all its appointments",
        [
            A("MB_A1", "lead", "03-01", "cancelled"),
            A("MB_A3", "lead", "03-20", "completed"),
            A("MB_A4", "treatment", "03-25", "completed"),
        ],
        {"MB_A1": {"stage": "in_behandlung", "behandlungsstart": day("03-25"), "reopened_count": 1}},
        entries=[E("MB_9001", 48000, appointment="MB_A4", on="03-25")],
        as_of="03-26",
        membership={"MB_A1": ["MB_A1", "MB_A3", "MB_A4"]},
    ),
    Case(
        "(r2) rebooking: reopened, lost again, reopened again",
        [
            A("MB_A1", "lead", "03-01", "cancelled"),
            A("MB_A3", "lead", "03-20", "no_show"),
            A("MB_A5", "lead", "04-15", "booked"),
        ],
        {"MB_A1": {"stage": "termin_gebucht", "reopened_count": 2, "driving_appointment_key": "MB_A5"}},
        as_of="04-10",
        membership={"MB_A1": ["MB_A1", "MB_A3", "MB_A5"]},
    ),
    Case(
        "(r2) rebooking: a deal lost by inactivity does not reopen",
        [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "lead", "06-29", "booked")],
        {"MB_A1": {"stage": "verloren", "lost_reason": "inactive"}, "MB_A2": {"reopened_count": 0}},
        as_of="06-20",
        settings=DealSettings(rebook_days=365),
        membership={"MB_A1": ["MB_A1"], "MB_A2": ["MB_A2"]},
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
        "won: not while an appointment is pending",
        [*BILLED_TREATMENT, A("MB_A3", "treatment", "05-08", "booked")],
        {"MB_A1": {"stage": "in_behandlung"}},
        entries=[BILLED_A2],
        as_of="05-10",
    ),
    Case(
        "(r2) won: once that appointment is stale, counted from the last non-stale one",
        [*BILLED_TREATMENT, A("MB_A3", "treatment", "05-08", "booked")],
        {"MB_A1": {"stage": "abgeschlossen", "closed_date": day("05-09")}},
        entries=[BILLED_A2],
        as_of="05-11",
        stale=["MB_A3"],
    ),
    Case(
        "won: needs billed treatment",
        BILLED_TREATMENT,
        {"MB_A1": {"stage": "erstberatung", "closed_date": None}},
        as_of="05-09",
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
        as_of="02-25",
        membership={"MB_A1": ["MB_A1", "MB_A2"]},
    ),
    Case(
        "same start: the numeric Ivoris id breaks the tie, not the text",
        [A("MB_34", "lead", "03-01", "booked"), A("MB_7", "lead", "03-01", "booked")],
        {"MB_7": {"opened_by_appointment_key": "MB_7", "driving_appointment_key": "MB_34"}},
        as_of="02-25",
        membership={"MB_7": ["MB_7", "MB_34"]},
    ),
    Case(
        "start order, not key order",
        [A("MB_A1", "lead", "03-05", "booked"), A("MB_A2", "lead", "03-01", "completed")],
        {"MB_A2": {"opened_by_appointment_key": "MB_A2", "driving_appointment_key": "MB_A1"}},
        as_of="03-06",
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
    STAGE_CASES + LOST_CASES + INACTIVE_CASES + STALE_CASES + REBOOK_CASES + WON_CASES + MEMBERSHIP_CASES,
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
    if case.stale is not None:
        flags = computation.deal_appointments
        assert sorted(flags.loc[flags["is_stale"], "appointment_key"]) == sorted(case.stale)


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
    # A cancelled lead cut the history in two (the next visit is beyond the rebooking window); once it is
    # corrected to booked, it is one journey again.
    cancelled = [A("MB_A1", "lead", "03-01", "cancelled"), A("MB_A3", "lead", "04-05", "completed")]
    corrected = [A("MB_A1", "lead", "03-01", "booked"), A("MB_A3", "lead", "04-05", "completed")]
    assert members(compute(cancelled, as_of="04-10")) == {"MB_A1": ["MB_A1"], "MB_A3": ["MB_A3"]}
    assert members(compute(corrected, as_of="04-10")) == {"MB_A1": ["MB_A1", "MB_A3"]}


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


def test_membership_does_not_depend_on_as_of_without_staleness() -> None:
    history = [*BILLED_TREATMENT, A("MB_A3", "followup", "06-01", "booked")]
    by_as_of = [members(compute(history, [BILLED_A2], as_of=as_of)) for as_of in ("03-10", "05-09", "12-31")]
    assert by_as_of[0] == by_as_of[1] == by_as_of[2]


def test_membership_moves_with_as_of_only_through_staleness() -> None:
    # MB_A3 keeps the deal open while it is pending, so the booking far ahead joins; once MB_A3 is stale the
    # deal was won at the end of its quiet period and that booking opens the next journey.
    history = [
        *BILLED_TREATMENT,
        A("MB_A3", "followup", "05-07", "booked"),
        A("MB_A4", "lead", "09-01", "booked"),
    ]
    pending = compute(history, [BILLED_A2], as_of="05-09")
    stale = compute(history, [BILLED_A2], as_of="05-10")
    assert members(pending) == {"MB_A1": ["MB_A1", "MB_A2", "MB_A3", "MB_A4"]}
    assert deal(pending, "MB_A1")["stage"] == "in_behandlung"
    assert members(stale) == {"MB_A1": ["MB_A1", "MB_A2", "MB_A3"], "MB_A4": ["MB_A4"]}
    assert deal(stale, "MB_A1")["stage"] == "abgeschlossen"
    assert deal(stale, "MB_A1")["closed_date"] == day("05-09")
    # In the walk, staleness is judged no later than the appointment about to join: on 05-08 MB_A3 (05-07)
    # was pending, so the booking of that day joins even though MB_A3 is stale as of the run.
    joined = compute(
        [
            *BILLED_TREATMENT,
            A("MB_A3", "followup", "05-07", "booked"),
            A("MB_A4", "followup", "05-09", "completed"),
        ],
        [BILLED_A2],
        as_of="06-01",
    )
    assert members(joined) == {"MB_A1": ["MB_A1", "MB_A2", "MB_A3", "MB_A4"]}


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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lost_after_days": 0}, "lost_after_days must be at least 1"),
        ({"stale_after_days": 0}, "stale_after_days must be at least 1"),
        ({"rebook_days": -1}, "rebook_days must be at least 0"),
        ({"entry_grace_days": -1}, "entry_grace_days must be at least 0"),
        ({"lost_after_days": 1.5}, "whole number of days"),
        ({"rebook_days": True}, "whole number of days"),
    ],
)
def test_settings_reject_values_outside_their_range(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DealSettings(**change)  # type: ignore[arg-type]


def test_settings_defaults_are_the_specs() -> None:
    assert DealSettings() == DealSettings(
        close_after_days=60, lost_after_days=120, stale_after_days=3, rebook_days=30, entry_grace_days=30
    )
    assert DealSettings(rebook_days=0, entry_grace_days=0).rebook_days == 0


def test_settings_fingerprint_names_every_setting_and_changes_with_each() -> None:
    default = DealSettings()
    assert default.fingerprint() == (
        "close_after_days=60,entry_grace_days=30,lost_after_days=120,rebook_days=30,stale_after_days=3"
    )
    changed = [
        DealSettings(close_after_days=61),
        DealSettings(lost_after_days=121),
        DealSettings(stale_after_days=4),
        DealSettings(rebook_days=31),
        DealSettings(entry_grace_days=31),
    ]
    fingerprints = {settings.fingerprint() for settings in [default, *changed]}
    assert len(fingerprints) == 6
    assert DealSettings(rebook_days=31).fingerprint() == DealSettings(rebook_days=31).fingerprint()


def test_key_order_is_the_numeric_ivoris_id() -> None:
    keys = ["MB_34", "MB_7", "MB_10423", "MB_007", "MB_A10", "MB_A9", "MB_0"]
    assert sorted(keys, key=key_order) == ["MB_0", "MB_007", "MB_7", "MB_34", "MB_10423", "MB_A9", "MB_A10"]
    # Prefix + number takes a shortcut; it must order exactly like the general digit-run comparison.
    assert key_order("MB_7") == (("MB_", 7, ""), "MB_7")
    assert key_order("R2_7") == (("R", 2, "_", 7, ""), "R2_7")
