"""Treatment journeys (HubSpot deals): membership, stage and revenue, computed from scratch (SPEC §5).

Everything here is a pure function of the appointments, the classified document entries, the settings
and an explicit `as_of` date (the run's window end). There is no wall clock, so a re-run of the same
window gives the same answer.

Terms
-----
- *Journey group*: one patient at one practice (`practice_id`, `patient_key`). Groups never interact.
- *Pending* appointment: status `booked`, `confirmed` or `arrived` — not yet final. *Final*: `completed`,
  `cancelled`, `no_show`, `clarified`. (Choice: `arrived` means the patient is in the chair and the
  appointment is not completed yet, so it completes nothing and it keeps the deal open.)
- *Driving appointment*: the deal's latest non-`ignore` appointment (start order, tie: appointment key).
- *Billed appointment*: an appointment with at least one billable document entry linked to it.
- *Reference day*: the day against which the quiet period of the won rule is measured: the start date of
  the patient's next appointment while walking the history, `as_of` for the patient's last deal.

Rule table, as implemented
--------------------------
Membership (the walk, per journey group)

| rule | as implemented                                                                                  |
| ---- | ----------------------------------------------------------------------------------------------- |
| W1   | `ignore`-type appointments belong to no deal and are skipped; every other appointment belongs   |
|      | to exactly one deal                                                                             |
| W2   | appointments are walked in start order, ties broken by `appointment_key`                        |
| W3   | with no open deal, the appointment opens one: `deal_key` = its `appointment_key`                |
| W4   | otherwise the open deal is first judged as it stands (its own appointments only, reference day  |
|      | = the new appointment's date): if S5 or S4 closes it, the new appointment opens a new deal      |
|      | (W3); if not, the appointment joins the open deal                                               |
| W5   | so which appointment belongs to which deal never depends on `as_of`; only the stage of the      |
|      | patient's last deal does (S4). At most one deal per journey group is open: all but the last are |
|      | closed by W4                                                                                    |

Stages (recomputed from scratch on every run; the first row from the top that applies wins)

| stage            | machine name     | rule                                                             |
| ---------------- | ---------------- | ---------------------------------------------------------------- |
| 5 Verloren       | `verloren`       | progress is stage 1 or 2, no pending appointment, and the        |
|                  |                  | driving appointment is `cancelled`, `no_show` or `clarified`.    |
|                  |                  | `lost_reason` = that status; `closed_date` = the driving         |
|                  |                  | appointment's date                                               |
| 4 Abgeschlossen  | `abgeschlossen`  | progress is stage 3, no pending appointment, and reference day ≥ |
|                  |                  | last appointment date + `close_after_days`. `closed_date` = last |
|                  |                  | appointment date + `close_after_days`                            |
| 3 In Behandlung  | `in_behandlung`  | progress: a `treatment` appointment is completed and billed;     |
|                  |                  | `behandlungsstart` = date of the first such appointment          |
| 2 Erstberatung   | `erstberatung`   | progress: any appointment completed. The spec names the          |
|                  |                  | completed `lead`; choice: a completed `treatment` appointment    |
|                  |                  | that is not (yet) billed and a completed `followup` count too,   |
|                  |                  | because stage 1 means "only booked"                              |
| 1 Termin gebucht | `termin_gebucht` | progress: nothing completed yet                                  |

Consequences and choices for the cases the spec leaves open

- Set back: a completed appointment set back to booked simply drops out of the progress: the stage,
  `behandlungsstart` and the amount move back on the next run (worked example, step 4).
- A stage-3 deal is never lost; a later cancellation only delays the quiet period (it is measured from
  the last appointment of any status).
- Won needs stage 3: a deal whose treatment is completed but not billed stays in `erstberatung` until
  its entries arrive (billing in Ivoris often lags the visit).
- A followup-only deal reaches at most `erstberatung` and is lost like any stage-1/2 deal.
- Lost is final for that deal, whatever comes later (worked example, step 5). A reschedule recorded as
  "cancel A1, book A2" therefore gives a lost deal and a new one: without a booking timestamp (the Ivoris
  contract has none) a reschedule cannot be told from a later return. Moving the appointment (same id,
  new start) keeps the deal.
- A stage-2 deal whose driving appointment is completed has no closing rule in the spec: it stays open
  and the patient's next appointment, however late, joins it.
- A pending appointment blocks both closing rules, also when its date is in the past (never updated).
- `closed_date` depends on appointment dates only, so it does not move with `as_of`; it can lie after
  `as_of` when the deciding appointment is in the future (a cancelled future appointment, or the next
  appointment is already booked beyond the quiet period, which closes the deal at once per W4).
- A "billable entry" is one whose rule says billable, whatever its amount.

Revenue

| rule | as implemented                                                                                  |
| ---- | ----------------------------------------------------------------------------------------------- |
| R1   | only entries whose rule matched and is billable count; unmatched and non-billable entries never |
|      | do                                                                                              |
| R2   | an entry with an `appointment_key` counts for the deal of that appointment if the appointment   |
|      | is completed; linked to a pending / cancelled, an `ignore`-type or an unknown appointment (not  |
|      | among the same patient's appointments) it counts for no deal, and never falls back to R3        |
| R3   | an entry without `appointment_key` counts for the patient's deal whose window (first to last    |
|      | appointment date, inclusive, all statuses) contains `entry_date`; where windows touch on one    |
|      | day, the deal opened later wins (it is the one still running at the end of that day)            |
| R4   | each entry counts for at most one deal; every entry that counts for none is listed in           |
|      | `uncounted_entries` with the reason, so the pipeline can flag it                                |
| R5   | `amount_cents` = exact integer sum of the counted entries, corrections (negative amounts)       |
|      | included; `deal_revenue` has one row per (revenue bucket, treatment category) and adds up       |
|      | exactly to it                                                                                   |
| R6   | `treatment_category` = the category with the largest positive total; tie: alphabetical order;   |
|      | NA when no category has a positive total                                                        |

Incremental recompute: a journey group depends only on its own rows, so `recompute_for_patients` replaces
exactly the given patients' rows. It equals a full `compute_deals` when `previous` was computed with the
same settings and `as_of`; when `as_of` moves forward, also recompute `patients_awaiting_quiet_period`
(the only deals whose stage can change by time alone). For an earlier `as_of`, compute in full.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from biss_pipeline.domain.deals.entry_rules import CLASSIFICATION_COLUMNS


class Stage(StrEnum):
    TERMIN_GEBUCHT = "termin_gebucht"
    ERSTBERATUNG = "erstberatung"
    IN_BEHANDLUNG = "in_behandlung"
    ABGESCHLOSSEN = "abgeschlossen"
    VERLOREN = "verloren"

    @property
    def label(self) -> str:
        return STAGE_LABELS[self.value]

    @property
    def number(self) -> int:
        return list(Stage).index(self) + 1

    @property
    def is_open(self) -> bool:
        return self in OPEN_STAGES


STAGE_LABELS: Mapping[str, str] = {
    "termin_gebucht": "Termin gebucht",
    "erstberatung": "Erstberatung",
    "in_behandlung": "In Behandlung",
    "abgeschlossen": "Abgeschlossen",
    "verloren": "Verloren",
}
OPEN_STAGES: frozenset[Stage] = frozenset({Stage.TERMIN_GEBUCHT, Stage.ERSTBERATUNG, Stage.IN_BEHANDLUNG})

DEAL_ROLES: frozenset[str] = frozenset({"lead", "treatment", "followup", "ignore"})
APPOINTMENT_STATUSES: frozenset[str] = frozenset(
    {"booked", "confirmed", "arrived", "completed", "cancelled", "no_show", "clarified"}
)
PENDING_STATUSES: frozenset[str] = frozenset({"booked", "confirmed", "arrived"})
LOST_STATUSES: frozenset[str] = frozenset({"cancelled", "no_show", "clarified"})
COMPLETED = "completed"

# Reasons in `uncounted_entries.reason`.
UNMATCHED_RULE = "unmatched_rule"
NOT_BILLABLE = "not_billable"
APPOINTMENT_NOT_COMPLETED = "appointment_not_completed"
APPOINTMENT_IGNORED = "appointment_ignored"
APPOINTMENT_UNKNOWN = "appointment_unknown"
OUTSIDE_DEAL_WINDOWS = "outside_deal_windows"

# Values of `deal_entries.counted_by`.
BY_APPOINTMENT = "appointment"
BY_WINDOW = "window"

APPOINTMENT_COLUMNS: tuple[str, ...] = (
    "practice_id",
    "appointment_key",
    "patient_key",
    "type_key",
    "deal_role",
    "start",
    "end",
    "status",
    "modified_at",
)
ENTRY_COLUMNS: tuple[str, ...] = (
    "entry_key",
    "practice_id",
    "patient_key",
    "appointment_key",
    "entry_date",
    "entry_type",
    "code",
    "amount_cents",
)

# Text columns use pandas' default string dtype (missing = NA); dates are `datetime.date` or None.
DEALS_SCHEMA: Mapping[str, str] = {
    "deal_key": "str",
    "practice_id": "str",
    "patient_key": "str",
    "stage": "str",
    "stage_label": "str",
    "stage_number": "int64",
    "is_open": "bool",
    "opened_by_appointment_key": "str",
    "driving_appointment_key": "str",
    "first_appointment_date": "object",
    "last_appointment_date": "object",
    "behandlungsstart": "object",
    "closed_date": "object",
    "amount_cents": "int64",
    "treatment_category": "str",
    "lost_reason": "str",
    "num_appointments": "int64",
}
DEAL_APPOINTMENTS_SCHEMA: Mapping[str, str] = {
    "deal_key": "str",
    "practice_id": "str",
    "patient_key": "str",
    "appointment_key": "str",
}
DEAL_REVENUE_SCHEMA: Mapping[str, str] = {
    "deal_key": "str",
    "practice_id": "str",
    "patient_key": "str",
    "revenue_bucket": "str",
    "treatment_category": "str",
    "amount_cents": "int64",
}
DEAL_ENTRIES_SCHEMA: Mapping[str, str] = {
    "deal_key": "str",
    "practice_id": "str",
    "patient_key": "str",
    "entry_key": "str",
    "appointment_key": "str",
    "entry_date": "object",
    "revenue_bucket": "str",
    "treatment_category": "str",
    "amount_cents": "int64",
    "counted_by": "str",
}
UNCOUNTED_ENTRIES_SCHEMA: Mapping[str, str] = {
    "entry_key": "str",
    "practice_id": "str",
    "patient_key": "str",
    "appointment_key": "str",
    "entry_date": "object",
    "amount_cents": "int64",
    "reason": "str",
}


@dataclass(frozen=True)
class DealSettings:
    close_after_days: int = 60

    def __post_init__(self) -> None:
        if self.close_after_days < 1:
            raise ValueError(f"close_after_days must be at least 1, got {self.close_after_days}")


@dataclass(frozen=True, eq=False)
class DealComputation:
    """All computed deal tables; every table carries `practice_id` and `patient_key`."""

    deals: pd.DataFrame
    deal_appointments: pd.DataFrame
    deal_revenue: pd.DataFrame
    deal_entries: pd.DataFrame
    uncounted_entries: pd.DataFrame

    TABLES: ClassVar[tuple[str, ...]] = (
        "deals",
        "deal_appointments",
        "deal_revenue",
        "deal_entries",
        "uncounted_entries",
    )


_SCHEMAS: Mapping[str, Mapping[str, str]] = {
    "deals": DEALS_SCHEMA,
    "deal_appointments": DEAL_APPOINTMENTS_SCHEMA,
    "deal_revenue": DEAL_REVENUE_SCHEMA,
    "deal_entries": DEAL_ENTRIES_SCHEMA,
    "uncounted_entries": UNCOUNTED_ENTRIES_SCHEMA,
}


# --- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Appointment:
    key: str
    practice_id: str
    patient_key: str
    role: str
    start: pd.Timestamp
    day: date
    status: str


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    practice_id: str
    patient_key: str
    appointment_key: str | None
    day: date
    rule_matched: bool
    billable: bool
    revenue_bucket: str | None
    treatment_category: str | None
    amount_cents: int


@dataclass(frozen=True, slots=True)
class _Closing:
    stage: Stage
    closed_date: date
    lost_reason: str | None


@dataclass
class _JourneyDraft:
    """A deal while the walk adds appointments to it; statuses are fixed, so the flags only accumulate."""

    appointments: list[_Appointment] = field(default_factory=list)
    any_completed: bool = False
    any_pending: bool = False
    behandlungsstart: date | None = None

    def add(self, appointment: _Appointment, billed_appointment_keys: set[str]) -> None:
        self.appointments.append(appointment)
        if appointment.status in PENDING_STATUSES:
            self.any_pending = True
        if appointment.status == COMPLETED:
            self.any_completed = True
            if (
                appointment.role == "treatment"
                and appointment.key in billed_appointment_keys
                and self.behandlungsstart is None
            ):
                self.behandlungsstart = appointment.day

    @property
    def progress(self) -> Stage:
        if self.behandlungsstart is not None:
            return Stage.IN_BEHANDLUNG
        if self.any_completed:
            return Stage.ERSTBERATUNG
        return Stage.TERMIN_GEBUCHT

    @property
    def driving(self) -> _Appointment:
        return self.appointments[-1]

    def closing(self, reference_day: date, settings: DealSettings) -> _Closing | None:
        """S5 and S4: is the deal, as it stands, closed on the reference day?"""
        if self.any_pending:
            return None
        progress = self.progress
        driving = self.driving
        if progress is not Stage.IN_BEHANDLUNG and driving.status in LOST_STATUSES:
            return _Closing(Stage.VERLOREN, driving.day, driving.status)
        quiet_until = driving.day + timedelta(days=settings.close_after_days)
        if progress is Stage.IN_BEHANDLUNG and reference_day >= quiet_until:
            return _Closing(Stage.ABGESCHLOSSEN, quiet_until, None)
        return None


@dataclass(frozen=True, slots=True)
class _Journey:
    appointments: tuple[_Appointment, ...]
    stage: Stage
    behandlungsstart: date | None
    closed_date: date | None
    lost_reason: str | None

    @property
    def key(self) -> str:
        return self.appointments[0].key

    @property
    def first_day(self) -> date:
        return self.appointments[0].day

    @property
    def last_day(self) -> date:
        return self.appointments[-1].day


def _finish(draft: _JourneyDraft, closing: _Closing | None) -> _Journey:
    return _Journey(
        appointments=tuple(draft.appointments),
        stage=draft.progress if closing is None else closing.stage,
        behandlungsstart=draft.behandlungsstart,
        closed_date=None if closing is None else closing.closed_date,
        lost_reason=None if closing is None else closing.lost_reason,
    )


# --- the walk and the revenue, one journey group at a time -------------------------------------------


def _walk(
    appointments: list[_Appointment], billed_appointment_keys: set[str], settings: DealSettings, as_of: date
) -> list[_Journey]:
    """W1–W5: cut a journey group's appointments (non-ignore, in walk order) into deals."""
    journeys: list[_Journey] = []
    draft: _JourneyDraft | None = None
    for appointment in appointments:
        if draft is not None:
            closing = draft.closing(appointment.day, settings)
            if closing is not None:
                journeys.append(_finish(draft, closing))
                draft = None
        if draft is None:
            draft = _JourneyDraft()
        draft.add(appointment, billed_appointment_keys)
    if draft is not None:
        journeys.append(_finish(draft, draft.closing(as_of, settings)))
    return journeys


def _attribute_entry(
    entry: _Entry,
    appointments_by_key: Mapping[str, _Appointment],
    deal_index_by_appointment: Mapping[str, int],
    journeys: list[_Journey],
) -> tuple[int | None, str]:
    """R1–R3: (index of the deal the entry counts for, how) or (None, why not)."""
    if not entry.rule_matched:
        return None, UNMATCHED_RULE
    if not entry.billable:
        return None, NOT_BILLABLE
    if entry.appointment_key is not None:
        appointment = appointments_by_key.get(entry.appointment_key)
        if appointment is None:
            return None, APPOINTMENT_UNKNOWN
        if appointment.role == "ignore":
            return None, APPOINTMENT_IGNORED
        if appointment.status != COMPLETED:
            return None, APPOINTMENT_NOT_COMPLETED
        return deal_index_by_appointment[appointment.key], BY_APPOINTMENT
    # Walk order is date order, so searching from the end gives the later-opened deal on touching windows.
    for index in range(len(journeys) - 1, -1, -1):
        if journeys[index].first_day <= entry.day <= journeys[index].last_day:
            return index, BY_WINDOW
    return None, OUTSIDE_DEAL_WINDOWS


def _main_treatment_category(totals: Mapping[tuple[str, str], int]) -> str | None:
    """R6."""
    by_category: dict[str, int] = defaultdict(int)
    for (_bucket, category), amount in totals.items():
        by_category[category] += amount
    positive = [(-amount, category) for category, amount in by_category.items() if amount > 0]
    return min(positive)[1] if positive else None


@dataclass
class _Tables:
    """Rows of the output tables, appended one journey group at a time."""

    deals: list[dict[str, Any]] = field(default_factory=list)
    deal_appointments: list[dict[str, Any]] = field(default_factory=list)
    deal_revenue: list[dict[str, Any]] = field(default_factory=list)
    deal_entries: list[dict[str, Any]] = field(default_factory=list)
    uncounted_entries: list[dict[str, Any]] = field(default_factory=list)

    def to_computation(self) -> DealComputation:
        # Rows were appended group by group in sorted group order: already canonical.
        return DealComputation(
            **{name: _frame(getattr(self, name), _SCHEMAS[name]) for name in DealComputation.TABLES}
        )


def _compute_journey_group(
    appointments: list[_Appointment],
    entries: list[_Entry],
    settings: DealSettings,
    as_of: date,
    tables: _Tables,
) -> None:
    appointments = sorted(appointments, key=lambda appointment: (appointment.start, appointment.key))
    entries = sorted(entries, key=lambda entry: (entry.day, entry.key))
    billed_appointment_keys = {
        entry.appointment_key for entry in entries if entry.billable and entry.appointment_key is not None
    }
    journeys = _walk(
        [appointment for appointment in appointments if appointment.role != "ignore"],
        billed_appointment_keys,
        settings,
        as_of,
    )

    appointments_by_key = {appointment.key: appointment for appointment in appointments}
    deal_index_by_appointment = {
        appointment.key: index
        for index, journey in enumerate(journeys)
        for appointment in journey.appointments
    }
    counted: list[list[tuple[_Entry, str]]] = [[] for _ in journeys]
    for entry in entries:
        index, how = _attribute_entry(entry, appointments_by_key, deal_index_by_appointment, journeys)
        if index is None:
            tables.uncounted_entries.append(
                {
                    "entry_key": entry.key,
                    "practice_id": entry.practice_id,
                    "patient_key": entry.patient_key,
                    "appointment_key": entry.appointment_key,
                    "entry_date": entry.day,
                    "amount_cents": entry.amount_cents,
                    "reason": how,
                }
            )
        else:
            counted[index].append((entry, how))

    for journey, journey_entries in zip(journeys, counted, strict=True):
        opening = journey.appointments[0]
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for entry, how in journey_entries:
            assert entry.revenue_bucket is not None and entry.treatment_category is not None
            totals[(entry.revenue_bucket, entry.treatment_category)] += entry.amount_cents
            tables.deal_entries.append(
                {
                    "deal_key": journey.key,
                    "practice_id": entry.practice_id,
                    "patient_key": entry.patient_key,
                    "entry_key": entry.key,
                    "appointment_key": entry.appointment_key,
                    "entry_date": entry.day,
                    "revenue_bucket": entry.revenue_bucket,
                    "treatment_category": entry.treatment_category,
                    "amount_cents": entry.amount_cents,
                    "counted_by": how,
                }
            )
        for (bucket, category), amount in sorted(totals.items()):
            tables.deal_revenue.append(
                {
                    "deal_key": journey.key,
                    "practice_id": opening.practice_id,
                    "patient_key": opening.patient_key,
                    "revenue_bucket": bucket,
                    "treatment_category": category,
                    "amount_cents": amount,
                }
            )
        for appointment in journey.appointments:
            tables.deal_appointments.append(
                {
                    "deal_key": journey.key,
                    "practice_id": appointment.practice_id,
                    "patient_key": appointment.patient_key,
                    "appointment_key": appointment.key,
                }
            )
        tables.deals.append(
            {
                "deal_key": journey.key,
                "practice_id": opening.practice_id,
                "patient_key": opening.patient_key,
                "stage": journey.stage.value,
                "stage_label": journey.stage.label,
                "stage_number": journey.stage.number,
                "is_open": journey.stage.is_open,
                "opened_by_appointment_key": opening.key,
                "driving_appointment_key": journey.appointments[-1].key,
                "first_appointment_date": journey.first_day,
                "last_appointment_date": journey.last_day,
                "behandlungsstart": journey.behandlungsstart,
                "closed_date": journey.closed_date,
                "amount_cents": sum(totals.values()),
                "treatment_category": _main_treatment_category(totals),
                "lost_reason": journey.lost_reason,
                "num_appointments": len(journey.appointments),
            }
        )


# --- input ---------------------------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")


def _require_unique(frame: pd.DataFrame, column: str, what: str) -> None:
    duplicated = frame[column][frame[column].duplicated()]
    if not duplicated.empty:
        # A duplicate would count twice or open a second deal; staging must have removed it.
        raise ValueError(
            f"{what} has {len(duplicated)} duplicate {column} values, e.g. {duplicated.iloc[0]!r}"
        )


def _require_present(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    for column in columns:
        if frame[column].isna().any():
            raise ValueError(f"{what}.{column} has missing values")


def _require_values(frame: pd.DataFrame, column: str, allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(frame[column].dropna()) - allowed)
    if unknown or frame[column].isna().any():
        raise ValueError(f"{what}.{column} has values outside {sorted(allowed)}: {unknown or ['<missing>']}")


def _as_day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    raise ValueError(f"not a date: {value!r}")


def _rows(frame: pd.DataFrame, columns: list[str]) -> Iterable[tuple[Any, ...]]:
    """Plain Python values, missing ones as None; iterating pandas string arrays value by value is slow."""
    return zip(*(frame[column].to_numpy(dtype=object, na_value=None) for column in columns), strict=True)


def _appointment_records(appointments: pd.DataFrame) -> list[_Appointment]:
    _require_columns(appointments, APPOINTMENT_COLUMNS, "appointments")
    _require_present(appointments, ("appointment_key", "practice_id", "patient_key", "start"), "appointments")
    _require_unique(appointments, "appointment_key", "appointments")
    _require_values(appointments, "deal_role", DEAL_ROLES, "appointments")
    _require_values(appointments, "status", APPOINTMENT_STATUSES, "appointments")
    columns = ["appointment_key", "practice_id", "patient_key", "deal_role", "start", "status"]
    return [
        _Appointment(
            key=str(key),
            practice_id=str(practice_id),
            patient_key=str(patient_key),
            role=str(role),
            start=pd.Timestamp(start),
            day=_as_day(start),
            status=str(status),
        )
        for key, practice_id, patient_key, role, start, status in _rows(appointments, columns)
    ]


def _entry_records(classified_entries: pd.DataFrame) -> list[_Entry]:
    _require_columns(classified_entries, ENTRY_COLUMNS, "entries")
    missing = [column for column in CLASSIFICATION_COLUMNS if column not in classified_entries.columns]
    if missing:
        raise ValueError(f"entries lack classification columns {missing}; run classify_entries first")
    _require_present(
        classified_entries,
        ("entry_key", "practice_id", "patient_key", "entry_date", "amount_cents"),
        "entries",
    )
    _require_unique(classified_entries, "entry_key", "entries")
    amounts = classified_entries["amount_cents"]
    if not (pd.api.types.is_integer_dtype(amounts) or all(isinstance(value, int) for value in amounts)):
        raise ValueError(f"entries.amount_cents must be integer cents, got dtype {amounts.dtype}")
    columns = [
        "entry_key",
        "practice_id",
        "patient_key",
        "appointment_key",
        "entry_date",
        "rule_matched",
        "billable",
        "revenue_bucket",
        "treatment_category",
        "amount_cents",
    ]
    return [
        _Entry(
            key=str(key),
            practice_id=str(practice_id),
            patient_key=str(patient_key),
            appointment_key=None if appointment_key is None else str(appointment_key),
            day=_as_day(entry_date),
            rule_matched=bool(rule_matched),
            billable=bool(billable),
            revenue_bucket=None if bucket is None else str(bucket),
            treatment_category=None if category is None else str(category),
            amount_cents=int(amount),
        )
        for (
            key,
            practice_id,
            patient_key,
            appointment_key,
            entry_date,
            rule_matched,
            billable,
            bucket,
            category,
            amount,
        ) in _rows(classified_entries, columns)
    ]


# --- output --------------------------------------------------------------------------------------------


def _frame(rows: list[dict[str, Any]], schema: Mapping[str, str]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for column, dtype in schema.items():
        values = [row[column] for row in rows]
        if dtype == "object":
            # Filled element by element, so that numpy keeps `datetime.date` and None as they are.
            array = np.empty(len(values), dtype=object)
            array[:] = values
            columns[column] = array
        elif dtype == "str":
            columns[column] = pd.array(values, dtype="str")
        else:
            columns[column] = np.array(values, dtype=dtype)
    return pd.DataFrame(columns, copy=False)


def _canonical(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Journey groups in key order, each group's rows in the order they were produced.

    Python's ordering, the same that `compute_deals` walks the groups in, so full and incremental agree.
    """
    groups = list(_rows(frame, ["practice_id", "patient_key"]))
    order = sorted(range(len(groups)), key=lambda position: (groups[position], position))
    ordered = frame.iloc[order].reset_index(drop=True)
    # Concatenation keeps equal dtypes; converting only what drifted is much cheaper than a full astype.
    drifted = {
        column: dtype for column, dtype in _SCHEMAS[table].items() if str(ordered[column].dtype) != dtype
    }
    return ordered.astype(drifted) if drifted else ordered


# --- public --------------------------------------------------------------------------------------------


def compute_deals(
    appointments: pd.DataFrame, classified_entries: pd.DataFrame, settings: DealSettings, as_of: date
) -> DealComputation:
    """All deals of all patients in the inputs, from scratch (rule table in the module docstring)."""
    as_of = _as_day(as_of)
    appointments_by_group: dict[tuple[str, str], list[_Appointment]] = defaultdict(list)
    for appointment in _appointment_records(appointments):
        appointments_by_group[(appointment.practice_id, appointment.patient_key)].append(appointment)
    entries_by_group: dict[tuple[str, str], list[_Entry]] = defaultdict(list)
    for entry in _entry_records(classified_entries):
        entries_by_group[(entry.practice_id, entry.patient_key)].append(entry)

    tables = _Tables()
    for group in sorted(appointments_by_group.keys() | entries_by_group.keys()):
        _compute_journey_group(
            appointments_by_group.get(group, []), entries_by_group.get(group, []), settings, as_of, tables
        )
    return tables.to_computation()


def recompute_for_patients(
    previous: DealComputation,
    appointments: pd.DataFrame,
    classified_entries: pd.DataFrame,
    patient_keys: Iterable[str],
    settings: DealSettings,
    as_of: date,
) -> DealComputation:
    """`previous` with exactly the given patients' rows recomputed from the (full or partial) inputs.

    Equals `compute_deals` over the same inputs when `previous` was computed with the same settings and
    `as_of` and only the given patients' rows changed since (see the module docstring for a moving `as_of`).
    """
    keys = set(patient_keys)
    fresh = compute_deals(
        appointments.loc[appointments["patient_key"].isin(keys)],
        classified_entries.loc[classified_entries["patient_key"].isin(keys)],
        settings,
        as_of,
    )
    merged: dict[str, pd.DataFrame] = {}
    for table in DealComputation.TABLES:
        kept = getattr(previous, table)
        kept = kept.loc[~kept["patient_key"].isin(keys)]
        parts = [part for part in (kept, getattr(fresh, table)) if not part.empty]
        combined = pd.concat(parts, ignore_index=True) if parts else getattr(fresh, table)
        merged[table] = _canonical(combined, table)
    return DealComputation(**merged)


def patients_awaiting_quiet_period(deals: pd.DataFrame) -> set[str]:
    """Patients whose deal can change stage by the passage of time alone (open `in_behandlung` → won)."""
    waiting = deals.loc[deals["is_open"] & (deals["stage"] == Stage.IN_BEHANDLUNG.value), "patient_key"]
    return set(waiting)
