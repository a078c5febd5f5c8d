"""Contact roll-ups (SPEC §5, last bullet; choices in the contacts module docstring)."""

from __future__ import annotations

import pandas as pd
import pytest

from biss_pipeline.domain.deals import contact_rollups
from biss_pipeline.domain.deals.rules import DealComputation
from tests.logic.factories import A, E, appointments_frame, compute, day


def rollups(
    appointments: list[A], entries: list[E] | tuple[E, ...] = (), as_of: str = "03-15"
) -> pd.DataFrame:
    computation: DealComputation = compute(appointments, entries, as_of=as_of)
    return contact_rollups(
        appointments_frame(appointments), computation.deals, computation.deal_revenue, day(as_of)
    )


def only_row(frame: pd.DataFrame, patient_key: str = "MB_553") -> dict[str, object]:
    rows = frame.loc[frame["patient_key"] == patient_key]
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


@pytest.mark.parametrize(
    ("name", "appointments", "last", "next_"),
    [
        ("completed before as_of", [A("MB_A1", "lead", "03-01", "completed")], "03-01", None),
        ("arrived counts as taken place", [A("MB_A1", "lead", "03-15", "arrived")], "03-15", None),
        ("completed on as_of", [A("MB_A1", "lead", "03-15", "completed")], "03-15", None),
        ("booked on as_of is next", [A("MB_A1", "lead", "03-15", "booked")], None, "03-15"),
        ("confirmed later is next", [A("MB_A1", "lead", "04-01", "confirmed")], None, "04-01"),
        ("cancelled is neither", [A("MB_A1", "lead", "03-01", "cancelled")], None, None),
        ("no-show is neither", [A("MB_A1", "lead", "03-01", "no_show")], None, None),
        ("stale booking in the past is neither", [A("MB_A1", "lead", "03-01", "booked")], None, None),
        ("ignore-type appointments are left out", [A("MB_X1", "ignore", "03-01", "completed")], None, None),
        (
            "latest past and earliest future",
            [
                A("MB_A1", "lead", "02-01", "completed"),
                A("MB_A2", "treatment", "03-01", "completed"),
                A("MB_A3", "treatment", "03-10", "cancelled"),
                A("MB_A4", "treatment", "04-20", "booked"),
                A("MB_A5", "treatment", "04-10", "booked"),
                A("MB_A6", "treatment", "04-01", "cancelled"),
            ],
            "03-01",
            "04-10",
        ),
    ],
)
def test_last_and_next_appointment(
    name: str, appointments: list[A], last: str | None, next_: str | None
) -> None:
    row = only_row(rollups(appointments))
    assert row["last_appointment_date"] == (None if last is None else day(last))
    assert row["next_appointment_date"] == (None if next_ is None else day(next_))


def test_deal_counts_and_lifetime_revenue() -> None:
    appointments = [
        A("MB_A1", "lead", "01-01", "completed"),
        A("MB_A2", "treatment", "01-10", "completed"),  # won on 03-10
        A("MB_A3", "lead", "04-01", "cancelled"),  # lost
        A("MB_A5", "lead", "05-02", "completed"),  # 31 days after the cancellation: a new deal, no rebooking
        A("MB_A6", "treatment", "05-10", "completed"),  # open, in treatment
    ]
    entries = [
        E("MB_1", 48000, "MB_A2", "01-10"),
        E("MB_2", 1999, None, "01-05"),
        E("MB_3", 12001, "MB_A6", "05-10"),
        E("MB_4", 777, None, "06-30"),  # outside every window: no deal's, so not lifetime revenue
    ]
    row = only_row(rollups(appointments, entries, as_of="05-20"))
    assert {
        key: row[key] for key in ("practice_id", "num_deals", "num_open_deals", "lifetime_revenue_cents")
    } == {
        "practice_id": "mb",
        "num_deals": 3,
        "num_open_deals": 1,
        "lifetime_revenue_cents": 62000,
    }


def test_one_row_per_patient_sorted_and_typed() -> None:
    appointments = [
        A("RK_A1", "lead", "03-01", "completed", patient="RK_9", practice="rk"),
        A("MB_B1", "lead", "03-20", "booked", patient="MB_554"),
        A("MB_X1", "ignore", "03-01", "completed"),
        A("MB_A1", "lead", "03-01", "cancelled", patient="MB_1"),
    ]
    frame = rollups(appointments)
    assert list(zip(frame["practice_id"], frame["patient_key"], strict=True)) == [
        ("mb", "MB_1"),
        ("mb", "MB_553"),
        ("mb", "MB_554"),
        ("rk", "RK_9"),
    ]
    assert frame["num_open_deals"].tolist() == [0, 0, 1, 1]
    assert frame["num_deals"].tolist() == [1, 0, 1, 1]
    assert frame["lifetime_revenue_cents"].dtype == "int64"
    assert frame["num_open_deals"].dtype == "int64"


def test_empty_inputs() -> None:
    frame = rollups([])
    assert frame.empty
    assert list(frame.columns) == [
        "practice_id",
        "patient_key",
        "num_deals",
        "num_open_deals",
        "last_appointment_date",
        "next_appointment_date",
        "lifetime_revenue_cents",
    ]


def test_revenue_of_an_unknown_deal_is_an_error() -> None:
    computation = compute([A("MB_A1", "lead", "03-01", "completed")], [E("MB_1", 100, "MB_A1", "03-01")])
    with pytest.raises(ValueError, match="not in deals"):
        contact_rollups(
            appointments_frame([]), computation.deals.iloc[0:0], computation.deal_revenue, day("03-15")
        )
