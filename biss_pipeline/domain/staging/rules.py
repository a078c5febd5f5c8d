"""Staging: raw Ivoris rows become typed, validated rows; the rest becomes quarantine rows.

Pure functions over row dicts (no Dagster, no database). A row that fails a check goes to
quarantine with its key and the reason, never with its content, and the rest of the
partition goes through. Within one window a key seen more than once keeps its newest
version (by `modified_at`); two versions with the same `modified_at` but different content
are a conflict nobody can resolve automatically, so both are quarantined.

Checks and outcomes (every quarantine row says which):

- patient id missing (appointment, entry): `missing patient`
- appointment's patient not extracted for the window: `unknown patient`
- date/time not ISO or out of range: `unparsable <field>` / `<field> out of range`
- appointment ending before it starts: `end before start`
- status outside the contract: `unknown status`
- type id not among the practice's Ivoris types: `unknown appointment type`
- entry type outside the contract: `unknown entry type`
- amount not a number, more than 2 decimals, or absurd (> 100,000 EUR): `non-numeric amount`,
  `amount with more than 2 decimals`, `absurd amount`
- modifiedAt later than `latest_modified` (default: now + 1 day, for clock skew): `modified_at in
  the future` (such a version would win "newest" forever and move the deals' as-of date; the one
  wall-clock input of staging, and it only ever rejects)
- same key and modifiedAt, other content: `conflicting versions with the same modifiedAt` (every copy)
- string longer than its column: `oversize <field>`
- control characters: `control characters in <field>`
- malformed email / unknown insurance (patient): the field is dropped, the row kept, and a
  quarantine row says `invalid email (dropped)` / `unknown insurance (dropped)`

A type that Ivoris knows but the mapping lacks is not a data problem but a config gap: the
staging asset fails the run with the tab and type named (see `check_types_mapped`).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from biss_pipeline.domain.ivoris.extract import integer_text, usable_id

Row = dict[str, Any]

APPOINTMENT_STATUSES = frozenset(
    {"booked", "confirmed", "arrived", "completed", "cancelled", "no_show", "clarified"})
ENTRY_TYPES = frozenset({"bema", "goz", "mat", "lab", "pabg", "text"})
INSURANCES = frozenset({"GKV", "PKV", "self"})
MAX_LENGTH = {"first_name": 200, "last_name": 200, "email": 254, "phone": 64, "code": 64,
              "description": 500}
# One billing line above this is a typing error (a decimal point lost), not dentistry.
ABSURD_AMOUNT = Decimal("100000.00")
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2100, 12, 31)
EARLIEST_BIRTH = dt.date(1900, 1, 1)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


FUTURE_TOLERANCE = dt.timedelta(days=1)


class Rejected(ValueError):
    """A check failed; the message is the quarantine reason (no personal data in it)."""


@dataclass
class StagedRows:
    rows: list[Row] = field(default_factory=list)
    quarantined: list[Row] = field(default_factory=list)


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def clean_text(row: Row, column: str, required: bool = False) -> str | None:
    value = row.get(column)
    if value is None or value == "":
        if required:
            raise Rejected(f"missing {column}")
        return None
    text = str(value)
    if _has_control_characters(text):
        raise Rejected(f"control characters in {column}")
    if len(text) > MAX_LENGTH.get(column, 64):
        raise Rejected(f"oversize {column}")
    return text


def parse_local_datetime(row: Row, column: str) -> dt.datetime:
    value = row.get(column)
    if not isinstance(value, str) or not LOCAL_DATETIME.match(value):
        raise Rejected(f"unparsable {column}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Rejected(f"unparsable {column}") from None
    if not EARLIEST <= parsed.date() <= LATEST:
        raise Rejected(f"{column} out of range")
    return parsed


def parse_utc_timestamp(row: Row, column: str = "modified_at") -> dt.datetime:
    value = row.get(column)
    if not isinstance(value, str) or len(value) < 19:
        raise Rejected(f"unparsable {column}")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(f"unparsable {column}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if not EARLIEST <= parsed.date() <= LATEST:
        raise Rejected(f"{column} out of range")
    return parsed.astimezone(dt.UTC)


def parse_day(row: Row, column: str, earliest: dt.date = EARLIEST, latest: dt.date = LATEST) -> dt.date:
    value = row.get(column)
    if not isinstance(value, str) or len(value) != 10:
        raise Rejected(f"unparsable {column}")
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise Rejected(f"unparsable {column}") from None
    if not earliest <= parsed <= latest:
        raise Rejected(f"{column} out of range")
    return parsed


def parse_amount_cents(value: Any) -> int:
    """EUR amount as Ivoris wrote it ('480.00') to integer cents, exactly."""
    if value is None or isinstance(value, bool):
        raise Rejected("non-numeric amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise Rejected("non-numeric amount") from None
    if not amount.is_finite():
        raise Rejected("non-numeric amount")
    if abs(amount) > ABSURD_AMOUNT:  # first: quantizing 1E+400 would overflow the decimal context
        raise Rejected("absurd amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise Rejected("amount with more than 2 decimals")
    return int(amount * 100)


def _key(prefix: str, value: Any, missing_reason: str) -> str:
    ivoris_id = integer_text(value)  # SPEC §3: ids are integers
    if ivoris_id is None:
        raise Rejected(missing_reason)
    return f"{prefix}{ivoris_id}"


def _quarantine(row: Row, entity: str, key: str, reason: str) -> Row:
    return {"practice_id": row["practice_id"], "partition_date": row["partition_date"],
            "entity": entity, "stage": "staging", "record_key": key, "reason": reason}


def _stage(
    raw_rows: Iterable[Row], entity: str, key_column: str,
    convert: Callable[[Row], tuple[Row, list[str]]], latest_modified: dt.datetime | None = None,
) -> StagedRows:
    """Validate every row, then keep the newest version per key (conflicts quarantined)."""
    if latest_modified is None:
        latest_modified = dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE
    result = StagedRows()
    versions: dict[str, list[tuple[Row, Row]]] = {}
    for raw in raw_rows:
        key = raw[key_column]
        try:
            staged, notes = convert(raw)
            if staged["modified_at"] > latest_modified:
                raise Rejected("modified_at in the future")
        except Rejected as rejection:
            result.quarantined.append(_quarantine(raw, entity, key, str(rejection)))
            continue
        result.quarantined.extend(_quarantine(raw, entity, key, note) for note in notes)
        versions.setdefault(key, []).append((raw, staged))
    for key, candidates in versions.items():
        newest = max(staged["modified_at"] for _, staged in candidates)
        latest = [(raw, staged) for raw, staged in candidates if staged["modified_at"] == newest]
        contents = {tuple(sorted((k, v) for k, v in staged.items() if k != "partition_date"))
                    for _, staged in latest}
        if len(contents) > 1:
            result.quarantined.extend(
                _quarantine(raw, entity, key, "conflicting versions with the same modifiedAt")
                for raw, _ in latest)
            continue
        result.rows.append(max(latest, key=lambda pair: pair[1]["partition_date"])[1])
    return result


PATIENT_QUARANTINED = "patient quarantined"


def stage_appointments(raw_rows: Iterable[Row], key_prefix: str, known_patient_keys: set[str],
                       known_type_keys: set[str], latest_modified: dt.datetime | None = None,
                       held_patient_keys: Collection[str] = frozenset()) -> StagedRows:
    """`held_patient_keys`: patients Ivoris delivered but whose every version is quarantined; their
    appointments are held back (never an empty contact in HubSpot) until a good version arrives."""
    def convert(raw: Row) -> tuple[Row, list[str]]:
        patient_key = _key(key_prefix, raw.get("patient_id"), "missing patient")
        if patient_key in held_patient_keys and patient_key not in known_patient_keys:
            raise Rejected(PATIENT_QUARANTINED)
        if patient_key not in known_patient_keys:
            raise Rejected("unknown patient")
        type_key = _key(key_prefix, raw.get("type_id"), "unknown appointment type")
        if type_key not in known_type_keys:
            raise Rejected("unknown appointment type")
        start = parse_local_datetime(raw, "start")
        end = parse_local_datetime(raw, "end")
        if end < start:
            raise Rejected("end before start")
        status = clean_text(raw, "status", required=True)
        if status not in APPOINTMENT_STATUSES:
            raise Rejected("unknown status")
        chair_id = usable_id(raw.get("chair_id"))
        return {
            "practice_id": raw["practice_id"], "partition_date": raw["partition_date"],
            "appointment_key": raw["appointment_key"], "patient_key": patient_key,
            "chair_key": f"{key_prefix}{chair_id}" if chair_id else None, "type_key": type_key,
            "start": start, "end": end, "status": status, "modified_at": parse_utc_timestamp(raw),
        }, []

    return _stage(raw_rows, "appointment", "appointment_key", convert, latest_modified)


def stage_patients(raw_rows: Iterable[Row], as_of: dt.date,
                   latest_modified: dt.datetime | None = None) -> StagedRows:
    def convert(raw: Row) -> tuple[Row, list[str]]:
        notes: list[str] = []
        birth = None
        if raw.get("birth_date") not in (None, ""):
            birth = parse_day(raw, "birth_date", EARLIEST_BIRTH, as_of)
        email = clean_text(raw, "email")
        if email is not None and not EMAIL.match(email):
            notes.append("invalid email (dropped)")
            email = None
        insurance = clean_text(raw, "insurance")
        if insurance is not None and insurance not in INSURANCES:
            notes.append("unknown insurance (dropped)")
            insurance = None
        return {
            "practice_id": raw["practice_id"], "partition_date": raw["partition_date"],
            "patient_key": raw["patient_key"],
            "first_name": clean_text(raw, "first_name"), "last_name": clean_text(raw, "last_name"),
            "birth_date": birth, "email": email, "phone": clean_text(raw, "phone"),
            "insurance": insurance, "modified_at": parse_utc_timestamp(raw),
        }, notes

    return _stage(raw_rows, "patient", "patient_key", convert, latest_modified)


def stage_document_entries(raw_rows: Iterable[Row], key_prefix: str,
                           latest_modified: dt.datetime | None = None,
                           held_patient_keys: Collection[str] = frozenset()) -> StagedRows:
    def convert(raw: Row) -> tuple[Row, list[str]]:
        patient_key = _key(key_prefix, raw.get("patient_id"), "missing patient")
        if patient_key in held_patient_keys:
            raise Rejected(PATIENT_QUARANTINED)
        appointment_key = None
        if raw.get("appointment_id") not in (None, ""):
            appointment_key = _key(key_prefix, raw.get("appointment_id"), "invalid appointment id")
        entry_type = clean_text(raw, "entry_type", required=True)
        if entry_type not in ENTRY_TYPES:
            raise Rejected("unknown entry type")
        return {
            "practice_id": raw["practice_id"], "partition_date": raw["partition_date"],
            "entry_key": raw["entry_key"], "patient_key": patient_key,
            "appointment_key": appointment_key, "entry_date": parse_day(raw, "entry_date"),
            "entry_type": entry_type, "code": clean_text(raw, "code") or "",
            "description": clean_text(raw, "description"),
            "amount_cents": parse_amount_cents(raw.get("amount")),
            "modified_at": parse_utc_timestamp(raw),
        }, []

    return _stage(raw_rows, "document_entry", "entry_key", convert, latest_modified)


def _instant(value: Any) -> float:
    # SQLite hands back naive datetimes, PostgreSQL aware ones; both are UTC here
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float("-inf")


def newest_by_key(rows: Iterable[Mapping[str, Any]], key_column: str) -> dict[str, Row]:
    """Across partitions, the current version of every key: the newest `modified_at`, then the latest
    partition (an appointment moved to another day sits in two partitions until the old day is
    re-extracted, and the old day loses). Of two rows equal in both, the first one read stays."""
    newest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        current = newest.get(row[key_column])
        if current is None or (_instant(row["modified_at"]), row["partition_date"]) > (
                _instant(current["modified_at"]), current["partition_date"]):
            newest[row[key_column]] = row
    return {key: dict(row) for key, row in newest.items()}


def newest_rows(rows: Iterable[Mapping[str, Any]], key_column: str) -> list[Row]:
    return list(newest_by_key(rows, key_column).values())
