"""Small builders for appointment and entry frames in the shape the staging layer delivers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd

from biss_pipeline.domain.deals import (
    DealComputation,
    DealSettings,
    EntryRule,
    classify_entries,
    compute_deals,
)

PATIENT = "MB_553"

RULES: tuple[EntryRule, ...] = (
    EntryRule("goz", "1040", True, "goz", "Prophylaxe"),
    EntryRule("goz", "2*", True, "goz", "Füllung"),
    EntryRule("goz", "3*", True, "goz", "Chirurgie"),
    EntryRule("goz", "9*", True, "goz", "Implantologie"),
    EntryRule("goz", "*", True, "goz", "Sonstiges"),
    EntryRule("bema", "Ä1", False, "bema", "Sonstiges"),
    EntryRule("bema", "13*", True, "bema", "Füllung"),
    EntryRule("bema", "*", True, "bema", "Sonstiges"),
    EntryRule("mat", "*", True, "material", "Sonstiges"),
    EntryRule("lab", "L*", True, "labor", "Prothetik"),
    EntryRule("pabg", "*", True, "pabg", "Sonstiges"),
    EntryRule("text", "*", False, "text", "Sonstiges"),
)


def day(text: str) -> date:
    """`"03-10"` is a day of 2024; a full ISO date is taken as it is."""
    return date.fromisoformat(text if len(text) > 5 else f"2024-{text}")


@dataclass(frozen=True)
class A:
    """An appointment: key, deal role, day, status (optionally hour, patient and practice)."""

    key: str
    role: str
    on: str
    status: str = "booked"
    hour: int = 9
    patient: str = PATIENT
    practice: str = "mb"

    def row(self) -> dict[str, object]:
        start = datetime.combine(day(self.on), time(self.hour))
        return {
            "practice_id": self.practice,
            "appointment_key": self.key,
            "patient_key": self.patient,
            "type_key": f"{self.key.split('_')[0]}_{self.role}",
            "deal_role": self.role,
            "start": pd.Timestamp(start),
            "end": pd.Timestamp(start + timedelta(minutes=30)),
            "status": self.status,
            "modified_at": pd.Timestamp("2024-01-01T00:00:00Z"),
        }


@dataclass(frozen=True)
class E:
    """A document entry: key, amount in cents, linked appointment (or None) and day."""

    key: str
    amount_cents: int
    appointment: str | None = None
    on: str = "03-10"
    entry_type: str = "goz"
    code: str = "2060"
    patient: str = PATIENT
    practice: str = "mb"

    def row(self) -> dict[str, object]:
        return {
            "entry_key": self.key,
            "practice_id": self.practice,
            "patient_key": self.patient,
            "appointment_key": self.appointment,
            "entry_date": day(self.on),
            "entry_type": self.entry_type,
            "code": self.code,
            "amount_cents": self.amount_cents,
        }


APPOINTMENT_COLUMNS = list(A("X_1", "lead", "01-01").row())
ENTRY_COLUMNS = list(E("X_1", 0).row())


def appointments_frame(appointments: list[A] | tuple[A, ...]) -> pd.DataFrame:
    frame = pd.DataFrame([appointment.row() for appointment in appointments], columns=APPOINTMENT_COLUMNS)
    return frame.astype(
        {"start": "datetime64[ns]", "end": "datetime64[ns]", "modified_at": "datetime64[ns, UTC]"}
    )


def entries_frame(entries: list[E] | tuple[E, ...]) -> pd.DataFrame:
    frame = pd.DataFrame([entry.row() for entry in entries], columns=ENTRY_COLUMNS)
    return frame.astype({"amount_cents": "int64"})


def compute(
    appointments: list[A] | tuple[A, ...],
    entries: list[E] | tuple[E, ...] = (),
    as_of: str = "03-15",
    settings: DealSettings | None = None,
) -> DealComputation:
    return compute_deals(
        appointments_frame(appointments),
        classify_entries(entries_frame(entries), RULES),
        settings or DealSettings(),
        day(as_of),
    )


def deal(computation: DealComputation, deal_key: str) -> dict[str, object]:
    rows = computation.deals.loc[computation.deals["deal_key"] == deal_key]
    assert len(rows) == 1, f"expected one deal {deal_key}, got {computation.deals['deal_key'].tolist()}"
    return {key: (None if _missing(value) else value) for key, value in rows.iloc[0].to_dict().items()}


def members(computation: DealComputation) -> dict[str, list[str]]:
    """deal_key → its appointment keys in walk order."""
    grouped: dict[str, list[str]] = {}
    for deal_key, appointment_key in zip(
        computation.deal_appointments["deal_key"],
        computation.deal_appointments["appointment_key"],
        strict=True,
    ):
        grouped.setdefault(deal_key, []).append(appointment_key)
    return grouped


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
