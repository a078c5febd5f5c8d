"""Warehouse rows → HubSpot property payloads and their content hashes (pure functions).

Value formats (HubSpot stores every value as a string):

| kind      | sent as                          | why                                                 |
| --------- | -------------------------------- | --------------------------------------------------- |
| money     | `"480.00"`, from integer cents   | exact; never through float                          |
| date      | `"YYYY-MM-DD"`                   | HubSpot date properties are midnight UTC            |
| datetime  | `"YYYY-MM-DDTHH:MM:SSZ"` (UTC)   | appointment times are Berlin wall-clock in staging  |
| closedate | the day at midnight UTC          | a day, not an instant; shows as that day in Berlin  |
| empty     | `""`                             | clears a value that no longer applies (set back)    |

Every payload carries all of its properties, empty ones as `""`, so a value that disappears in the
warehouse is cleared in HubSpot. Exception: personal contact fields are sent only when the patient
is known in staging (a quarantined patient does not wipe the names HubSpot already has) and only
when allowlisted.

Shared emails: HubSpot allows one contact per email address. Among the practice's contacts that share
an address (families), the lowest *numeric* patient id keeps it (`RB_7` before `RB_34`, the order
`deals.rules.key_order` defines; a family member who appears later with a higher id never takes it
over); the others are sent `email: ""` (an explicit clear, so an old owner's address does not stay in
HubSpot when ownership moves) and flagged `email_withheld_shared`. The sync sends the clears before the
other contact writes, so the new owner's address is free when it arrives.
An address that fails a basic syntax check is withheld and flagged
`email_withheld_invalid` (HubSpot would reject the whole batch over it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from biss_pipeline.domain.calendar import PRACTICE_TZ
from biss_pipeline.domain.deals.rules import key_order
from biss_pipeline.domain.hubspot.model import (
    APPOINTMENT_STATUS_PROPERTY,
    CONTACT_FIELD_SOURCES,
    IVORIS_STATUS_PROPERTY,
    PRACTICE_PROPERTY,
    PipelineSpec,
    bucket_property,
    category_property,
)

# Part of every hash: bump it when the payload format changes, so every record is sent once again.
PAYLOAD_VERSION = "1"
LOCAL_TZ = PRACTICE_TZ

FLAG_EMAIL_SHARED = "email_withheld_shared"
FLAG_EMAIL_INVALID = "email_withheld_invalid"
FLAG_EMAIL_CONFLICT = "email_withheld_conflict"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class DesiredRecord:
    """One object as the warehouse wants it in HubSpot. `properties` excludes the unique key, which
    goes into the upsert's `id`."""

    key: str
    properties: Mapping[str, str]
    flags: tuple[str, ...] = ()
    content_hash: str = field(default="")

    def __post_init__(self) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.properties, self.flags))


def content_hash(properties: Mapping[str, str], flags: Sequence[str] = ()) -> str:
    canonical = json.dumps(
        {"v": PAYLOAD_VERSION, "p": dict(sorted(properties.items())), "f": sorted(flags)},
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- value formats ------------------------------------------------------------------------------------


def money(cents: int | None) -> str:
    """Integer cents → HubSpot number string with two decimals; exact for any size and sign."""
    if cents is None:
        return ""
    value = int(cents)
    sign = "-" if value < 0 else ""
    whole, rest = divmod(abs(value), 100)
    return f"{sign}{whole}.{rest:02d}"


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    return date.fromisoformat(text[:10]) if text else None


def hs_date(value: Any) -> str:
    day = _as_date(value)
    return day.isoformat() if day is not None else ""


def hs_day_instant(value: Any) -> str:
    """A day for a datetime property (closedate): midnight UTC of that day."""
    day = _as_date(value)
    return f"{day.isoformat()}T00:00:00Z" if day is not None else ""


def hs_datetime(value: Any, tz: ZoneInfo = LOCAL_TZ) -> str:
    """A staging timestamp (naive = local wall-clock in `tz`) as a UTC instant."""
    if value is None:
        return ""
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    return "" if text.lower() in {"nan", "nat", "none", "<na>"} else text


def _count(value: Any) -> str:
    return "" if value is None else str(int(value))


def normalise_email(value: Any) -> str:
    return _text(value).lower()


def valid_email(value: str) -> bool:
    return bool(_EMAIL.match(value))


# -- contacts ------------------------------------------------------------------------------------------


def email_owners(patients: Mapping[str, Mapping[str, Any] | None]) -> dict[str, str]:
    """Normalised email → the patient key that may carry it: the lowest numeric id among those sharing
    it (`key_order`), not the lowest string."""
    sharers: dict[str, list[str]] = defaultdict(list)
    for key, row in patients.items():
        if row is None:
            continue
        email = normalise_email(row.get("email"))
        if email and valid_email(email):
            sharers[email].append(key)
    return {email: min(keys, key=key_order) for email, keys in sharers.items()}


def contact_record(
    key: str,
    practice_id: str,
    patient: Mapping[str, Any] | None,
    rollup: Mapping[str, Any] | None,
    allowed_fields: Sequence[str],
    owners: Mapping[str, str],
) -> DesiredRecord:
    rollup = rollup or {}
    properties: dict[str, str] = {
        PRACTICE_PROPERTY: practice_id,
        "biss_num_deals": _count(rollup.get("num_deals", 0)),
        "biss_num_open_deals": _count(rollup.get("num_open_deals", 0)),
        "biss_last_appointment_date": hs_date(rollup.get("last_appointment_date")),
        "biss_next_appointment_date": hs_date(rollup.get("next_appointment_date")),
        "biss_lifetime_revenue": money(rollup.get("lifetime_revenue_cents", 0)),
    }
    flags: list[str] = []
    if patient is not None:
        for prop in allowed_fields:
            column = CONTACT_FIELD_SOURCES[prop]
            if prop == "email":
                email = normalise_email(patient.get(column))
                if email and not valid_email(email):
                    flags.append(FLAG_EMAIL_INVALID)
                elif email and owners.get(email, key) != key:
                    flags.append(FLAG_EMAIL_SHARED)
                    properties["email"] = ""  # cleared explicitly: this contact may have owned it before
                else:
                    properties["email"] = email
            elif prop == "date_of_birth":
                properties[prop] = hs_date(patient.get(column))
            else:
                properties[prop] = _text(patient.get(column))
    return DesiredRecord(key, properties, tuple(sorted(flags)))


def contact_records(
    practice_id: str,
    contact_keys: Iterable[str],
    patients: Mapping[str, Mapping[str, Any]],
    rollups: Mapping[str, Mapping[str, Any]],
    allowed_fields: Sequence[str],
) -> dict[str, DesiredRecord]:
    keys = sorted(set(contact_keys))
    known = {key: patients.get(key) for key in keys}
    owners = email_owners(known) if "email" in allowed_fields else {}
    return {
        key: contact_record(key, practice_id, known[key], rollups.get(key), allowed_fields, owners)
        for key in keys
    }


# -- deals ---------------------------------------------------------------------------------------------


def deal_record(
    deal: Mapping[str, Any],
    revenue: Sequence[Mapping[str, Any]],
    *,
    practice_id: str,
    pipeline: PipelineSpec,
    pipeline_id: str,
    stage_ids: Mapping[str, str],
    buckets: Sequence[str],
    categories: Sequence[str],
    name_prefix: str,
) -> DesiredRecord:
    stage = pipeline.stage(str(deal["stage"]))
    closed = stage.is_closed
    close_day = deal.get("closed_date") or deal.get("last_appointment_date")
    properties: dict[str, str] = {
        PRACTICE_PROPERTY: practice_id,
        "dealname": f"{name_prefix} {deal['deal_key']}",
        "pipeline": pipeline_id,
        "dealstage": stage_ids[stage.stage],
        "amount": money(deal.get("amount_cents", 0)),
        "closedate": hs_day_instant(close_day) if closed else "",
        "biss_behandlungsstart": hs_date(deal.get("behandlungsstart")),
        "biss_treatment_category": _text(deal.get("treatment_category")),
        "biss_lost_reason": _text(deal.get("lost_reason")),
        "biss_num_appointments": _count(deal.get("num_appointments")),
        "biss_first_appointment_date": hs_date(deal.get("first_appointment_date")),
        "biss_last_appointment_date": hs_date(deal.get("last_appointment_date")),
    }
    by_bucket: dict[str, int] = dict.fromkeys(buckets, 0)
    by_category: dict[str, int] = dict.fromkeys(categories, 0)
    for row in revenue:
        by_bucket[str(row["revenue_bucket"])] = by_bucket.get(str(row["revenue_bucket"]), 0) + int(
            row["amount_cents"]
        )
        by_category[str(row["treatment_category"])] = by_category.get(
            str(row["treatment_category"]), 0
        ) + int(row["amount_cents"])
    for bucket, cents in by_bucket.items():
        properties[bucket_property(bucket)] = money(cents)
    for category, cents in by_category.items():
        properties[category_property(category)] = money(cents)
    return DesiredRecord(str(deal["deal_key"]), properties)


# -- appointments --------------------------------------------------------------------------------------


def appointment_record(
    appointment: Mapping[str, Any],
    *,
    practice_id: str,
    type_label: str,
    chair_label: str,
    statuses: Mapping[str, str],
) -> DesiredRecord:
    start = appointment.get("start")
    start_text = start.strftime("%d.%m.%Y %H:%M") if isinstance(start, datetime) else ""
    properties = {
        PRACTICE_PROPERTY: practice_id,
        # no patient data in the name: it shows in every HubSpot list and timeline
        "hs_appointment_name": f"{type_label} {start_text}".strip(),
        "hs_appointment_start": hs_datetime(start),
        "hs_appointment_end": hs_datetime(appointment.get("end")),
        # the portal's option; a status the mapping lacks is sent empty rather than as free text,
        # which HubSpot would refuse for the whole batch (the mapping's validation lists every status)
        APPOINTMENT_STATUS_PROPERTY: statuses.get(_text(appointment.get("status")), ""),
        IVORIS_STATUS_PROPERTY: _text(appointment.get("status")),
        "biss_appointment_type_key": _text(appointment.get("type_key")),
        "biss_appointment_type": type_label,
        "biss_chair_key": _text(appointment.get("chair_key")),
        "biss_chair": chair_label,
    }
    return DesiredRecord(str(appointment["appointment_key"]), properties)


def association_key(source_key: str, target_key: str) -> str:
    """The ledger's record_key of an association: `<from key>><to key>` (keys never contain `>`)."""
    return f"{source_key}>{target_key}"


def association_hash(source_id: str, target_id: str, type_id: int) -> str:
    """Changes when either end was re-created in HubSpot (new id), so the pair is sent again."""
    return hashlib.sha256(f"{PAYLOAD_VERSION}:{source_id}>{target_id}:{type_id}".encode()).hexdigest()
