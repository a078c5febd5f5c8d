"""Turn Ivoris records into raw warehouse rows (pure functions, no Dagster, no network).

The raw layer keeps values as text exactly as Ivoris sent them; only what is needed to key
and place a record is checked here. A record that has no usable id, or no date that puts it
in the requested window, or text no warehouse can store (a NUL character, a lone UTF-16
surrogate such as `"\ud800"`), or two different copies with the same `modifiedAt`, becomes a
quarantine row with the reason (never with its content), and the rest of the window goes through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from biss_pipeline.domain.calendar import local_day

MAX_KEY_LENGTH = 40
Row = dict[str, Any]


@dataclass
class ExtractedRows:
    rows: list[Row] = field(default_factory=list)
    quarantined: list[Row] = field(default_factory=list)


def as_text(value: Any) -> str | None:
    """Text as Ivoris sent it; Decimals keep their written digits ('480.00' stays '480.00')."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict | list):
        # A nested structure where a scalar belongs: keep a marker, staging rejects it.
        return f"<{type(value).__name__}>"
    return str(value)


def usable_id(value: Any) -> str | None:
    """An Ivoris id we can build a global key from: a non-negative integer or a short token."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text and len(text) <= MAX_KEY_LENGTH and text.replace("-", "").isalnum():
            return text
    return None


def integer_id(value: Any) -> str | None:
    """An id as Ivoris' contract has it (SPEC §3: ids are integers): a JSON integer >= 0, as text.
    A numeric string, a float or a boolean is bad input, even where it looks like a number."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return str(value)


def integer_text(value: Any) -> str | None:
    """An id read back from a raw text column: digits only (raw rows hold integer ids as text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return integer_id(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return str(int(value.strip()))
    return None


# Contract fields that reference another record: integers or null, anything else is bad input.
REFERENCE_FIELDS = frozenset({"patientId", "appointmentId", "chairId", "typeId"})
NON_INTEGER_ID = "non-integer id"


def bad_reference(record: Mapping[str, Any], fields: Iterable[str]) -> str | None:
    """The quarantine reason for a reference field that is neither null nor an integer."""
    for name in fields:
        value = record.get(name)
        if name in REFERENCE_FIELDS and value is not None and integer_id(value) is None \
                and not isinstance(value, dict | list):
            return f"non-integer {name}"
    return None


def _id_problem(value: Any) -> str:
    """Why a record's id cannot key it: absent or a structure, or present but not an integer."""
    if isinstance(value, str | float | bool | Decimal):
        return NON_INTEGER_ID
    return "missing or invalid id"


def day_of(value: Any) -> dt.date | None:
    """The calendar day of an ISO date or local date-time string, or None if it has none."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def unstorable_text(record: dict[str, Any]) -> str | None:
    """The quarantine reason if a text value cannot be stored as text (PostgreSQL refuses NUL,
    UTF-8 has no lone surrogates), else None."""
    for name, value in record.items():
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            return f"NUL character in {name}"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"lone surrogate in {name}"
    return None


def _fingerprint(record: dict[str, Any]) -> str:
    return repr(sorted(record.items(), key=lambda item: str(item[0])))


def conflicting_ids(records: list[dict[str, Any]]) -> set[str]:
    """Ids that arrive as different copies with the same `modifiedAt` (the client keeps only such
    ties, having dropped older copies): no copy can be chosen, so the id is quarantined."""
    copies: dict[str, set[str]] = {}
    for record in records:
        ivoris_id = integer_id(record.get("id"))
        if ivoris_id is not None:
            copies.setdefault(ivoris_id, set()).add(_fingerprint(record))
    return {ivoris_id for ivoris_id, versions in copies.items() if len(versions) > 1}


CONFLICT_REASON = "conflicting versions with the same modifiedAt"


def _quarantine(practice_id: str, partition_date: dt.date, entity: str, record_key: str,
                reason: str) -> Row:
    return {"practice_id": practice_id, "partition_date": partition_date, "entity": entity,
            "stage": "raw", "record_key": record_key, "reason": reason}


def _place(
    practice_id: str, key_prefix: str, entity: str, records: Iterable[dict[str, Any]],
    date_field: str, date_from: dt.date, date_to: dt.date, result: ExtractedRows,
    reference_fields: Iterable[str] = (),
) -> Iterable[tuple[dict[str, Any], str, dt.date]]:
    """Yield (record, ivoris id, partition day) for records that can be keyed and placed."""
    unkeyed = 0
    seen: set[str] = set()
    records = list(records)
    conflicts = conflicting_ids(records)
    for record in records:
        ivoris_id = integer_id(record.get("id"))
        if ivoris_id is None:
            unkeyed += 1
            result.quarantined.append(_quarantine(
                practice_id, date_from, entity, f"record-without-id-{unkeyed}",
                _id_problem(record.get("id"))))
            continue
        key = f"{key_prefix}{ivoris_id}"
        reference = bad_reference(record, reference_fields)
        if reference is not None:
            result.quarantined.append(_quarantine(practice_id, date_from, entity, key, reference))
            continue
        if ivoris_id in conflicts:
            if key not in seen:
                seen.add(key)
                result.quarantined.append(_quarantine(practice_id, date_from, entity, key, CONFLICT_REASON))
            continue
        unstorable = unstorable_text(record)
        if unstorable is not None:
            result.quarantined.append(_quarantine(practice_id, date_from, entity, key, unstorable))
            continue
        day = day_of(record.get(date_field))
        if day is None:
            result.quarantined.append(_quarantine(
                practice_id, date_from, entity, key, f"unparsable {date_field}"))
            continue
        if not date_from <= day <= date_to:
            # Not lost: the partition that holds this day extracts it.
            result.quarantined.append(_quarantine(
                practice_id, date_from, entity, key,
                f"{date_field} outside requested window"))
            continue
        if key in seen:  # the client already dedupes; this guards direct callers
            continue
        seen.add(key)
        yield record, key, day


def window_rows(practice_id: str, key_prefix: str, entity: str, key_column: str, date_field: str,
                fields: Mapping[str, str], records: Iterable[dict[str, Any]],
                date_from: dt.date, date_to: dt.date) -> ExtractedRows:
    """Rows of an entity placed by one of its dates (`date_field`): one per keyed record in the window,
    each column (`fields`: column → contract field) as the text Ivoris sent."""
    result = ExtractedRows()
    for record, key, day in _place(practice_id, key_prefix, entity, records, date_field,
                                   date_from, date_to, result, tuple(fields.values())):
        result.rows.append({
            "practice_id": practice_id, "partition_date": day, key_column: key,
            "ivoris_id": key.removeprefix(key_prefix),
            **{column: as_text(record.get(name)) for column, name in fields.items()},
        })
    return result


def patient_rows(practice_id: str, key_prefix: str, fields: Mapping[str, str],
                 records: Iterable[dict[str, Any]], reasons_by_patient: dict[str, dict[dt.date, str]],
                 date_from: dt.date, date_to: dt.date) -> ExtractedRows:
    """One row per (day, patient): the days come from the referencing appointments or the
    modification date (`reasons_by_patient[id][day]` says which), so each partition holds the
    patients it needs."""
    result = ExtractedRows()
    records = list(records)
    conflicts = conflicting_ids(records)
    reported: set[tuple[str, str]] = set()
    for record in records:
        ivoris_id = integer_id(record.get("id"))
        if ivoris_id is None:
            result.quarantined.append(_quarantine(
                practice_id, date_from, "patient", f"record-without-id-{len(result.quarantined) + 1}",
                _id_problem(record.get("id"))))
            continue
        key = f"{key_prefix}{ivoris_id}"
        problem = CONFLICT_REASON if ivoris_id in conflicts else unstorable_text(record)
        if problem is not None:
            if (key, problem) not in reported:
                reported.add((key, problem))
                result.quarantined.append(_quarantine(practice_id, date_from, "patient", key, problem))
            continue
        for day, reason in sorted(reasons_by_patient.get(ivoris_id, {}).items()):
            if not date_from <= day <= date_to:
                continue
            result.rows.append({
                "practice_id": practice_id, "partition_date": day, "patient_key": key,
                "ivoris_id": ivoris_id,
                **{column: as_text(record.get(name)) for column, name in fields.items()},
                "reason": reason,
            })
    return result


def modification_day(record: dict[str, Any]) -> dt.date | None:
    """The practice-local day a patient record was last modified (its partition for 'modified' rows):
    partitions are local days, and 00:30 in Berlin is still the previous day in UTC."""
    value = record.get("modifiedAt")
    if not isinstance(value, str):
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return day_of(value)  # a bare date, or garbage (None)
    return local_day(stamp) if stamp.tzinfo else stamp.date()
