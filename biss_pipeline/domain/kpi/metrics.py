"""KPIs per practice and period, replacing the hand-made Google Sheets reports (SPEC §6).

Pure functions over DataFrames (no Dagster, no database): the KPI asset reads the warehouse, calls
`compute_kpis` and writes the three tables below. Every figure is an aggregate; no patient key,
name or appointment id leaves this module.

Periods
-------
Every table has one row per practice, *grain* and period:

- `day`: one calendar day;
- `week`: an ISO week, Monday to Sunday, labelled by its Monday;
- `month`: a calendar month, labelled by its first day.

`period_start` and `period_end` (inclusive) bound the period. Dates are local dates in the
practice (appointment start times are Ivoris' local wall-clock times). `kpi_appointments` and
`kpi_deals` list every period from a practice's first to its last period with any event, with zeros
in between, so a quiet week shows as 0 rather than as a missing row; `kpi_revenue` has a row only
where a category had billing lines.

The figures describe the data as it stands now: a corrected appointment or a deal that moves back a
stage changes past periods on the next refresh (as it did in Ivoris). They are a snapshot, not a log.

Appointments (`kpi_appointments`)
---------------------------------
Counted: the current version of every patient appointment (the newest Ivoris modification wins),
in the period of the day it is *scheduled for* (Ivoris records no booking date). Patient appointments
are those that belong to a treatment journey; appointment types with the deal role `ignore`
(internal blockers) are not patient appointments and are left out.

| column        | definition                                                                        |
| ------------- | --------------------------------------------------------------------------------- |
| scheduled     | all appointments in the period, whatever their status                             |
| booked        | scheduled minus cancelled: every appointment that stayed in the calendar          |
|               | (booked, confirmed, arrived, completed, no-show, clarified)                       |
| completed     | status `completed`                                                                |
| cancelled     | status `cancelled`                                                                |
| no_show       | status `no_show`                                                                  |
| clarified     | status `clarified` (settled without a visit)                                      |
| pending       | status `booked`, `confirmed` or `arrived`: not final yet; in future periods these |
|               | are the bookings ahead                                                            |
| no_show_rate  | no_show / (completed + no_show): of the patients expected in the chair whose      |
|               | appointment is settled, the share who did not come. Cancelled and clarified       |
|               | appointments are not in it. Empty when completed + no_show is 0                   |

scheduled = completed + cancelled + no_show + clarified + pending, in every row.

Deals (`kpi_deals`), from the computed treatment journeys (see `biss_pipeline/domain/deals/rules.py`)
------------------------------------------------------------------------------------------------
A deal *reaches Erstberatung* when it is now in Erstberatung, In Behandlung or Abgeschlossen, or it
is Verloren after at least one of its appointments was completed (lost after the consultation).
It *reaches In Behandlung* when it is now In Behandlung or Abgeschlossen (a deal in treatment is
never lost). A deal without the date a figure counts it by (the deal rules always set it) is left out of
that figure.

| column                    | definition                                                            |
| ------------------------- | --------------------------------------------------------------------- |
| deals_opened              | deals by their first appointment's date (a deal opens with it; a      |
|                           | booked first appointment can lie in the future)                       |
| deals_won                 | deals now Abgeschlossen, by closing date (last appointment + the      |
|                           | quiet period)                                                         |
| deals_lost                | deals now Verloren, by closing date (the deciding appointment's date) |
| cohort_erstberatung       | deals opened in the period that reached Erstberatung                  |
| cohort_behandlung         | of those, the deals that reached In Behandlung                        |
| conversion_rate           | Erstberatung → Behandlung: cohort_behandlung / cohort_erstberatung,   |
|                           | for the deals *opened* in the period. Empty when no deal of the       |
|                           | period reached Erstberatung. Recent periods rise as treatments start  |
| treatments_started        | deals whose treatment began in the period (`behandlungsstart`: the    |
|                           | first completed, billed treatment appointment)                        |
| treatments_completed      | of those, the deals now Abgeschlossen                                 |
| treatment_completion_rate | treatments_completed / treatments_started, for the treatments that    |
|                           | *started* in the period. Empty when none started. Recent periods are  |
|                           | low by design: a treatment counts as completed only after the quiet   |
|                           | period without appointments (`close_after_days`)                      |
| lost_cancelled, lost_no_show, lost_clarified, lost_inactive | deals_lost split by `lost_reason`, by   |
|                           | closing date; they add up to deals_lost (r2)                          |
| deals_reopened            | deals a rebooking reopened (`reopened_count` > 0), by opening date     |

(r2) With `lead_completed` in the deals (the pipeline always has it), *reaches Erstberatung* for the
conversion means: one of the deal's `lead` appointments is completed. A journey of completed
follow-ups only is not a consultation that converted.

Uncounted revenue (`kpi_uncounted`, r2)
---------------------------------------
Billable entries counted for no deal (`uncounted_entries` without `not_billable`), per period of the
entry's date and `reason`: `entries` and exact `amount_cents`. So the euros a practice is not
crediting show per week and month, next to the revenue.

Revenue (`kpi_revenue`)
-----------------------
One row per period and treatment category with at least one billing line: the counted billing lines
(`deal_entries`: billable Ivoris document entries attributed to a deal by the revenue rules R1–R4) by
the entry's date and the *entry's own* treatment category (not the deal's main category).

| column             | definition                                                              |
| ------------------ | ----------------------------------------------------------------------- |
| entries            | number of billing lines                                                 |
| amount_cents       | exact sum of their amounts in euro cents, corrections (negative lines)  |
|                    | included                                                                |

For every practice and period, the categories add up exactly to the total of the counted billing
lines dated in that period. Billing lines counted for no deal (`uncounted_entries`) are not revenue
here. A line without a category (never produced by the current rules) is listed as `ohne Kategorie`;
a line without a date or amount stops the computation rather than go missing from the totals.

Headline
--------
For each practice, the last full ISO week before the week of the *as-of date*: completed
appointments, no-show rate, revenue, deals opened and won. The as-of date is given, never the wall
clock (the KPI asset uses the day of the newest Ivoris modification), so the headline of the same
data is always the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from biss_pipeline.domain.deals.rules import APPOINTMENT_STATUSES, PENDING_STATUSES, Stage

GRAINS: tuple[str, ...] = ("day", "week", "month")
_FREQUENCY: Mapping[str, str] = {"day": "D", "week": "W-MON", "month": "MS"}
_GRAIN_ORDER: Mapping[str, int] = {grain: i for i, grain in enumerate(GRAINS)}
PERIOD_COLUMNS: tuple[str, ...] = ("practice_id", "grain", "period_start", "period_end")
NO_CATEGORY = "ohne Kategorie"

APPOINTMENT_COUNTS: tuple[str, ...] = (
    "scheduled",
    "booked",
    "completed",
    "cancelled",
    "no_show",
    "clarified",
    "pending",
)
APPOINTMENT_KPI_COLUMNS: tuple[str, ...] = (*PERIOD_COLUMNS, *APPOINTMENT_COUNTS, "no_show_rate")
LOST_REASONS: tuple[str, ...] = ("cancelled", "no_show", "clarified", "inactive")
LOST_BY_REASON: tuple[str, ...] = tuple(f"lost_{reason}" for reason in LOST_REASONS)
DEAL_COUNTS: tuple[str, ...] = (
    "deals_opened",
    "deals_won",
    "deals_lost",
    "cohort_erstberatung",
    "cohort_behandlung",
    "treatments_started",
    "treatments_completed",
    *LOST_BY_REASON,
    "deals_reopened",
)
DEAL_KPI_COLUMNS: tuple[str, ...] = (
    *PERIOD_COLUMNS,
    "deals_opened",
    "deals_won",
    "deals_lost",
    "cohort_erstberatung",
    "cohort_behandlung",
    "conversion_rate",
    "treatments_started",
    "treatments_completed",
    "treatment_completion_rate",
    *LOST_BY_REASON,
    "deals_reopened",
)
REVENUE_KPI_COLUMNS: tuple[str, ...] = (*PERIOD_COLUMNS, "treatment_category", "entries", "amount_cents")

APPOINTMENT_INPUT: tuple[str, ...] = ("practice_id", "appointment_key", "start", "status")
DEAL_INPUT: tuple[str, ...] = (
    "practice_id",
    "deal_key",
    "stage",
    "first_appointment_date",
    "behandlungsstart",
    "closed_date",
)
DEAL_APPOINTMENT_INPUT: tuple[str, ...] = ("practice_id", "deal_key", "appointment_key")
# Optional deal columns of SPEC §5 r2; without them the r2 figures are 0 and the conversion cohort falls
# back to "any completed appointment".
DEAL_R2_INPUT: tuple[str, ...] = ("lost_reason", "reopened_count", "lead_completed")
ENTRY_INPUT: tuple[str, ...] = ("practice_id", "entry_date", "treatment_category", "amount_cents")
UNCOUNTED_INPUT: tuple[str, ...] = ("practice_id", "entry_date", "reason", "amount_cents")
UNCOUNTED_KPI_COLUMNS: tuple[str, ...] = (*PERIOD_COLUMNS, "reason", "entries", "amount_cents")

_REACHED_BEHANDLUNG = frozenset({Stage.IN_BEHANDLUNG.value, Stage.ABGESCHLOSSEN.value})
_REACHED_ERSTBERATUNG = frozenset({Stage.ERSTBERATUNG.value, *_REACHED_BEHANDLUNG})


def _empty_uncounted() -> pd.DataFrame:
    return _empty(UNCOUNTED_KPI_COLUMNS, ("entries", "amount_cents"))


@dataclass(frozen=True, eq=False)
class KpiTables:
    """The KPI tables, columns as in `*_KPI_COLUMNS`, sorted by practice, grain, period."""

    appointments: pd.DataFrame
    deals: pd.DataFrame
    revenue: pd.DataFrame
    uncounted: pd.DataFrame = field(default_factory=_empty_uncounted)


# --- periods ------------------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {', '.join(missing)}")


def _days(values: pd.Series) -> pd.Series:
    """Dates, datetimes or timestamps as midnight datetime64 values (missing → NaT)."""
    series = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series):
        series = pd.to_datetime(series.astype(object), errors="raise")
    return series.dt.normalize()


def period_starts(days: pd.Series, grain: str) -> pd.Series:
    """The first day of each day's period (datetime64, midnight)."""
    days = _days(days)
    if grain == "day":
        return days
    if grain == "week":
        return days - pd.to_timedelta(days.dt.day_of_week, unit="D")
    if grain == "month":
        return days - pd.to_timedelta(days.dt.day - 1, unit="D")
    raise ValueError(f"unknown grain {grain!r}; expected one of {', '.join(GRAINS)}")


def period_ends(starts: pd.Series, grain: str) -> pd.Series:
    """The last day (inclusive) of the periods starting on `starts`."""
    starts = _days(starts)
    if grain == "day":
        return starts
    if grain == "week":
        return starts + pd.Timedelta(days=6)
    if grain == "month":
        return starts + pd.offsets.MonthEnd(0)
    raise ValueError(f"unknown grain {grain!r}; expected one of {', '.join(GRAINS)}")


def last_full_week(as_of: date) -> tuple[date, date]:
    """Monday and Sunday of the last ISO week that ended before `as_of`'s week began."""
    monday = as_of - timedelta(days=as_of.weekday()) - timedelta(days=7)
    return monday, monday + timedelta(days=6)


def _with_period_bounds(frame: pd.DataFrame, grain: str) -> pd.DataFrame:
    starts = pd.to_datetime(frame["period_start"])
    return frame.assign(
        grain=grain, period_start=starts.dt.date, period_end=period_ends(starts, grain).dt.date
    )


def _sorted(frame: pd.DataFrame, columns: Sequence[str], extra_keys: Sequence[str] = ()) -> pd.DataFrame:
    """Deterministic order: practice, grain (day, week, month), period, then `extra_keys`."""
    order = frame.assign(_grain_order=frame["grain"].map(_GRAIN_ORDER))
    order = order.sort_values(["practice_id", "_grain_order", "period_start", *extra_keys], kind="stable")
    return order.loc[:, list(columns)].reset_index(drop=True)


def _empty(columns: Sequence[str], counts: Sequence[str], rates: Sequence[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    for column in counts:
        frame[column] = frame[column].astype("int64")
    for column in rates:
        frame[column] = frame[column].astype("float64")
    return frame


def _count_events(events: pd.DataFrame, measures: Sequence[str], grains: Sequence[str]) -> pd.DataFrame:
    """Count (practice_id, day, measure) events per period, every period from first to last.

    The result has the period columns and one int64 column per measure.
    """
    columns = [*PERIOD_COLUMNS, *measures]
    events = events.loc[events["day"].notna()]
    if events.empty:
        return _empty(columns, measures)
    tables = []
    for grain in grains:
        counts = (
            events.assign(period_start=period_starts(events["day"], grain))
            .groupby(["practice_id", "period_start", "measure"], sort=True)
            .size()
            .unstack("measure", fill_value=0)
            .reindex(columns=list(measures), fill_value=0)
        )
        bounds = counts.reset_index().groupby("practice_id", sort=True)["period_start"].agg(["min", "max"])
        calendar = pd.MultiIndex.from_tuples(
            [
                (practice, start)
                for practice, first, last in bounds.itertuples()
                for start in pd.date_range(first, last, freq=_FREQUENCY[grain])
            ],
            names=["practice_id", "period_start"],
        )
        counts = counts.reindex(calendar, fill_value=0).reset_index()
        counts.columns.name = None
        tables.append(_with_period_bounds(counts, grain))
    table = pd.concat(tables, ignore_index=True)
    table[list(measures)] = table[list(measures)].astype("int64")
    return table.loc[:, columns]


def _rate(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator as float, NaN (not an error) where the denominator is 0."""
    return numerator.astype("float64") / denominator.where(denominator > 0).astype("float64")


def _events(practice_ids: pd.Series, days: pd.Series, measure: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "practice_id": practice_ids.astype(str).to_numpy(),
            "day": _days(days).to_numpy(),
            "measure": measure,
        }
    )


# --- appointments ---------------------------------------------------------------------------------


def patient_appointments(appointments: pd.DataFrame, deal_appointments: pd.DataFrame) -> pd.DataFrame:
    """The appointments that belong to a treatment journey (all but `ignore` types, such as blockers)."""
    _require(appointments, ("practice_id", "appointment_key"), "appointments")
    _require(deal_appointments, DEAL_APPOINTMENT_INPUT, "deal_appointments")
    members = pd.MultiIndex.from_frame(deal_appointments[["practice_id", "appointment_key"]].astype(str))
    keys = pd.MultiIndex.from_frame(appointments[["practice_id", "appointment_key"]].astype(str))
    return appointments.loc[keys.isin(members)].reset_index(drop=True)


def appointment_kpis(appointments: pd.DataFrame, grains: Sequence[str] = GRAINS) -> pd.DataFrame:
    """`kpi_appointments` from the current appointments (one row per appointment)."""
    _require(appointments, APPOINTMENT_INPUT, "appointments")
    status = appointments["status"].astype(str)
    unknown = sorted(set(status) - APPOINTMENT_STATUSES)
    if unknown:
        raise ValueError(f"appointments with unknown status: {', '.join(unknown)}")
    practice, start = appointments["practice_id"], appointments["start"]
    selections = {
        "scheduled": pd.Series(True, index=appointments.index),
        "booked": status != "cancelled",
        "completed": status == "completed",
        "cancelled": status == "cancelled",
        "no_show": status == "no_show",
        "clarified": status == "clarified",
        "pending": status.isin(PENDING_STATUSES),
    }
    events = pd.concat(
        [_events(practice[chosen], start[chosen], measure) for measure, chosen in selections.items()],
        ignore_index=True,
    )
    table = _count_events(events, APPOINTMENT_COUNTS, grains)
    table["no_show_rate"] = _rate(table["no_show"], table["completed"] + table["no_show"])
    return _sorted(table, APPOINTMENT_KPI_COLUMNS)


# --- deals ----------------------------------------------------------------------------------------


def deal_milestones(
    deals: pd.DataFrame, deal_appointments: pd.DataFrame, appointments: pd.DataFrame
) -> pd.DataFrame:
    """`deals` plus the booleans `reached_erstberatung` and `reached_behandlung`.

    A lost deal's stage no longer says how far it got; its completed appointments do.
    """
    _require(deals, DEAL_INPUT, "deals")
    _require(deal_appointments, DEAL_APPOINTMENT_INPUT, "deal_appointments")
    _require(appointments, ("practice_id", "appointment_key", "status"), "appointments")
    completed = appointments.loc[appointments["status"] == "completed", ["practice_id", "appointment_key"]]
    with_completed = (
        deal_appointments[list(DEAL_APPOINTMENT_INPUT)]
        .astype(str)
        .merge(completed.astype(str), on=["practice_id", "appointment_key"])
    )
    deal_ids = pd.MultiIndex.from_frame(deals[["practice_id", "deal_key"]].astype(str))
    has_completed = deal_ids.isin(pd.MultiIndex.from_frame(with_completed[["practice_id", "deal_key"]]))
    stage = deals["stage"].astype(str)
    reached_behandlung = stage.isin(_REACHED_BEHANDLUNG)
    if "lead_completed" in deals.columns:
        # SPEC §5 r2 / issue 12: the conversion counts deals that reached stage 2 by a `lead` appointment
        # (a journey of follow-ups only is no consultation that converted).
        reached_erstberatung = deals["lead_completed"].fillna(False).astype(bool)
    else:
        reached_erstberatung = stage.isin(_REACHED_ERSTBERATUNG) | (
            (stage == Stage.VERLOREN.value) & has_completed
        )
    return deals.assign(
        reached_erstberatung=reached_erstberatung.to_numpy(dtype=bool),
        reached_behandlung=reached_behandlung.to_numpy(dtype=bool),
    )


def deal_kpis(deals: pd.DataFrame, grains: Sequence[str] = GRAINS) -> pd.DataFrame:
    """`kpi_deals` from deals with milestones (see `deal_milestones`)."""
    _require(deals, (*DEAL_INPUT, "reached_erstberatung", "reached_behandlung"), "deals")
    stage = deals["stage"].astype(str)
    practice = deals["practice_id"]
    won = stage == Stage.ABGESCHLOSSEN.value
    lost = stage == Stage.VERLOREN.value
    erstberatung = deals["reached_erstberatung"].astype(bool)
    behandlung = deals["reached_behandlung"].astype(bool)
    started = behandlung & deals["behandlungsstart"].notna()
    reason = (deals["lost_reason"] if "lost_reason" in deals.columns
              else pd.Series(None, index=deals.index, dtype=object)).astype(object)
    reopened = (pd.to_numeric(deals["reopened_count"]).fillna(0) > 0 if "reopened_count" in deals.columns
                else pd.Series(False, index=deals.index))
    opened_on, closed_on, started_on = (
        deals["first_appointment_date"],
        deals["closed_date"],
        deals["behandlungsstart"],
    )
    events = pd.concat(
        [
            _events(practice, opened_on, "deals_opened"),
            _events(practice[won], closed_on[won], "deals_won"),
            _events(practice[lost], closed_on[lost], "deals_lost"),
            _events(practice[erstberatung], opened_on[erstberatung], "cohort_erstberatung"),
            _events(practice[erstberatung & behandlung], opened_on[erstberatung & behandlung],
                    "cohort_behandlung"),
            _events(practice[started], started_on[started], "treatments_started"),
            _events(practice[started & won], started_on[started & won], "treatments_completed"),
            *(_events(practice[lost & (reason == r)], closed_on[lost & (reason == r)], f"lost_{r}")
              for r in LOST_REASONS),
            _events(practice[reopened], opened_on[reopened], "deals_reopened"),
        ],
        ignore_index=True,
    )
    table = _count_events(events, DEAL_COUNTS, grains)
    table["conversion_rate"] = _rate(table["cohort_behandlung"], table["cohort_erstberatung"])
    table["treatment_completion_rate"] = _rate(table["treatments_completed"], table["treatments_started"])
    return _sorted(table, DEAL_KPI_COLUMNS)


# --- revenue --------------------------------------------------------------------------------------


def revenue_kpis(deal_entries: pd.DataFrame, grains: Sequence[str] = GRAINS) -> pd.DataFrame:
    """`kpi_revenue` from the counted billing lines (`deal_entries`), exact integer cents.

    A row may stand for several lines of one day and category: then its `entries` column says how many
    and `amount_cents` is their sum (the KPI asset lets the database pre-aggregate millions of lines).
    """
    _require(deal_entries, ENTRY_INPUT, "deal_entries")
    for column in ("amount_cents", "entry_date"):
        if deal_entries[column].isna().any():
            # a line that cannot be placed would break "the categories add up to the billing lines"
            raise ValueError(f"deal_entries with a missing {column}")
    counts = (
        deal_entries["entries"] if "entries" in deal_entries.columns else pd.Series(1, deal_entries.index)
    )
    category = deal_entries["treatment_category"].astype(object)
    entries = pd.DataFrame(
        {
            "practice_id": deal_entries["practice_id"].astype(str).to_numpy(),
            "day": _days(deal_entries["entry_date"]).to_numpy(),
            "treatment_category": category.where(category.notna(), NO_CATEGORY).astype(str).to_numpy(),
            # via Python ints: an object column (ints, Decimals from PostgreSQL sums) must not pass
            # through float on its way to int64
            "entries": pd.Series([int(v) for v in counts], dtype="int64").to_numpy(),
            "amount_cents": pd.Series(
                [int(v) for v in deal_entries["amount_cents"]], dtype="int64"
            ).to_numpy(),
        }
    )
    if entries.empty:
        return _empty(REVENUE_KPI_COLUMNS, ("entries", "amount_cents"))
    tables = []
    for grain in grains:
        grouped = (
            entries.assign(period_start=period_starts(entries["day"], grain))
            .groupby(["practice_id", "period_start", "treatment_category"], sort=True)[
                ["entries", "amount_cents"]
            ]
            .sum()
            .reset_index()
        )
        tables.append(_with_period_bounds(grouped, grain))
    table = pd.concat(tables, ignore_index=True)
    table[["entries", "amount_cents"]] = table[["entries", "amount_cents"]].astype("int64")
    return _sorted(table, REVENUE_KPI_COLUMNS, ["treatment_category"])


def uncounted_kpis(uncounted: pd.DataFrame, grains: Sequence[str] = GRAINS) -> pd.DataFrame:
    """`kpi_uncounted`: billable entries counted for no deal per period (entry date) and reason, exact
    cents. Like `revenue_kpis`, a row may stand for several lines (`entries`). Lines without a date
    cannot be placed in a period and are left out here (the check on the deals counts them)."""
    _require(uncounted, UNCOUNTED_INPUT, "uncounted_entries")
    uncounted = uncounted.loc[uncounted["entry_date"].notna()]
    if uncounted.empty:
        return _empty_uncounted()
    counts = uncounted["entries"] if "entries" in uncounted.columns else pd.Series(1, uncounted.index)
    lines = pd.DataFrame(
        {
            "practice_id": uncounted["practice_id"].astype(str).to_numpy(),
            "day": _days(uncounted["entry_date"]).to_numpy(),
            "reason": uncounted["reason"].astype(str).to_numpy(),
            "entries": pd.Series([int(v) for v in counts], dtype="int64").to_numpy(),
            "amount_cents": pd.Series([int(v) for v in uncounted["amount_cents"]], dtype="int64").to_numpy(),
        }
    )
    tables = []
    for grain in grains:
        grouped = (
            lines.assign(period_start=period_starts(lines["day"], grain))
            .groupby(["practice_id", "period_start", "reason"], sort=True)[["entries", "amount_cents"]]
            .sum()
            .reset_index()
        )
        tables.append(_with_period_bounds(grouped, grain))
    table = pd.concat(tables, ignore_index=True)
    table[["entries", "amount_cents"]] = table[["entries", "amount_cents"]].astype("int64")
    return _sorted(table, UNCOUNTED_KPI_COLUMNS, ["reason"])


# --- all together ---------------------------------------------------------------------------------


def compute_kpis(
    appointments: pd.DataFrame,
    deals: pd.DataFrame,
    deal_appointments: pd.DataFrame,
    deal_entries: pd.DataFrame,
    grains: Sequence[str] = GRAINS,
    uncounted: pd.DataFrame | None = None,
) -> KpiTables:
    """All KPI tables. `appointments` holds the current version of each appointment (one row per key)."""
    duplicated = appointments.duplicated(["practice_id", "appointment_key"])
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} appointments appear more than once; pass the current "
            "version of each (biss_pipeline.domain.staging.rules.newest_rows)"
        )
    return KpiTables(
        appointments=appointment_kpis(patient_appointments(appointments, deal_appointments), grains),
        deals=deal_kpis(deal_milestones(deals, deal_appointments, appointments), grains),
        revenue=revenue_kpis(deal_entries, grains),
        uncounted=_empty_uncounted() if uncounted is None else uncounted_kpis(uncounted, grains),
    )


def concat_tables(parts: Sequence[KpiTables]) -> KpiTables:
    """Several practices' tables as one, in the deterministic order."""

    def join(
        frames: list[pd.DataFrame],
        columns: Sequence[str],
        counts: Sequence[str],
        rates: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> pd.DataFrame:
        frames = [f for f in frames if not f.empty]
        if not frames:
            return _empty(columns, counts, rates)
        return _sorted(pd.concat(frames, ignore_index=True), columns, extra)

    return KpiTables(
        appointments=join(
            [p.appointments for p in parts], APPOINTMENT_KPI_COLUMNS, APPOINTMENT_COUNTS, ["no_show_rate"]
        ),
        deals=join(
            [p.deals for p in parts],
            DEAL_KPI_COLUMNS,
            DEAL_COUNTS,
            ["conversion_rate", "treatment_completion_rate"],
        ),
        revenue=join(
            [p.revenue for p in parts],
            REVENUE_KPI_COLUMNS,
            ["entries", "amount_cents"],
            extra=["treatment_category"],
        ),
        uncounted=join([p.uncounted for p in parts], UNCOUNTED_KPI_COLUMNS, ["entries", "amount_cents"],
                       extra=["reason"]),
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values for the database: ints, floats, dates, and None for NA."""

    def plain(value: Any) -> Any:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        return value.item() if hasattr(value, "item") else value

    return [{k: plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


# --- headline -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekHeadline:
    practice_id: str
    week_start: date
    week_end: date
    completed: int
    no_show: int
    no_show_rate: float | None
    revenue_cents: int
    deals_opened: int
    deals_won: int


def week_headlines(
    tables: KpiTables, as_of: date, practices: Iterable[str] | None = None
) -> list[WeekHeadline]:
    """Per practice (sorted), the figures of the last full ISO week before `as_of`'s week.

    `practices` defaults to every practice in the tables; one without rows that week shows zeros.
    """
    monday, sunday = last_full_week(as_of)

    def week_rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[(frame["grain"] == "week") & (frame["period_start"] == monday)]

    appointments = week_rows(tables.appointments).set_index("practice_id")
    deals = week_rows(tables.deals).set_index("practice_id")
    revenue = week_rows(tables.revenue).groupby("practice_id")["amount_cents"].sum()
    if practices is None:
        practices = (
            set(tables.appointments["practice_id"])
            | set(tables.deals["practice_id"])
            | set(tables.revenue["practice_id"])
        )

    def count(frame: pd.DataFrame, practice: str, column: str) -> int:
        return int(frame.at[practice, column]) if practice in frame.index else 0

    headlines = []
    for practice in sorted(practices):
        completed, no_show = (
            count(appointments, practice, "completed"),
            count(appointments, practice, "no_show"),
        )
        headlines.append(
            WeekHeadline(
                practice_id=practice,
                week_start=monday,
                week_end=sunday,
                completed=completed,
                no_show=no_show,
                no_show_rate=no_show / (completed + no_show) if completed + no_show else None,
                revenue_cents=int(revenue.get(practice, 0)),
                deals_opened=count(deals, practice, "deals_opened"),
                deals_won=count(deals, practice, "deals_won"),
            )
        )
    return headlines


def format_eur(cents: int) -> str:
    """Integer cents as `12,345.67 EUR`, exactly (no float on the way)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(int(cents)), 100)
    return f"{sign}{euros:,}.{rest:02d} EUR"


def format_rate(rate: float | None) -> str:
    return "n/a" if rate is None or pd.isna(rate) else f"{rate * 100:.1f} %"


def headline_lines(headlines: Sequence[WeekHeadline]) -> list[str]:
    if not headlines:
        return ["No KPI data yet."]
    first = headlines[0]
    iso_year, iso_week, _ = first.week_start.isocalendar()
    lines = [f"Week {iso_year}-W{iso_week:02d} ({first.week_start:%d.%m.}–{first.week_end:%d.%m.%Y}):"]
    for h in headlines:
        lines.append(
            f"  {h.practice_id}: {h.completed} appointments completed, no-show rate "
            f"{format_rate(h.no_show_rate)}, revenue {format_eur(h.revenue_cents)}, "
            f"{h.deals_opened} deals opened, {h.deals_won} won"
        )
    return lines
