"""Property values: HubSpot stores every value as a string, validates it against the property's type
on write, and compares typed values in search filters and sorts."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from biss_emulators.hubspot.errors import property_problem

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_STRING_LENGTH = 65_536


def iso(dt: datetime) -> str:
    """HubSpot's timestamp format: UTC with milliseconds and a `Z`."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso(datetime.now(UTC))


def parse_instant(raw: str) -> datetime | None:
    """Epoch milliseconds, an ISO date-time or a bare date (midnight UTC)."""
    text = raw.strip()
    if not text:
        return None
    if re.fullmatch(r"-?\d+", text):
        try:
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        if _DATE_ONLY.match(text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def to_text(value: Any) -> str | None:
    """JSON clients send numbers and booleans too; HubSpot keeps them as text. None clears."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def normalise_value(
    prop: dict[str, Any], value: Any, *, object_type: str, allowed_options: list[str] | None = None
) -> tuple[str | None, dict[str, Any] | None]:
    """Validate one written value: (normalised text or None to clear, problem or None)."""
    name = prop["name"]
    text = to_text(value)
    if text is None or text == "":
        return None, None
    ptype = prop["type"]
    if len(text) > MAX_STRING_LENGTH:
        return None, property_problem(
            name, "INVALID_STRING_LENGTH", f"Value for {name} exceeds {MAX_STRING_LENGTH} characters"
        )
    if object_type == "contacts" and name == "email":
        if not _EMAIL.match(text.strip()):
            return None, property_problem(name, "INVALID_EMAIL", f"Email address {text} is invalid")
        return text.strip().lower(), None
    if ptype == "number":
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            return None, property_problem(name, "INVALID_NUMBER", f"{text} was not a valid number.")
        return text.strip(), None
    if ptype == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            return None, property_problem(name, "INVALID_BOOLEAN", f"{text} was not a valid boolean.")
        return lowered, None
    if ptype == "date":
        instant = parse_instant(text)
        if instant is None:
            return None, property_problem(name, "INVALID_DATE", f"{text} was not a valid date.")
        if (instant.hour, instant.minute, instant.second, instant.microsecond) != (0, 0, 0, 0):
            return None, property_problem(
                name, "INVALID_DATE", f"{text} is at {instant.hour}:{instant.minute} UTC, not midnight!"
            )
        return instant.date().isoformat(), None
    if ptype == "datetime":
        instant = parse_instant(text)
        if instant is None:
            return None, property_problem(name, "INVALID_DATETIME", f"{text} was not a valid datetime.")
        return iso(instant), None
    if ptype == "enumeration":
        options = allowed_options if allowed_options is not None else [o["value"] for o in prop["options"]]
        chosen = text.split(";") if prop.get("fieldType") == "checkbox" else [text]
        for item in chosen:
            if item not in options:
                return None, property_problem(
                    name,
                    "INVALID_OPTION",
                    f"{text} was not one of the allowed options: [{', '.join(options)}]",
                )
        return text, None
    return text, None


def sort_key(prop: dict[str, Any] | None, raw: str) -> tuple[int, Any]:
    """A key that orders values the way HubSpot does for the property's type."""
    ptype = prop["type"] if prop else "string"
    if ptype == "number":
        try:
            number = float(raw)
            if not math.isnan(number):
                return (0, number)
        except ValueError:
            pass
    if ptype in ("date", "datetime"):
        instant = parse_instant(raw)
        if instant is not None:
            return (0, instant.timestamp())
    return (1, raw.lower())


def comparable(prop: dict[str, Any] | None, raw: str) -> Any:
    """A filter operand in the property's type (numbers and instants compare numerically)."""
    ptype = prop["type"] if prop else "string"
    if ptype == "number":
        try:
            return float(raw)
        except ValueError:
            return raw.lower()
    if ptype in ("date", "datetime"):
        instant = parse_instant(raw)
        return instant.timestamp() if instant is not None else raw.lower()
    return raw.lower()
