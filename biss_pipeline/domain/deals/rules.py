"""Treatment journeys (HubSpot deals): membership, stage and revenue, computed from scratch (SPEC §5, rev. 2).

Everything here is a pure function of the appointments, the classified document entries, the settings
and an explicit `as_of` date. The caller decides the as-of date (the pipeline uses the newest Ivoris
modification seen for the practice, unless a run sets one); there is no wall clock, so a re-run of the
same inputs gives the same answer.

Terms
-----
- *Journey group*: one patient at one practice (`practice_id`, `patient_key`). Groups never interact.
- *Walk order*: start time, ties broken by the numeric Ivoris id inside the key (`MB_7` before `MB_34`;
  a key that is not prefix + number falls back to comparing its digit runs as numbers, then as text).
- *Pending status*: `booked`, `confirmed` or `arrived` (not final yet). *Final status*: `completed`,
  `cancelled`, `no_show`, `clarified`. (Choice: `arrived` means the patient is in the chair and the
  appointment is not completed yet, so it completes nothing.)
- *Judgment*: a deal is judged *as of a reference day* r: the start date of the appointment about to join
  it while walking the history, `as_of` for the patient's last deal.
- *Stale* (r2): an appointment with a pending status whose start date + `stale_after_days` is on or before
  the judgment's *horizon*, min(r, `as_of`). Staleness is an observation (nobody updated it in Ivoris), so
  it is never assumed beyond `as_of`, and while walking the history an appointment is not yet stale on a
  day before it became so. *Pending* means pending status and not stale. A stale appointment stays a
  member of its deal, blocks no rule, completes nothing and is never the driving or last appointment.
- *Driving appointment* (= the deal's *last appointment*): the deal's latest non-stale member in walk
  order, of any status. The quiet periods of S4 and S5b are counted from its start date.
- *Billed appointment*: an appointment with at least one billable document entry linked to it.

Rule table, as implemented
--------------------------
Membership (the walk, per journey group)

| rule | as implemented                                                                                  |
| ---- | ----------------------------------------------------------------------------------------------- |
| W1   | `ignore`-type appointments belong to no deal and are skipped; every other appointment belongs   |
|      | to exactly one deal                                                                             |
| W2   | appointments are walked in walk order (start, tie: numeric Ivoris id)                           |
| W3   | with no open deal, the appointment opens one: `deal_key` = its `appointment_key`                |
| W4   | otherwise the open deal is first judged as it stands (its own members only, reference day =     |
|      | the new appointment's date): if S4 or S5b closes it, the new appointment opens a new deal (W3); |
|      | if S5a closes it, see W6; if nothing closes it, the appointment joins the open deal             |
| W5   | at most one deal per journey group is open: all but the last are closed by W4. Membership       |
|      | depends on `as_of` only through staleness: moving `as_of` changes it only where a               |
|      | pending-status appointment becomes stale (or no longer is) in between                           |
| W6   | (r2) rebooking: a deal that S5a closes reopens when the appointment about to join (the          |
|      | patient's next non-`ignore` one) starts within `rebook_days` of the lost (driving)              |
|      | appointment, i.e. on or before its date + `rebook_days`; it joins and the stage is recomputed   |
|      | from all members. `reopened_count` counts the lost appointments whose loss a rebooking undid    |
|      | (a stale rebooking that leaves the same appointment driving is not counted twice). Beyond the   |
|      | window the deal stays lost and W3 applies                                                       |

Stages (recomputed from scratch on every run; the first row from the top that applies wins; "nothing
pending" is judged at the horizon)

| stage            | machine name     | rule                                                             |
| ---------------- | ---------------- | ---------------------------------------------------------------- |
| 5 Verloren       | `verloren`       | progress is stage 1 or 2, nothing pending, and                   |
|                  |                  | S5a: the driving appointment is `cancelled`, `no_show` or        |
|                  |                  | `clarified`: `lost_reason` = that status, `closed_date` = the    |
|                  |                  | driving appointment's date; or                                   |
|                  |                  | S5b (r2): reference day ≥ driving appointment's date +           |
|                  |                  | `lost_after_days`: `lost_reason` = `inactive`, `closed_date` =   |
|                  |                  | that first day of the threshold                                  |
| 4 Abgeschlossen  | `abgeschlossen`  | progress is stage 3, nothing pending, and reference day ≥        |
|                  |                  | driving appointment's date + `close_after_days`. `closed_date` = |
|                  |                  | that first day of the threshold                                  |
| 3 In Behandlung  | `in_behandlung`  | progress: a `treatment` appointment is completed and billed;     |
|                  |                  | `behandlungsstart` = date of the first such appointment          |
| 2 Erstberatung   | `erstberatung`   | progress: any appointment completed (a `lead`, and also a        |
|                  |                  | completed `followup` or a completed, not (yet) billed treatment) |
|                  |                  | `lead_completed`: a `lead` member is completed (the KPIs'        |
|                  |                  | conversion counts deals that reached stage 2 this way)           |
| 1 Termin gebucht | `termin_gebucht` | progress: nothing completed yet                                  |

Consequences and choices for the cases the spec leaves open

- Set back: a completed appointment set back to booked drops out of the progress: the stage,
  `behandlungsstart` and the amount move back on the next run (worked example, step 4).
- A stage-3 deal is never lost; a later cancellation only delays the quiet period (it is measured from
  the driving appointment, whatever its status).
- Won needs stage 3: a deal whose treatment is completed but not billed stays in `erstberatung` until
  its entries arrive, and S5b loses it if they never do within `lost_after_days`.
- A deal whose every member is stale has no driving appointment (`driving_appointment_key` NA); S5b
  then counts its quiet period from its first appointment's date, so a journey opened by a booking nobody
  updated does not stay open for ever nor absorb every later visit. It can only be in stage 1.
- `closed_date` depends on appointment dates only, so it does not move with `as_of`; it can lie after
  `as_of` when the deciding appointment is in the future (a cancelled future appointment, or the next
  appointment is already booked beyond the quiet period, which closes the deal at once per W4).
- `deal_appointments.is_stale` is staleness as of `as_of`. For a deal closed by the walk every
  pending-status member was already stale at its judgment (else it would not have closed), so the flag
  agrees with the judgment of every deal.
- `last_appointment_date` is the latest member's date of any status, stale ones included (it bounds the
  revenue window and is what the patient's calendar shows); it is not the driving appointment's date.
- A "billable entry" is one whose rule says billable, whatever its amount.

Revenue

| rule | as implemented                                                                                  |
| ---- | ----------------------------------------------------------------------------------------------- |
| R1   | only entries whose rule matched and is billable count; unmatched and non-billable entries never |
|      | do                                                                                              |
| R2   | an entry with an `appointment_key` counts for the deal of that appointment if the appointment   |
|      | is completed; linked to a pending, stale, cancelled / no-show / clarified, an `ignore`-type or  |
|      | an unknown appointment (not among the same patient's appointments) it counts for no deal, and   |
|      | never falls back to R3                                                                          |
| R3   | (r2) an entry without `appointment_key` counts for the patient's deal whose window contains     |
|      | `entry_date`: from the deal's first appointment date to `entry_grace_days` after its last       |
|      | appointment date (inclusive, all members), ending the day before the patient's next deal        |
|      | begins; so the day a deal begins, and every day after, belongs to it and not to an earlier one  |
| R4   | each entry counts for at most one deal; every entry that counts for none is listed in           |
|      | `uncounted_entries` with its reason: `unmatched_rule` (no matching rule), `not_billable`,       |
|      | `appointment_not_completed`, `appointment_ignored`, `appointment_unknown`,                      |
|      | `outside_deal_windows` (outside every window). `detail` narrows it: the linked appointment's   |
|      | status for `appointment_not_completed` (`booked`/`confirmed`: set back or never updated,       |
|      | `arrived`: left arrived, or a cancelled/no-show/clarified visit), `before_first_deal` or       |
|      | `after_grace_window` for `outside_deal_windows`                                                 |
| R5   | `amount_cents` = exact integer sum of the counted entries, corrections (negative amounts)       |
|      | included; `deal_revenue` has one row per (revenue bucket, treatment category) and adds up       |
|      | exactly to it                                                                                   |
| R6   | `treatment_category` = the category with the largest positive total; tie: the order of          |
|      | `TREATMENT_CATEGORIES` (SPEC §4); NA when no category has a positive total                      |

Incremental recompute: a journey group depends only on its own rows, so `recompute_for_patients` replaces
exactly the given patients' rows. It equals a full `compute_deals` when `previous` was computed with the
same settings and `as_of` and only the given patients' rows changed since. When the settings or `as_of`
move, add `patients_to_recompute(...)`: the patients whose rows can differ with unchanged inputs
(every patient on a settings change; on a later `as_of` every patient with an open deal, since only the
last, open deal is judged as of `as_of` and every appointment that can still turn stale belongs to it;
on an earlier `as_of` the patients with a deal closed by time after it or an appointment whose staleness
flips in between).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from biss_pipeline.domain.deals.entry_rules import CLASSIFICATION_COLUMNS, TREATMENT_CATEGORIES


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
# The statuses that are not final. Whether such an appointment is *pending* also depends on the date (stale).
PENDING_STATUSES: frozenset[str] = frozenset({"booked", "confirmed", "arrived"})
LOST_STATUSES: frozenset[str] = frozenset({"cancelled", "no_show", "clarified"})
COMPLETED = "completed"
INACTIVE = "inactive"  # `lost_reason` of S5b

# Reasons in `uncounted_entries.reason`.
UNMATCHED_RULE = "unmatched_rule"
NOT_BILLABLE = "not_billable"
APPOINTMENT_NOT_COMPLETED = "appointment_not_completed"
APPOINTMENT_IGNORED = "appointment_ignored"
APPOINTMENT_UNKNOWN = "appointment_unknown"
OUTSIDE_DEAL_WINDOWS = "outside_deal_windows"
UNCOUNTED_REASONS: tuple[str, ...] = (
    UNMATCHED_RULE,
    NOT_BILLABLE,
    APPOINTMENT_NOT_COMPLETED,
    APPOINTMENT_IGNORED,
    APPOINTMENT_UNKNOWN,
    OUTSIDE_DEAL_WINDOWS,
)

# Values of `uncounted_entries.detail` for `outside_deal_windows` (for `appointment_not_completed` the
# detail is the linked appointment's status).
BEFORE_FIRST_DEAL = "before_first_deal"
AFTER_GRACE_WINDOW = "after_grace_window"

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
    "reopened_count": "int64",
    "lead_completed": "bool",
}
DEAL_APPOINTMENTS_SCHEMA: Mapping[str, str] = {
    "deal_key": "str",
    "practice_id": "str",
    "patient_key": "str",
    "appointment_key": "str",
    "is_stale": "bool",
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
    "detail": "str",
}
STALE_APPOINTMENTS_SCHEMA: Mapping[str, str] = {
    "practice_id": "str",
    "appointment_key": "str",
    "patient_key": "str",
    "start": "datetime64[ns]",
    "status": "str",
    "days_stale": "int64",
}


@dataclass(frozen=True)
class DealSettings:
    """The deal-rule settings of the mapping's `settings` tab (SPEC §4, §5), in whole days."""

    close_after_days: int = 60
    lost_after_days: int = 120
    stale_after_days: int = 3
    rebook_days: int = 30
    entry_grace_days: int = 30

    # A quiet period of 0 days would close a deal on the day of its last appointment, and an appointment
    # stale on its own day could never be updated in time; a window of 0 days is meaningful (same day).
    MINIMUM_DAYS: ClassVar[Mapping[str, int]] = {
        "close_after_days": 1,
        "lost_after_days": 1,
        "stale_after_days": 1,
        "rebook_days": 0,
        "entry_grace_days": 0,
    }

    def __post_init__(self) -> None:
        for setting in fields(self):
            value = getattr(self, setting.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{setting.name} must be a whole number of days, got {value!r}")
            minimum = self.MINIMUM_DAYS[setting.name]
            if value < minimum:
                raise ValueError(f"{setting.name} must be at least {minimum}, got {value}")

    def fingerprint(self) -> str:
        """Every setting as stable text (`close_after_days=60,entry_grace_days=30,…`), for mapping hashes.

        Built from the dataclass fields, so a setting added later is part of it without anyone remembering.
        """
        return ",".join(
            f"{setting.name}={getattr(self, setting.name)}"
            for setting in sorted(fields(self), key=lambda setting: setting.name)
        )


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
_CATEGORY_RANK: Mapping[str, int] = {category: rank for rank, category in enumerate(TREATMENT_CATEGORIES)}
_DIGITS = re.compile(r"(\d+)")


def key_order(key: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key of an Ivoris key by its numeric id: `MB_7` before `MB_34` (text order has them reversed).

    Digit runs compare as numbers (text and number parts alternate, so the tuples always compare); the key
    itself breaks the remaining ties (`MB_07` and `MB_7`).
    """
    prefix, _, number = key.rpartition("_")
    if prefix.isalpha() and number.isascii() and number.isdigit():
        # The usual shape, prefix + id (`MB_10423`), without the regular expression: it is sorted per row.
        return (f"{prefix}_", int(number), ""), key
    parts = _DIGITS.split(key)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), key


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

    def is_stale(self, horizon: date, settings: DealSettings) -> bool:
        return (
            self.status in PENDING_STATUSES
            and self.day + timedelta(days=settings.stale_after_days) <= horizon
        )


def _walk_order(appointment: _Appointment) -> tuple[pd.Timestamp, tuple[tuple[str | int, ...], str]]:
    """W2: start time, tie: the numeric Ivoris id."""
    return appointment.start, key_order(appointment.key)


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
    # Set for S5a only: the appointment whose status lost the deal, from which W6's window is measured.
    lost_appointment: _Appointment | None = None


@dataclass
class _JourneyDraft:
    """A deal while the walk adds appointments to it. Statuses are fixed, so the fields only accumulate;
    what depends on the reference day (staleness) is derived from them in `closing`."""

    appointments: list[_Appointment] = field(default_factory=list)
    any_completed: bool = False
    behandlungsstart: date | None = None
    # The latest member with a final status. Once no member is pending, it is the driving appointment:
    # final statuses are never stale, and every pending-status member is.
    last_final: _Appointment | None = None
    # The latest start date among pending-status members: some member is pending at a horizon exactly
    # when this one is, so one comparison answers it.
    last_pending_status_day: date | None = None
    losses_undone: set[str] = field(default_factory=set)
    # A completed `lead` member: the deal reached Erstberatung by a consultation, which is what the
    # conversion KPI Erstberatung -> Behandlung counts (a completed follow-up alone does not).
    lead_completed: bool = False

    def add(self, appointment: _Appointment, billed_appointment_keys: set[str]) -> None:
        self.appointments.append(appointment)
        if appointment.status in PENDING_STATUSES:
            self.last_pending_status_day = appointment.day
            return
        self.last_final = appointment
        if appointment.status == COMPLETED:
            self.any_completed = True
            self.lead_completed = self.lead_completed or appointment.role == "lead"
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

    def any_pending(self, horizon: date, settings: DealSettings) -> bool:
        return (
            self.last_pending_status_day is not None
            and horizon < self.last_pending_status_day + timedelta(days=settings.stale_after_days)
        )

    def closing(self, reference_day: date, as_of: date, settings: DealSettings) -> _Closing | None:
        """S5 and S4: is the deal, as it stands, closed on the reference day?"""
        if self.any_pending(min(reference_day, as_of), settings):
            return None
        progress = self.progress
        driving = self.last_final
        if progress is Stage.IN_BEHANDLUNG:
            assert driving is not None  # stage 3 has a completed member, which is never stale
            quiet_until = driving.day + timedelta(days=settings.close_after_days)
            return _Closing(Stage.ABGESCHLOSSEN, quiet_until, None) if reference_day >= quiet_until else None
        if driving is not None and driving.status in LOST_STATUSES:
            return _Closing(Stage.VERLOREN, driving.day, driving.status, lost_appointment=driving)
        quiet_from = driving.day if driving is not None else self.appointments[0].day
        quiet_until = quiet_from + timedelta(days=settings.lost_after_days)
        if reference_day >= quiet_until:
            return _Closing(Stage.VERLOREN, quiet_until, INACTIVE)
        return None


@dataclass(frozen=True, slots=True)
class _Journey:
    appointments: tuple[_Appointment, ...]
    stale: tuple[bool, ...]
    stage: Stage
    behandlungsstart: date | None
    closed_date: date | None
    lost_reason: str | None
    reopened_count: int
    lead_completed: bool

    @property
    def key(self) -> str:
        return self.appointments[0].key

    @property
    def first_day(self) -> date:
        return self.appointments[0].day

    @property
    def last_day(self) -> date:
        return self.appointments[-1].day

    @property
    def driving(self) -> _Appointment | None:
        for appointment, stale in zip(reversed(self.appointments), reversed(self.stale), strict=True):
            if not stale:
                return appointment
        return None


def _finish(
    draft: _JourneyDraft, closing: _Closing | None, horizon: date, settings: DealSettings
) -> _Journey:
    return _Journey(
        appointments=tuple(draft.appointments),
        stale=tuple(appointment.is_stale(horizon, settings) for appointment in draft.appointments),
        stage=draft.progress if closing is None else closing.stage,
        behandlungsstart=draft.behandlungsstart,
        closed_date=None if closing is None else closing.closed_date,
        lost_reason=None if closing is None else closing.lost_reason,
        reopened_count=len(draft.losses_undone),
        lead_completed=draft.lead_completed,
    )


# --- the walk and the revenue, one journey group at a time -------------------------------------------


def _walk(
    appointments: list[_Appointment], billed_appointment_keys: set[str], settings: DealSettings, as_of: date
) -> list[_Journey]:
    """W1–W6: cut a journey group's appointments (non-ignore, in walk order) into deals."""
    journeys: list[_Journey] = []
    draft: _JourneyDraft | None = None
    rebook = timedelta(days=settings.rebook_days)
    for appointment in appointments:
        if draft is not None:
            closing = draft.closing(appointment.day, as_of, settings)
            if closing is not None:
                lost = closing.lost_appointment
                if lost is not None and appointment.day <= lost.day + rebook:
                    draft.losses_undone.add(lost.key)
                else:
                    journeys.append(_finish(draft, closing, min(appointment.day, as_of), settings))
                    draft = None
        if draft is None:
            draft = _JourneyDraft()
        draft.add(appointment, billed_appointment_keys)
    if draft is not None:
        journeys.append(_finish(draft, draft.closing(as_of, as_of, settings), as_of, settings))
    return journeys


def _attribute_entry(
    entry: _Entry,
    appointments_by_key: Mapping[str, _Appointment],
    deal_index_by_appointment: Mapping[str, int],
    journeys: list[_Journey],
    first_days: list[date],
    settings: DealSettings,
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
    # Deals follow each other in walk order, so the latest deal begun by the entry's day is the only one
    # whose window can hold it: every earlier window ended where that deal began.
    index = bisect_right(first_days, entry.day) - 1
    if index >= 0 and entry.day <= journeys[index].last_day + timedelta(days=settings.entry_grace_days):
        return index, BY_WINDOW
    return None, OUTSIDE_DEAL_WINDOWS


def _uncounted_detail(
    entry: _Entry, reason: str, appointments_by_key: Mapping[str, _Appointment], first_days: list[date]
) -> str | None:
    """Why, more precisely, for the reasons a practice can act on (R4): the linked appointment's status
    (`booked` or `confirmed`: a visit set back or never updated; `arrived`: left in the chair), or where
    the entry lies outside the windows (`before_first_deal`, `after_grace_window`: a lab bill later than
    `entry_grace_days` after the last visit)."""
    if reason == APPOINTMENT_NOT_COMPLETED:
        return appointments_by_key[entry.appointment_key].status if entry.appointment_key else None
    if reason == OUTSIDE_DEAL_WINDOWS:
        return BEFORE_FIRST_DEAL if not first_days or entry.day < first_days[0] else AFTER_GRACE_WINDOW
    return None


def _main_treatment_category(totals: Mapping[tuple[str, str], int]) -> str | None:
    """R6."""
    by_category: dict[str, int] = defaultdict(int)
    for (_bucket, category), amount in totals.items():
        by_category[category] += amount
    positive = [
        (-amount, _CATEGORY_RANK.get(category, len(_CATEGORY_RANK)), category)
        for category, amount in by_category.items()
        if amount > 0
    ]
    return min(positive)[2] if positive else None


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
    appointments = sorted(appointments, key=_walk_order)
    # Entry order carries no rule, only a stable output order, so the plain key is enough (and cheaper).
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
    first_days = [journey.first_day for journey in journeys]
    counted: list[list[tuple[_Entry, str]]] = [[] for _ in journeys]
    for entry in entries:
        index, how = _attribute_entry(
            entry, appointments_by_key, deal_index_by_appointment, journeys, first_days, settings
        )
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
                    "detail": _uncounted_detail(entry, how, appointments_by_key, first_days),
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
        for appointment, stale in zip(journey.appointments, journey.stale, strict=True):
            tables.deal_appointments.append(
                {
                    "deal_key": journey.key,
                    "practice_id": appointment.practice_id,
                    "patient_key": appointment.patient_key,
                    "appointment_key": appointment.key,
                    "is_stale": stale,
                }
            )
        driving = journey.driving
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
                "driving_appointment_key": None if driving is None else driving.key,
                "first_appointment_date": journey.first_day,
                "last_appointment_date": journey.last_day,
                "behandlungsstart": journey.behandlungsstart,
                "closed_date": journey.closed_date,
                "amount_cents": sum(totals.values()),
                "treatment_category": _main_treatment_category(totals),
                "lost_reason": journey.lost_reason,
                "num_appointments": len(journey.appointments),
                "reopened_count": journey.reopened_count,
                "lead_completed": journey.lead_completed,
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
    `as_of` and only the given patients' rows changed since; when the settings or `as_of` moved, include
    `patients_to_recompute(...)` in `patient_keys`.
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
    """Patients whose deals can change when `as_of` moves *forward* alone: every patient with an open deal.

    Only the patient's last deal is judged as of `as_of`, and a closed one stays closed as time passes
    (S4/S5b thresholds only get reached, S5a does not depend on the day). What else depends on `as_of` is
    staleness, and an appointment that can still turn stale is pending now, so it keeps its deal open.
    For any move of `as_of` or the settings, use `patients_to_recompute`.
    """
    return set(deals.loc[deals["is_open"].astype(bool), "patient_key"].astype(str))


def patients_to_recompute(
    previous_deals: pd.DataFrame,
    appointments: pd.DataFrame,
    *,
    previous_settings: DealSettings,
    settings: DealSettings,
    previous_as_of: date,
    as_of: date,
) -> set[str]:
    """Patients whose deal tables can differ between the computation `previous_deals` comes from (made with
    `previous_settings` as of `previous_as_of`) and one with `settings` as of `as_of`, the inputs unchanged.

    `appointments` are the inputs of that computation (for staleness). Add the patients whose inputs
    changed; `recompute_for_patients` for the union then equals a full `compute_deals`.
    """
    previous_as_of, as_of = _as_day(previous_as_of), _as_day(as_of)
    if settings != previous_settings:
        # Every threshold moves every deal; there is no cheaper exact answer.
        return set(previous_deals["patient_key"].astype(str))
    if as_of == previous_as_of:
        return set()
    if as_of > previous_as_of:
        return patients_awaiting_quiet_period(previous_deals)
    # Moving back: a deal closed by a time threshold after the new as-of is not closed yet then, and an
    # appointment that became stale in between is pending again, in whichever deal it is.
    closed_by_time = (previous_deals["stage"] == Stage.ABGESCHLOSSEN.value) | (
        previous_deals["lost_reason"] == INACTIVE
    ).fillna(False)
    closed_after = [
        closed_date is not None and closed_date > as_of
        for closed_date in previous_deals["closed_date"].to_numpy(dtype=object, na_value=None)
    ]
    patients = set(
        previous_deals.loc[
            closed_by_time.astype(bool) & np.array(closed_after, dtype=bool), "patient_key"
        ].astype(str)
    )
    stale_days = timedelta(days=settings.stale_after_days)
    patients |= {
        appointment.patient_key
        for appointment in _appointment_records(appointments)
        if appointment.role != "ignore"
        and appointment.status in PENDING_STATUSES
        and as_of < appointment.day + stale_days <= previous_as_of
    }
    return patients


def stale_appointments(
    appointments: pd.DataFrame, settings: DealSettings, as_of: date, practice_id: str | None = None
) -> pd.DataFrame:
    """The stale appointments as of `as_of` (optionally of one practice), for the data-quality check.

    `appointments` in the shape `compute_deals` takes (the same validation applies), so the check lists
    exactly the members `deal_appointments.is_stale` flags.

    Stale: a non-`ignore` appointment still booked, confirmed or arrived on or after its start date +
    `stale_after_days`, so nobody updated it in Ivoris. `ignore`-type appointments are left out: they
    belong to no deal, so leaving them untouched changes nothing. Columns: `practice_id`,
    `appointment_key`, `patient_key`, `start`, `status`, `days_stale` (days since the start date, so at
    least `stale_after_days`); keys only, no patient data. Sorted by practice, start and numeric id.
    """
    as_of = _as_day(as_of)
    stale = [
        appointment
        for appointment in _appointment_records(appointments)
        if appointment.role != "ignore"
        and appointment.is_stale(as_of, settings)
        and (practice_id is None or appointment.practice_id == practice_id)
    ]
    stale.sort(key=lambda appointment: (appointment.practice_id, *_walk_order(appointment)))
    return pd.DataFrame(
        {
            "practice_id": pd.array([a.practice_id for a in stale], dtype="str"),
            "appointment_key": pd.array([a.key for a in stale], dtype="str"),
            "patient_key": pd.array([a.patient_key for a in stale], dtype="str"),
            "start": pd.Series([a.start for a in stale], dtype=STALE_APPOINTMENTS_SCHEMA["start"]).array,
            "status": pd.array([a.status for a in stale], dtype="str"),
            "days_stale": np.array([(as_of - a.day).days for a in stale], dtype="int64"),
        }
    )
