"""KPI definitions (biss_pipeline.domain.kpi.metrics) on hand-built frames: each definition, period
boundaries, zero denominators, exact revenue."""

from __future__ import annotations

import random
from datetime import date, datetime

import pandas as pd
import pytest

from biss_pipeline.domain.kpi import metrics as kpi

D = date.fromisoformat


def appointments(*rows: tuple[str, str, str] | tuple[str, str, str, str]) -> pd.DataFrame:
    """(key, 'YYYY-MM-DDTHH:MM', status[, practice]) → the current-appointments frame."""
    records = []
    for row in rows:
        key, start, status, practice = (*row, "mb") if len(row) == 3 else row
        records.append(
            {"practice_id": practice, "appointment_key": key, "start": pd.Timestamp(start), "status": status}
        )
    return pd.DataFrame(records, columns=list(kpi.APPOINTMENT_INPUT))


def members_of(frame: pd.DataFrame) -> pd.DataFrame:
    """Every appointment its own deal (membership matters only for the blocker filter)."""
    return pd.DataFrame(
        {
            "practice_id": frame["practice_id"],
            "deal_key": frame["appointment_key"],
            "appointment_key": frame["appointment_key"],
        },
        columns=list(kpi.DEAL_APPOINTMENT_INPUT),
    )


def row(table: pd.DataFrame, grain: str, start: str, practice: str = "mb", **extra: str) -> dict:
    selected = table.loc[
        (table["grain"] == grain) & (table["period_start"] == D(start)) & (table["practice_id"] == practice)
    ]
    for column, value in extra.items():
        selected = selected.loc[selected[column] == value]
    assert len(selected) == 1, f"expected one {grain} row for {start}, found {len(selected)}"
    return kpi.records(selected)[0]


# --- periods ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "grain", "start", "end"),
    [
        ("2026-03-04", "day", "2026-03-04", "2026-03-04"),
        ("2026-03-02", "week", "2026-03-02", "2026-03-08"),  # a Monday starts its own week
        ("2026-03-08", "week", "2026-03-02", "2026-03-08"),  # a Sunday ends it
        ("2026-03-09", "week", "2026-03-09", "2026-03-15"),
        ("2026-01-01", "week", "2025-12-29", "2026-01-04"),  # ISO week 2026-W01 starts in December
        ("2025-12-31", "month", "2025-12-01", "2025-12-31"),
        ("2026-01-01", "month", "2026-01-01", "2026-01-31"),
        ("2024-02-29", "month", "2024-02-01", "2024-02-29"),  # leap year
        ("2026-02-28", "month", "2026-02-01", "2026-02-28"),
    ],
)
def test_period_bounds(day: str, grain: str, start: str, end: str) -> None:
    starts = kpi.period_starts(pd.Series([D(day)]), grain)
    assert starts.dt.date.tolist() == [D(start)]
    assert kpi.period_ends(starts, grain).dt.date.tolist() == [D(end)]


def test_an_unknown_grain_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown grain 'year'"):
        kpi.period_starts(pd.Series([D("2026-03-04")]), "year")


@pytest.mark.parametrize(
    ("as_of", "monday", "sunday"),
    [
        ("2026-03-02", "2026-02-23", "2026-03-01"),  # Monday: the week that just ended
        ("2026-03-08", "2026-02-23", "2026-03-01"),  # Sunday: its own week is not full until it ends
        ("2026-03-09", "2026-03-02", "2026-03-08"),
        ("2026-01-02", "2025-12-22", "2025-12-28"),
    ],
)
def test_last_full_week(as_of: str, monday: str, sunday: str) -> None:
    assert kpi.last_full_week(D(as_of)) == (D(monday), D(sunday))


# --- appointments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected", "no_show_rate"),
    [
        (
            ["completed", "no_show"],
            {
                "scheduled": 2,
                "booked": 2,
                "completed": 1,
                "no_show": 1,
                "cancelled": 0,
                "clarified": 0,
                "pending": 0,
            },
            0.5,
        ),
        (
            ["cancelled"],
            {
                "scheduled": 1,
                "booked": 0,
                "completed": 0,
                "no_show": 0,
                "cancelled": 1,
                "clarified": 0,
                "pending": 0,
            },
            None,
        ),  # nothing settled: no rate, not a division error
        (
            ["booked", "confirmed", "arrived"],
            {
                "scheduled": 3,
                "booked": 3,
                "completed": 0,
                "no_show": 0,
                "cancelled": 0,
                "clarified": 0,
                "pending": 3,
            },
            None,
        ),
        (
            ["clarified", "completed", "cancelled"],
            {
                "scheduled": 3,
                "booked": 2,
                "completed": 1,
                "no_show": 0,
                "cancelled": 1,
                "clarified": 1,
                "pending": 0,
            },
            0.0,
        ),
        (
            ["no_show", "no_show", "completed", "completed", "completed"],
            {
                "scheduled": 5,
                "booked": 5,
                "completed": 3,
                "no_show": 2,
                "cancelled": 0,
                "clarified": 0,
                "pending": 0,
            },
            0.4,
        ),
        (
            sorted(kpi.APPOINTMENT_STATUSES),
            {
                "scheduled": 7,
                "booked": 6,
                "completed": 1,
                "no_show": 1,
                "cancelled": 1,
                "clarified": 1,
                "pending": 3,
            },
            0.5,
        ),
    ],
)
def test_appointment_counts_and_no_show_rate(
    statuses: list[str], expected: dict[str, int], no_show_rate: float | None
) -> None:
    frame = appointments(*((f"MB_{i}", f"2026-03-04T{8 + i:02d}:00", s) for i, s in enumerate(statuses)))
    table = kpi.appointment_kpis(frame)
    for grain, start in (("day", "2026-03-04"), ("week", "2026-03-02"), ("month", "2026-03-01")):
        got = row(table, grain, start)
        assert {k: got[k] for k in expected} == expected
        assert got["no_show_rate"] == no_show_rate
        assert got["scheduled"] == sum(
            got[k] for k in ("completed", "cancelled", "no_show", "clarified", "pending")
        )


def test_week_and_month_boundaries() -> None:
    table = kpi.appointment_kpis(
        appointments(
            ("MB_1", "2026-03-08T23:30", "completed"),  # Sunday night: week of 03-02
            ("MB_2", "2026-03-09T00:00", "completed"),  # Monday midnight: next week
            ("MB_3", "2026-01-31T10:00", "completed"),  # Saturday, January ...
            ("MB_4", "2026-02-01T10:00", "no_show"),  # ... Sunday, February: same ISO week
        )
    )
    assert row(table, "week", "2026-03-02")["completed"] == 1
    assert row(table, "week", "2026-03-09")["completed"] == 1
    assert (
        row(table, "week", "2026-01-26")["completed"] == 1
        and row(table, "week", "2026-01-26")["no_show"] == 1
    )
    assert (
        row(table, "month", "2026-01-01")["completed"] == 1
        and row(table, "month", "2026-01-01")["no_show"] == 0
    )
    assert row(table, "month", "2026-02-01")["no_show"] == 1
    assert row(table, "month", "2026-03-01")["completed"] == 2
    assert row(table, "month", "2026-02-01")["period_end"] == D("2026-02-28")


def test_quiet_periods_are_zero_rows_not_gaps() -> None:
    table = kpi.appointment_kpis(
        appointments(("MB_1", "2026-03-02T09:00", "completed"), ("MB_2", "2026-03-20T09:00", "completed"))
    )
    weeks = table.loc[table["grain"] == "week"]
    assert weeks["period_start"].tolist() == [D("2026-03-02"), D("2026-03-09"), D("2026-03-16")]
    assert weeks["completed"].tolist() == [1, 0, 1]
    assert pd.isna(row(table, "week", "2026-03-09")["no_show_rate"])
    assert len(table.loc[table["grain"] == "day"]) == 19  # 03-02 .. 03-20


def test_practices_are_separate_and_the_order_is_deterministic() -> None:
    rows = [
        (f"X_{i}", f"2026-0{1 + i % 3}-{1 + i % 27:02d}T09:00", status, practice)
        for i, (status, practice) in enumerate(
            [(s, p) for s in ("completed", "no_show", "cancelled", "booked") for p in ("rb", "mb", "le")] * 4
        )
    ]
    table = kpi.appointment_kpis(appointments(*rows))
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    pd.testing.assert_frame_equal(kpi.appointment_kpis(appointments(*shuffled)), table)
    assert table["practice_id"].tolist() == sorted(table["practice_id"])
    for practice in ("le", "mb", "rb"):
        mine = table.loc[table["practice_id"] == practice]
        assert mine["grain"].drop_duplicates().tolist() == ["day", "week", "month"]
        for grain in kpi.GRAINS:
            starts = mine.loc[mine["grain"] == grain, "period_start"].tolist()
            assert starts == sorted(starts)
        assert mine.loc[mine["grain"] == "month", "scheduled"].sum() == 16


def test_only_patient_appointments_count() -> None:
    frame = appointments(
        ("MB_1", "2026-03-04T09:00", "completed"),
        ("MB_BLOCK", "2026-03-04T12:00", "completed"),
        ("RB_1", "2026-03-04T09:00", "completed", "rb"),
    )
    deal_members = members_of(frame.loc[frame["appointment_key"] != "MB_BLOCK"])
    assert kpi.patient_appointments(frame, deal_members)["appointment_key"].tolist() == ["MB_1", "RB_1"]
    # the same key at another practice is another appointment
    other = members_of(frame.loc[frame["appointment_key"] == "MB_1"]).assign(practice_id="rb")
    assert kpi.patient_appointments(frame, other).empty


def test_unknown_statuses_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown status: rescheduled"):
        kpi.appointment_kpis(appointments(("MB_1", "2026-03-04T09:00", "rescheduled")))


def test_the_same_appointment_twice_is_refused() -> None:
    frame = appointments(("MB_1", "2026-03-04T09:00", "booked"), ("MB_1", "2026-03-05T09:00", "completed"))
    with pytest.raises(ValueError, match="newest_rows"):
        kpi.compute_kpis(frame, empty_deals(), members_of(frame), empty_entries())


# --- deals -----------------------------------------------------------------------------------------


def deals(*rows: tuple[str, str, str, str | None, str | None]) -> pd.DataFrame:
    """(key, stage, first appointment date, behandlungsstart, closed date) at practice mb."""
    return pd.DataFrame(
        [
            {
                "practice_id": "mb",
                "deal_key": key,
                "stage": stage,
                "first_appointment_date": D(opened),
                "behandlungsstart": D(started) if started else None,
                "closed_date": D(closed) if closed else None,
            }
            for key, stage, opened, started, closed in rows
        ],
        columns=list(kpi.DEAL_INPUT),
    )


def empty_deals() -> pd.DataFrame:
    return pd.DataFrame(columns=list(kpi.DEAL_INPUT))


def empty_entries() -> pd.DataFrame:
    return pd.DataFrame(columns=list(kpi.ENTRY_INPUT))


@pytest.mark.parametrize(
    ("stage", "statuses", "erstberatung", "behandlung"),
    [
        ("termin_gebucht", ["booked"], False, False),
        ("erstberatung", ["completed"], True, False),
        ("erstberatung", ["completed", "booked"], True, False),
        ("in_behandlung", ["completed", "completed"], True, True),
        ("abgeschlossen", ["completed", "completed"], True, True),
        ("verloren", ["cancelled"], False, False),  # lost before the consultation
        ("verloren", ["no_show"], False, False),
        ("verloren", ["completed", "no_show"], True, False),  # lost after it
    ],
)
def test_deal_milestones(stage: str, statuses: list[str], erstberatung: bool, behandlung: bool) -> None:
    frame = appointments(*((f"MB_{i}", f"2026-03-0{2 + i}T09:00", s) for i, s in enumerate(statuses)))
    membership = members_of(frame).assign(deal_key="MB_0")
    result = kpi.deal_milestones(deals(("MB_0", stage, "2026-03-02", None, None)), membership, frame)
    assert result[["reached_erstberatung", "reached_behandlung"]].iloc[0].tolist() == [
        erstberatung,
        behandlung,
    ]


def deal_scenario() -> pd.DataFrame:
    frame = deals(
        ("MB_1", "erstberatung", "2026-03-02", None, None),
        ("MB_2", "in_behandlung", "2026-03-03", "2026-03-10", None),
        ("MB_3", "abgeschlossen", "2026-03-04", "2026-03-05", "2026-05-10"),
        ("MB_4", "verloren", "2026-03-05", None, "2026-03-20"),  # after a completed consultation
        ("MB_5", "verloren", "2026-03-06", None, "2026-03-06"),  # cancelled the first appointment
        ("MB_6", "termin_gebucht", "2026-03-07", None, None),
    )
    reached = {"MB_1", "MB_2", "MB_3", "MB_4"}
    return frame.assign(
        reached_erstberatung=frame["deal_key"].isin(reached),
        reached_behandlung=frame["deal_key"].isin({"MB_2", "MB_3"}),
        lost_reason=frame["deal_key"].map({"MB_4": "inactive", "MB_5": "cancelled"}),
        reopened_count=frame["deal_key"].map({"MB_2": 1, "MB_6": 2}).fillna(0).astype(int),
    )


@pytest.mark.parametrize(
    ("grain", "start", "expected"),
    [
        (
            "week",
            "2026-03-02",
            {
                "deals_opened": 6,
                "deals_won": 0,
                "deals_lost": 1,
                "cohort_erstberatung": 4,
                "cohort_behandlung": 2,
                "conversion_rate": 0.5,
                "treatments_started": 1,
                "treatments_completed": 1,
                "treatment_completion_rate": 1.0,
            },
        ),
        (
            "week",
            "2026-03-09",
            {
                "deals_opened": 0,
                "deals_won": 0,
                "deals_lost": 0,
                "cohort_erstberatung": 0,
                "cohort_behandlung": 0,
                "conversion_rate": None,
                "treatments_started": 1,
                "treatments_completed": 0,
                "treatment_completion_rate": 0.0,
            },
        ),
        (
            "week",
            "2026-03-16",
            {"deals_opened": 0, "deals_lost": 1, "conversion_rate": None, "treatment_completion_rate": None},
        ),
        ("week", "2026-05-04", {"deals_won": 1, "deals_lost": 0}),
        (
            "day",
            "2026-03-06",
            {"deals_opened": 1, "deals_lost": 1, "cohort_erstberatung": 0, "conversion_rate": None},
        ),
        (
            "month",
            "2026-03-01",
            {
                "deals_opened": 6,
                "deals_won": 0,
                "deals_lost": 2,
                "cohort_erstberatung": 4,
                "cohort_behandlung": 2,
                "conversion_rate": 0.5,
                "treatments_started": 2,
                "treatments_completed": 1,
                "treatment_completion_rate": 0.5,
            },
        ),
        (
            "month",
            "2026-04-01",
            {"deals_opened": 0, "deals_won": 0, "deals_lost": 0, "conversion_rate": None},
        ),
        ("month", "2026-05-01", {"deals_won": 1, "deals_opened": 0}),
    ],
)
def test_deal_kpis(grain: str, start: str, expected: dict[str, object]) -> None:
    got = row(kpi.deal_kpis(deal_scenario()), grain, start)
    assert {k: got[k] for k in expected} == expected


def test_deal_kpis_by_grain_add_up() -> None:
    table = kpi.deal_kpis(deal_scenario())
    for grain in kpi.GRAINS:
        totals = table.loc[table["grain"] == grain, list(kpi.DEAL_COUNTS)].sum()
        assert totals.to_dict() == {
            "deals_opened": 6,
            "deals_won": 1,
            "deals_lost": 2,
            "cohort_erstberatung": 4,
            "cohort_behandlung": 2,
            "treatments_started": 2,
            "treatments_completed": 1,
            "lost_cancelled": 1,
            "lost_no_show": 0,
            "lost_clarified": 0,
            "lost_inactive": 1,
            "deals_reopened": 2,
        }


def test_lost_deals_by_reason_by_closing_date_and_reopened_by_opening_date() -> None:
    table = kpi.deal_kpis(deal_scenario())
    wanted = ("deals_lost", "lost_inactive", "lost_cancelled")
    assert {k: row(table, "day", "2026-03-20")[k] for k in wanted} == {
        "deals_lost": 1, "lost_inactive": 1, "lost_cancelled": 0}
    assert {k: row(table, "day", "2026-03-06")[k] for k in wanted} == {
        "deals_lost": 1, "lost_inactive": 0, "lost_cancelled": 1}
    assert row(table, "day", "2026-03-03")["deals_reopened"] == 1
    assert row(table, "day", "2026-03-07")["deals_reopened"] == 1
    assert row(table, "day", "2026-03-04")["deals_reopened"] == 0


@pytest.mark.parametrize(
    ("stage", "lead_completed", "erstberatung", "behandlung"),
    [
        ("erstberatung", True, True, False),
        ("erstberatung", False, False, False),  # completed follow-ups only: no consultation converted
        ("in_behandlung", False, False, True),
        ("abgeschlossen", True, True, True),
        ("verloren", True, True, False),
    ],
)
def test_conversion_counts_deals_that_reached_erstberatung_by_a_lead(
    stage: str, lead_completed: bool, erstberatung: bool, behandlung: bool
) -> None:
    frame = appointments(("MB_0", "2026-03-02T09:00", "completed"))
    membership = members_of(frame).assign(deal_key="MB_0")
    deal_frame = deals(("MB_0", stage, "2026-03-02", None, None)).assign(lead_completed=lead_completed)
    milestones = kpi.deal_milestones(deal_frame, membership, frame)
    assert milestones[["reached_erstberatung", "reached_behandlung"]].iloc[0].tolist() == [
        erstberatung, behandlung]
    week = row(kpi.deal_kpis(milestones), "week", "2026-03-02")
    # cohort_behandlung is a subset of cohort_erstberatung: a treatment without a consultation is not a
    # conversion
    assert (week["cohort_erstberatung"], week["cohort_behandlung"]) == (
        int(erstberatung), int(erstberatung and behandlung))


def test_uncounted_revenue_per_period_and_reason() -> None:
    lines = pd.DataFrame(
        [
            {"practice_id": "mb", "entry_date": D("2026-03-02"), "reason": "appointment_not_completed",
             "amount_cents": 48000},
            {"practice_id": "mb", "entry_date": D("2026-03-04"), "reason": "appointment_not_completed",
             "amount_cents": -1000},
            {"practice_id": "mb", "entry_date": D("2026-03-09"), "reason": "outside_deal_windows",
             "amount_cents": 12345},
            {"practice_id": "rb", "entry_date": D("2026-03-02"), "reason": "outside_deal_windows",
             "amount_cents": 500},
        ]
    )
    table = kpi.uncounted_kpis(lines)
    assert row(table, "week", "2026-03-02", reason="appointment_not_completed")["amount_cents"] == 47000
    assert row(table, "week", "2026-03-02", reason="appointment_not_completed")["entries"] == 2
    assert row(table, "month", "2026-03-01", reason="outside_deal_windows")["amount_cents"] == 12345
    rb = row(table, "month", "2026-03-01", practice="rb", reason="outside_deal_windows")
    assert rb["amount_cents"] == 500
    for grain in kpi.GRAINS:
        assert table.loc[table["grain"] == grain, "amount_cents"].sum() == 47000 + 12345 + 500
    assert list(table.columns) == list(kpi.UNCOUNTED_KPI_COLUMNS)


# --- revenue ---------------------------------------------------------------------------------------


def entries(*rows: tuple[str, str | None, int] | tuple[str, str | None, int, str]) -> pd.DataFrame:
    """(entry date, category, cents[, practice])."""
    records = []
    for entry in rows:
        on, category, cents, practice = (*entry, "mb") if len(entry) == 3 else entry
        records.append(
            {
                "practice_id": practice,
                "entry_date": D(on),
                "treatment_category": category,
                "amount_cents": cents,
            }
        )
    return pd.DataFrame(records, columns=list(kpi.ENTRY_INPUT))


def test_revenue_by_category_and_period() -> None:
    table = kpi.revenue_kpis(
        entries(
            ("2026-01-31", "Füllung", 48000),
            ("2026-01-31", "Füllung", -2000),  # a correction
            ("2026-02-01", "Füllung", 12000),
            ("2026-02-01", "Prophylaxe", 9999),
            ("2026-02-01", "Prophylaxe", 1, "rb"),
        )
    )
    assert row(table, "day", "2026-01-31", treatment_category="Füllung") == {
        "practice_id": "mb",
        "grain": "day",
        "period_start": D("2026-01-31"),
        "period_end": D("2026-01-31"),
        "treatment_category": "Füllung",
        "entries": 2,
        "amount_cents": 46000,
    }
    assert row(table, "week", "2026-01-26", treatment_category="Füllung")["amount_cents"] == 58000
    assert row(table, "month", "2026-01-01", treatment_category="Füllung")["amount_cents"] == 46000
    assert row(table, "month", "2026-02-01", treatment_category="Füllung")["amount_cents"] == 12000
    assert row(table, "month", "2026-02-01", treatment_category="Prophylaxe")["amount_cents"] == 9999
    assert row(table, "month", "2026-02-01", "rb", treatment_category="Prophylaxe")["amount_cents"] == 1
    # no zero rows for categories without billing lines
    assert not (
        (table["practice_id"] == "mb")
        & (table["period_start"] == D("2026-01-31"))
        & (table["treatment_category"] == "Prophylaxe")
    ).any()


def test_revenue_adds_up_exactly_to_the_billing_lines() -> None:
    rng = random.Random(11)
    categories = ["Prophylaxe", "Füllung", "Endodontie", "Prothetik", "Implantologie", None]
    lines = [
        (
            f"2025-{rng.randint(10, 12)}-{rng.randint(1, 28):02d}",
            rng.choice(categories),
            rng.randint(-50_000, 400_000),
            rng.choice(["mb", "rb"]),
        )
        for _ in range(500)
    ]
    # beyond float precision: a float sum would lose the last cent
    lines += [("2025-11-03", "Prothetik", 2**53 + 1, "mb"), ("2025-11-03", "Prothetik", 1, "mb")]
    frame = entries(*lines)
    # the warehouse hands back Python ints in an object column
    frame["amount_cents"] = frame["amount_cents"].astype(object)
    table = kpi.revenue_kpis(frame)
    total = sum(cents for _, _, cents, _ in lines)
    for grain in kpi.GRAINS:
        mine = table.loc[table["grain"] == grain]
        assert sum(int(v) for v in mine["amount_cents"]) == total
        assert int(mine["entries"].sum()) == len(lines)
        for practice in ("mb", "rb"):
            expected = sum(c for _, _, c, p in lines if p == practice)
            assert sum(int(v) for v in mine.loc[mine["practice_id"] == practice, "amount_cents"]) == expected
    assert row(table, "day", "2025-11-03", treatment_category="Prothetik")["amount_cents"] >= 2**53 + 2
    assert kpi.NO_CATEGORY in set(table["treatment_category"])
    assert table["amount_cents"].dtype == "int64"


def test_per_period_categories_add_up_to_that_periods_lines() -> None:
    lines = [
        ("2026-03-02", "Füllung", 100),
        ("2026-03-08", "Prophylaxe", 250),
        ("2026-03-09", "Füllung", 7),
        ("2026-03-31", "KFO", -40),
        ("2026-04-01", "KFO", 1000),
    ]
    table = kpi.revenue_kpis(entries(*lines))
    weeks = table.loc[table["grain"] == "week"].groupby("period_start")["amount_cents"].sum().to_dict()
    assert weeks == {D("2026-03-02"): 350, D("2026-03-09"): 7, D("2026-03-30"): 960}
    months = table.loc[table["grain"] == "month"].groupby("period_start")["amount_cents"].sum().to_dict()
    assert months == {D("2026-03-01"): 317, D("2026-04-01"): 1000}


# --- empty inputs, all together, headline ---------------------------------------------------------


def test_empty_inputs_give_empty_tables() -> None:
    tables = kpi.compute_kpis(
        pd.DataFrame(columns=list(kpi.APPOINTMENT_INPUT)),
        empty_deals(),
        pd.DataFrame(columns=list(kpi.DEAL_APPOINTMENT_INPUT)),
        empty_entries(),
    )
    assert tables.appointments.columns.tolist() == list(kpi.APPOINTMENT_KPI_COLUMNS)
    assert tables.deals.columns.tolist() == list(kpi.DEAL_KPI_COLUMNS)
    assert tables.revenue.columns.tolist() == list(kpi.REVENUE_KPI_COLUMNS)
    assert tables.appointments.empty and tables.deals.empty and tables.revenue.empty
    assert kpi.concat_tables([]).deals.empty


def test_open_deals_without_closing_dates_count_only_as_opened() -> None:
    table = kpi.deal_kpis(
        deals(("MB_1", "termin_gebucht", "2026-03-02", None, None)).assign(
            reached_erstberatung=False, reached_behandlung=False
        )
    )
    assert kpi.records(table.loc[table["grain"] == "month"]) == [
        {
            "practice_id": "mb",
            "grain": "month",
            "period_start": D("2026-03-01"),
            "period_end": D("2026-03-31"),
            "deals_opened": 1,
            "deals_won": 0,
            "deals_lost": 0,
            "cohort_erstberatung": 0,
            "cohort_behandlung": 0,
            "conversion_rate": None,
            "treatments_started": 0,
            "treatments_completed": 0,
            "treatment_completion_rate": None,
            "lost_cancelled": 0,
            "lost_no_show": 0,
            "lost_clarified": 0,
            "lost_inactive": 0,
            "deals_reopened": 0,
        }
    ]


def scenario_tables() -> kpi.KpiTables:
    frame = appointments(
        ("MB_1", "2026-03-02T09:00", "completed"),
        ("MB_2", "2026-03-05T10:00", "completed"),
        ("MB_3", "2026-03-04T11:00", "no_show"),
        ("MB_4", "2026-03-06T08:00", "cancelled"),
        ("MB_5", "2026-03-12T09:00", "booked"),
        ("RB_1", "2026-03-03T09:00", "completed", "rb"),
        ("LE_1", "2026-04-03T09:00", "completed", "le"),
    )
    membership = members_of(frame)
    membership.loc[membership["appointment_key"] == "MB_2", "deal_key"] = "MB_1"
    deal_frame = pd.concat(
        [
            deals(
                ("MB_1", "in_behandlung", "2026-03-02", "2026-03-05", None),
                ("MB_3", "verloren", "2026-03-04", None, "2026-03-04"),
                ("MB_4", "verloren", "2026-03-06", None, "2026-03-06"),
                ("MB_5", "termin_gebucht", "2026-03-12", None, None),
            ),
            deals(("RB_1", "erstberatung", "2026-03-03", None, None)).assign(practice_id="rb"),
        ],
        ignore_index=True,
    )
    lines = entries(
        ("2026-03-05", "Füllung", 48000),
        ("2026-03-05", "Sonstiges", 1250),
        ("2026-03-05", "Prophylaxe", -250),
        ("2026-03-03", "Prophylaxe", 3599, "rb"),
    )
    return kpi.compute_kpis(frame, deal_frame, membership, lines)


def test_week_headlines() -> None:
    headlines = kpi.week_headlines(scenario_tables(), D("2026-03-10"))
    assert [
        (h.practice_id, h.completed, h.no_show, h.no_show_rate, h.revenue_cents, h.deals_opened, h.deals_won)
        for h in headlines
    ] == [
        ("le", 0, 0, None, 0, 0, 0),  # no rows that week: zeros, not an error
        ("mb", 2, 1, 1 / 3, 49000, 3, 0),
        ("rb", 1, 0, 0.0, 3599, 1, 0),
    ]
    assert {(h.week_start, h.week_end) for h in headlines} == {(D("2026-03-02"), D("2026-03-08"))}
    lines = kpi.headline_lines(headlines)
    assert lines[0] == "Week 2026-W10 (02.03.–08.03.2026):"
    assert lines[2] == (
        "  mb: 2 appointments completed, no-show rate 33.3 %, revenue 490.00 EUR, 3 deals opened, 0 won"
    )
    assert kpi.headline_lines([]) == ["No KPI data yet."]


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "0.00 EUR"),
        (5, "0.05 EUR"),
        (-5, "-0.05 EUR"),
        (48000, "480.00 EUR"),
        (123456789, "1,234,567.89 EUR"),
        (2**53 + 1, "90,071,992,547,409.93 EUR"),
    ],
)
def test_format_eur(cents: int, text: str) -> None:
    assert kpi.format_eur(cents) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(None, "n/a"), (float("nan"), "n/a"), (0.0, "0.0 %"), (1 / 3, "33.3 %"), (1.0, "100.0 %")],
)
def test_format_rate(rate: float | None, text: str) -> None:
    assert kpi.format_rate(rate) == text


def test_records_are_plain_python_values() -> None:
    records = kpi.records(scenario_tables().appointments)
    assert records
    for record in records:
        assert type(record["scheduled"]) is int
        assert record["no_show_rate"] is None or type(record["no_show_rate"]) is float
        assert type(record["period_start"]) is date
    # and nothing in any table names a patient or an appointment
    tables = scenario_tables()
    for frame in (tables.appointments, tables.deals, tables.revenue):
        assert not any(
            str(value).startswith(("MB_", "RB_", "LE_")) for value in frame.astype(str).to_numpy().ravel()
        )


def test_start_times_may_be_datetimes_or_timestamps() -> None:
    frame = appointments(("MB_1", "2026-03-04T09:00", "completed"))
    as_datetime = frame.assign(start=[datetime(2026, 3, 4, 9)])
    pd.testing.assert_frame_equal(kpi.appointment_kpis(as_datetime), kpi.appointment_kpis(frame))


def test_pre_aggregated_billing_lines_give_the_same_revenue() -> None:
    from decimal import Decimal

    lines = entries(
        ("2026-03-02", "Füllung", 100),
        ("2026-03-02", "Füllung", 250),
        ("2026-03-03", None, -40),
        ("2026-03-03", None, 2**53 + 1),
    )
    daily = (
        lines.assign(treatment_category=lines["treatment_category"].fillna("<none>"))
        .groupby(["practice_id", "entry_date", "treatment_category"], as_index=False)
        .agg(amount_cents=("amount_cents", "sum"), entries=("amount_cents", "size"))
    )
    daily["treatment_category"] = daily["treatment_category"].replace("<none>", None)
    # PostgreSQL's SUM over BIGINT arrives as Decimal
    daily["amount_cents"] = [Decimal(int(v)) for v in daily["amount_cents"]]
    pd.testing.assert_frame_equal(kpi.revenue_kpis(daily), kpi.revenue_kpis(lines))


@pytest.mark.parametrize("column", ["entry_date", "amount_cents"])
def test_billing_lines_that_cannot_be_placed_stop_the_computation(column: str) -> None:
    lines = entries(("2026-03-02", "Füllung", 100)).astype(object)
    lines.loc[0, column] = None
    with pytest.raises(ValueError, match=f"missing {column}"):
        kpi.revenue_kpis(lines)


# --- chart series ----------------------------------------------------------------------------------


def test_a_week_never_extracted_is_a_gap_in_the_chart_not_a_zero() -> None:
    from biss_pipeline.domain.kpi.report import weekly_series

    # mb has appointments in the weeks of 2 and 16 March, nothing at all in the week of 9 March
    frame = appointments(("MB_1", "2026-03-03T09:00", "completed"), ("MB_2", "2026-03-17T09:00", "cancelled"))
    tables = kpi.KpiTables(
        appointments=kpi.appointment_kpis(kpi.patient_appointments(frame, members_of(frame))),
        deals=pd.DataFrame(columns=list(kpi.DEAL_KPI_COLUMNS)),
        revenue=kpi.revenue_kpis(pd.DataFrame(columns=list(kpi.ENTRY_INPUT))),
    )
    series = weekly_series(tables, [D("2026-03-02"), D("2026-03-09"), D("2026-03-16")])

    completed = series["completed"]["mb"].tolist()
    assert completed[0] == 1.0 and completed[2] == 0.0  # extracted weeks: counts, zero included
    assert pd.isna(completed[1])  # the week without any appointment row: no value
    revenue = series["revenue_cents"]["mb"].tolist()
    assert revenue[0] == 0.0 and revenue[2] == 0.0 and pd.isna(revenue[1])
