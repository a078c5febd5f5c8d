"""Deal revenue: which entries count for which deal, buckets, categories, exact cents (SPEC §5)."""

from __future__ import annotations

import pandas as pd
import pytest

from biss_pipeline.domain.deals import DealSettings, classify_entries, compute_deals
from tests.logic.factories import RULES, A, E, appointments_frame, compute, day, deal, entries_frame, members

LEAD_AND_TREATMENT = [A("MB_A1", "lead", "03-01", "completed"), A("MB_A2", "treatment", "03-10", "completed")]


def revenue(computation: object, deal_key: str) -> dict[tuple[str, str], int]:
    frame = computation.deal_revenue  # type: ignore[attr-defined]
    rows = frame.loc[frame["deal_key"] == deal_key]
    return {
        (bucket, category): amount
        for bucket, category, amount in zip(
            rows["revenue_bucket"], rows["treatment_category"], rows["amount_cents"], strict=True
        )
    }


def counted(computation: object) -> dict[str, tuple[str, str]]:
    """entry_key → (deal_key, counted_by)."""
    frame = computation.deal_entries  # type: ignore[attr-defined]
    return {
        entry: (deal_key, how)
        for entry, deal_key, how in zip(
            frame["entry_key"], frame["deal_key"], frame["counted_by"], strict=True
        )
    }


def uncounted(computation: object) -> dict[str, str]:
    frame = computation.uncounted_entries  # type: ignore[attr-defined]
    return dict(zip(frame["entry_key"], frame["reason"], strict=True))


@pytest.mark.parametrize(
    ("name", "entry", "expected"),
    [
        ("linked to a completed treatment", E("MB_1", 48000, "MB_A2", "03-10"), ("MB_A1", "appointment")),
        ("linked to a completed lead", E("MB_1", 2500, "MB_A1", "03-01"), ("MB_A1", "appointment")),
        ("linked, dated outside the window", E("MB_1", 2500, "MB_A2", "04-30"), ("MB_A1", "appointment")),
        ("unlinked, inside the window", E("MB_1", 700, None, "03-05"), ("MB_A1", "window")),
        ("unlinked, first day of the window", E("MB_1", 700, None, "03-01"), ("MB_A1", "window")),
        ("unlinked, last day of the window", E("MB_1", 700, None, "03-10"), ("MB_A1", "window")),
        ("unlinked, before the window", E("MB_1", 700, None, "02-29"), "outside_deal_windows"),
        ("unlinked, the day after the last appointment", E("MB_1", 700, None, "03-11"), ("MB_A1", "window")),
        ("unlinked, last day of entry_grace_days", E("MB_1", 700, None, "04-09"), ("MB_A1", "window")),
        ("unlinked, after entry_grace_days", E("MB_1", 700, None, "04-10"), "outside_deal_windows"),
        ("linked to a booked appointment", E("MB_1", 700, "MB_A3", "03-10"), "appointment_not_completed"),
        ("linked to a cancelled appointment", E("MB_1", 700, "MB_A4", "03-10"), "appointment_not_completed"),
        ("linked to an ignore-type appointment", E("MB_1", 700, "MB_X1", "03-05"), "appointment_ignored"),
        ("linked to an unknown appointment", E("MB_1", 700, "MB_A99", "03-05"), "appointment_unknown"),
        ("not billable by its rule", E("MB_1", 700, "MB_A2", entry_type="bema", code="Ä1"), "not_billable"),
        ("no rule matches", E("MB_1", 700, "MB_A2", entry_type="lab", code="X"), "unmatched_rule"),
        ("text line", E("MB_1", 0, "MB_A2", entry_type="text", code="Befund"), "not_billable"),
    ],
)
def test_which_entries_count(name: str, entry: E, expected: tuple[str, str] | str) -> None:
    appointments = [
        *LEAD_AND_TREATMENT,
        A("MB_X1", "ignore", "03-05", "completed"),
        A("MB_A4", "treatment", "03-10", "cancelled", hour=10),
        A("MB_A3", "treatment", "03-10", "booked", hour=16),
    ]
    # A zero-amount GOZ line bills MB_A2 so that the deal is in treatment and the cancellation is no cut.
    computation = compute(appointments, [E("MB_0", 0, "MB_A2"), entry], as_of="03-10")
    assert members(computation) == {"MB_A1": ["MB_A1", "MB_A2", "MB_A4", "MB_A3"]}
    if isinstance(expected, tuple):
        assert counted(computation) == {"MB_0": ("MB_A1", "appointment"), "MB_1": expected}
        assert deal(computation, "MB_A1")["amount_cents"] == entry.amount_cents
    else:
        assert uncounted(computation) == {"MB_1": expected}
        assert deal(computation, "MB_A1")["amount_cents"] == 0


def test_only_completed_appointments_count() -> None:
    appointments = [
        A("MB_A1", "lead", "03-01", "completed"),
        A("MB_A4", "treatment", "03-05", "completed"),
        A("MB_A2", "treatment", "03-10", "no_show"),
        A("MB_A3", "treatment", "03-12", "arrived"),
    ]
    entries = [
        E("MB_1", 1000, "MB_A1", "03-01"),
        E("MB_4", 8000, "MB_A4", "03-05"),
        E("MB_2", 2000, "MB_A2", "03-10"),
        E("MB_3", 4000, "MB_A3", "03-12"),
    ]
    computation = compute(appointments, entries)
    assert deal(computation, "MB_A1")["amount_cents"] == 9000
    assert uncounted(computation) == {
        "MB_2": "appointment_not_completed",
        "MB_3": "appointment_not_completed",
    }


def test_entry_of_another_patients_appointment_is_not_counted() -> None:
    appointments = [
        A("MB_A1", "treatment", "03-01", "completed"),
        A("MB_B1", "treatment", "03-01", "completed", patient="MB_554"),
    ]
    entries = [E("MB_1", 1000, "MB_B1", "03-01")]  # says patient MB_553, links MB_554's appointment
    computation = compute(appointments, entries)
    assert uncounted(computation) == {"MB_1": "appointment_unknown"}
    assert computation.deals["amount_cents"].tolist() == [0, 0]


def test_the_window_ends_where_the_next_deal_begins() -> None:
    # MB_A3 comes after the rebooking window, so it opens a deal of its own while MB_A1's grace period
    # (60 days here) still runs: from MB_A3's first day on, unlinked entries are the new deal's.
    appointments = [
        A("MB_A1", "lead", "03-01", "completed"),
        A("MB_A2", "followup", "03-05", "no_show"),
        A("MB_A3", "lead", "04-10", "completed"),
    ]
    entries = [
        E("MB_1", 500, None, "03-03"),
        E("MB_2", 700, None, "04-09"),  # inside MB_A1's grace period, the day before MB_A3's deal begins
        E("MB_3", 3000, None, "04-10"),  # inside both grace periods: the deal that began wins
        E("MB_4", 90, None, "05-03"),  # still inside MB_A1's grace period, but MB_A3's deal runs
    ]
    computation = compute(appointments, entries, as_of="05-05", settings=DealSettings(entry_grace_days=60))
    assert members(computation) == {"MB_A1": ["MB_A1", "MB_A2"], "MB_A3": ["MB_A3"]}
    assert counted(computation) == {
        "MB_1": ("MB_A1", "window"),
        "MB_2": ("MB_A1", "window"),
        "MB_3": ("MB_A3", "window"),
        "MB_4": ("MB_A3", "window"),
    }
    assert deal(computation, "MB_A1")["amount_cents"] == 1200
    assert deal(computation, "MB_A3")["amount_cents"] == 3090


def test_touching_windows_give_the_unlinked_entry_to_the_later_deal() -> None:
    # The deal won at the end of its quiet period, and the next opens that very day; with no grace
    # period the two windows touch on that one day.
    appointments = [*LEAD_AND_TREATMENT, A("MB_A5", "lead", "05-09", "completed")]
    settings = DealSettings(entry_grace_days=0)
    computation = compute(
        appointments,
        [E("MB_0", 0, "MB_A2"), E("MB_1", 3000, None, "05-09"), E("MB_2", 500, None, "03-10")],
        as_of="05-10",
        settings=settings,
    )
    assert members(computation) == {"MB_A1": ["MB_A1", "MB_A2"], "MB_A5": ["MB_A5"]}
    assert counted(computation) == {
        "MB_0": ("MB_A1", "appointment"),
        "MB_1": ("MB_A5", "window"),
        "MB_2": ("MB_A1", "window"),
    }


@pytest.mark.parametrize(
    ("grace", "entry_day", "expected"),
    [
        (0, "03-10", ("MB_A1", "window")),
        (0, "03-11", "outside_deal_windows"),  # no grace: the old window, first to last appointment
        (10, "03-20", ("MB_A1", "window")),
        (10, "03-21", "outside_deal_windows"),
    ],
)
def test_configured_entry_grace_days(grace: int, entry_day: str, expected: tuple[str, str] | str) -> None:
    computation = compute(
        LEAD_AND_TREATMENT, [E("MB_1", 900, None, entry_day)], settings=DealSettings(entry_grace_days=grace)
    )
    if isinstance(expected, tuple):
        assert counted(computation) == {"MB_1": expected}
    else:
        assert uncounted(computation) == {"MB_1": expected}


def test_a_lab_bill_after_the_last_visit_counts_for_the_deal() -> None:
    # The r2 reason for the grace period: the lab bills weeks after the crown was fitted.
    entries = [
        E("MB_1", 48000, "MB_A2", "03-10"),
        E("MB_2", 35050, None, "04-02", entry_type="lab", code="L7"),
    ]
    computation = compute(LEAD_AND_TREATMENT, entries, as_of="04-05")
    assert deal(computation, "MB_A1")["amount_cents"] == 83050
    assert revenue(computation, "MB_A1") == {("goz", "Füllung"): 48000, ("labor", "Prothetik"): 35050}
    assert uncounted(computation) == {}


def test_an_entry_of_a_stale_appointment_is_not_completed_revenue() -> None:
    appointments = [*LEAD_AND_TREATMENT, A("MB_A3", "treatment", "03-12", "arrived")]
    computation = compute(appointments, [E("MB_1", 4000, "MB_A3", "03-12")], as_of="04-01")
    assert computation.deal_appointments.set_index("appointment_key").loc["MB_A3", "is_stale"]
    assert uncounted(computation) == {"MB_1": "appointment_not_completed"}
    assert computation.uncounted_entries["amount_cents"].tolist() == [4000]


def test_pabg_has_its_own_bucket_and_counts_once() -> None:
    entries = [
        E("MB_1", 48000, "MB_A2", code="2060"),
        E("MB_2", 12050, "MB_A2", entry_type="pabg", code="2060"),
        E("MB_3", 1999, "MB_A2", entry_type="mat", code="M1"),
    ]
    computation = compute(LEAD_AND_TREATMENT, entries)
    assert revenue(computation, "MB_A1") == {
        ("goz", "Füllung"): 48000,
        ("material", "Sonstiges"): 1999,
        ("pabg", "Sonstiges"): 12050,
    }
    assert deal(computation, "MB_A1")["amount_cents"] == 62049
    assert computation.deal_entries["entry_key"].tolist().count("MB_2") == 1


def test_treatment_category_is_the_one_with_most_revenue() -> None:
    entries = [
        E("MB_1", 30000, "MB_A2", code="2060"),  # Füllung
        E("MB_2", 25000, "MB_A2", code="3010"),  # Chirurgie
        E("MB_3", 10000, "MB_A2", entry_type="bema", code="13a"),  # Füllung (other bucket)
        E("MB_4", 50000, "MB_A2", code="9010"),  # Implantologie, but corrected below
        E("MB_5", -20000, "MB_A2", code="9010"),
    ]
    computation = compute(LEAD_AND_TREATMENT, entries)
    assert deal(computation, "MB_A1")["treatment_category"] == "Füllung"  # 40000 vs 30000 vs 25000
    assert deal(computation, "MB_A1")["amount_cents"] == 95000


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        ({"2060": 5000, "3010": 5000}, "Füllung"),  # tie: the order of SPEC §4, Füllung before Chirurgie
        ({"3010": 5000, "9010": 5000}, "Implantologie"),  # Implantologie before Chirurgie in §4
        ({"2060": -5000}, None),  # only a correction: no revenue
        ({"2060": 5000, "9010": -5000}, "Füllung"),
        ({}, None),
    ],
)
def test_treatment_category_tie_and_no_revenue(amounts: dict[str, int], expected: str | None) -> None:
    entries = [E(f"MB_{code}", amount, "MB_A2", code=code) for code, amount in amounts.items()]
    assert deal(compute(LEAD_AND_TREATMENT, entries), "MB_A1")["treatment_category"] == expected


def test_sums_are_exact_in_cents() -> None:
    cents = [10, 20, 1, 99_999_999, -3, 33_333, 7]
    entries = [E(f"MB_{index}", amount, "MB_A2", code="2060") for index, amount in enumerate(cents)]
    entries.append(E("MB_p", 5, "MB_A2", entry_type="pabg"))
    computation = compute(LEAD_AND_TREATMENT, entries)
    assert deal(computation, "MB_A1")["amount_cents"] == sum(cents) + 5
    assert computation.deal_revenue["amount_cents"].sum() == sum(cents) + 5
    assert computation.deals["amount_cents"].dtype == "int64"
    assert computation.deal_revenue["amount_cents"].dtype == "int64"


def test_corrections_add_up_to_zero() -> None:
    entries = [E("MB_1", 48000, "MB_A2"), E("MB_2", -48000, "MB_A2")]
    computation = compute(LEAD_AND_TREATMENT, entries)
    assert deal(computation, "MB_A1")["amount_cents"] == 0
    assert revenue(computation, "MB_A1") == {("goz", "Füllung"): 0}
    assert deal(computation, "MB_A1")["stage"] == "in_behandlung"  # billable by rule, whatever the amount


def test_revenue_stays_with_its_deal_across_journeys() -> None:
    appointments = [
        *LEAD_AND_TREATMENT,
        A("MB_A5", "lead", "06-01", "completed"),
        A("MB_A6", "treatment", "06-10", "completed"),
    ]
    entries = [
        E("MB_1", 48000, "MB_A2", "03-10"),
        E("MB_2", 12000, "MB_A6", "06-10"),
        E("MB_3", 100, None, "06-05"),
    ]
    computation = compute(appointments, entries, as_of="06-15")
    assert deal(computation, "MB_A1")["amount_cents"] == 48000
    assert deal(computation, "MB_A5")["amount_cents"] == 12100
    assert deal(computation, "MB_A1")["stage"] == "abgeschlossen"


def test_every_entry_is_either_counted_once_or_reported() -> None:
    entries = [
        E("MB_1", 100, "MB_A2"),
        E("MB_2", 100, None, "03-05"),
        E("MB_3", 100, None, "01-05"),
        E("MB_4", 100, "MB_A2", entry_type="lab", code="X"),
    ]
    computation = compute(LEAD_AND_TREATMENT, entries)
    assert sorted([*counted(computation), *uncounted(computation)]) == ["MB_1", "MB_2", "MB_3", "MB_4"]


def test_entries_of_a_patient_without_appointments_are_reported() -> None:
    computation = compute([], [E("MB_1", 100, None, "03-05")])
    assert computation.deals.empty
    assert uncounted(computation) == {"MB_1": "outside_deal_windows"}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (entries_frame([E("MB_1", 100)]).astype({"amount_cents": "float64"}), "integer cents"),
        (entries_frame([E("MB_1", 100), E("MB_1", 100)]), "duplicate entry_key"),
        (
            entries_frame([E("MB_1", 100)]).astype({"amount_cents": "Int64"}).assign(amount_cents=pd.NA),
            "missing",
        ),
        (entries_frame([E("MB_1", 100)]).assign(entry_date=None), "entry_date has missing values"),
    ],
)
def test_rejects_entries_outside_the_contract(entries: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_deals(
            appointments_frame(LEAD_AND_TREATMENT),
            classify_entries(entries, RULES),
            DealSettings(),
            day("03-15"),
        )


def test_requires_classified_entries() -> None:
    with pytest.raises(ValueError, match="classify_entries"):
        compute_deals(
            appointments_frame(LEAD_AND_TREATMENT),
            entries_frame([E("MB_1", 1)]),
            DealSettings(),
            day("03-15"),
        )


def test_entry_dates_may_be_timestamps() -> None:
    entries = entries_frame([E("MB_1", 700, None, "03-05")])
    entries["entry_date"] = pd.to_datetime(entries["entry_date"])
    computation = compute_deals(
        appointments_frame(LEAD_AND_TREATMENT), classify_entries(entries, RULES), DealSettings(), day("03-15")
    )
    assert computation.deal_entries["entry_date"].tolist() == [day("03-05")]
