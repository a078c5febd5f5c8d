"""The CRM search request: filter groups (OR of ANDs), sorts, free-text query and offset paging."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from biss_emulators.hubspot.errors import validation_error
from biss_emulators.hubspot.values import comparable, sort_key

MAX_PAGE_SIZE = 200
MAX_RESULTS = 10_000
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS_TOTAL = 18
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
_TOKEN_SPLIT = re.compile(r"[\s,.;:@/\\\-_()]+")


def parse_request(
    body: dict[str, Any],
) -> tuple[list[list[dict[str, Any]]], list[tuple[str, bool]], int, int]:
    """Validate the body the way HubSpot does: (filter groups, sorts, limit, offset)."""
    groups_raw = body.get("filterGroups") or []
    if not isinstance(groups_raw, list):
        raise validation_error("filterGroups must be a list")
    if len(groups_raw) > MAX_FILTER_GROUPS:
        raise validation_error(
            f"Too many filter groups ({len(groups_raw)}). The maximum number of filter groups is "
            f"{MAX_FILTER_GROUPS}."
        )
    groups: list[list[dict[str, Any]]] = []
    total = 0
    for group in groups_raw:
        filters = (group or {}).get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise validation_error(
                f"Too many filters in a filter group ({len(filters)}). "
                f"The maximum is {MAX_FILTERS_PER_GROUP}."
            )
        for f in filters:
            if not isinstance(f, dict) or not f.get("propertyName") or f.get("operator") not in OPERATORS:
                raise validation_error(f"Invalid filter: {f!r}")
        total += len(filters)
        groups.append(filters)
    if total > MAX_FILTERS_TOTAL:
        raise validation_error(
            f"Too many filters ({total}). The maximum number of filters is {MAX_FILTERS_TOTAL}."
        )

    sorts: list[tuple[str, bool]] = []
    for s in body.get("sorts") or []:
        # The SDK types sorts as strings ("-createdate"); HubSpot's docs send objects.
        if isinstance(s, str):
            sorts.append((s.lstrip("-"), s.startswith("-")))
        elif isinstance(s, dict) and s.get("propertyName"):
            sorts.append((s["propertyName"], str(s.get("direction", "ASCENDING")).upper() == "DESCENDING"))
        else:
            raise validation_error(f"Invalid sort: {s!r}")

    limit_raw = body.get("limit")
    limit = 10 if limit_raw is None else _int(limit_raw, "limit")
    if limit < 1 or limit > MAX_PAGE_SIZE:
        raise validation_error(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    after_raw = body.get("after")
    offset = 0 if after_raw in (None, "") else _int(after_raw, "after")
    if offset < 0:
        raise validation_error(f"after must not be negative, got {offset}")
    if offset >= MAX_RESULTS:
        raise validation_error(
            f"The search API cannot page beyond {MAX_RESULTS} results (after={offset}).",
            sub_category="crm.search.PAGINATION_LIMIT_EXCEEDED",
        )
    return groups, sorts, limit, offset


def _int(raw: Any, field: str) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise validation_error(f"{field} must be an integer, got {raw!r}") from None


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(text.lower()) if t]


def _filter_matches(f: dict[str, Any], props: dict[str, str], schema: dict[str, dict[str, Any]]) -> bool:
    name = f["propertyName"]
    op = f["operator"]
    prop = schema.get(name)
    raw = props.get(name)
    if op == "HAS_PROPERTY":
        return raw not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return raw in (None, "")
    if op in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN") and raw in (None, ""):
        return True
    if raw in (None, ""):
        return False
    assert raw is not None
    value = comparable(prop, raw)
    if op in ("IN", "NOT_IN"):
        wanted = {comparable(prop, str(v)) for v in f.get("values") or []}
        return (value in wanted) == (op == "IN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(f.get("value", "")).lower()
        tokens = _tokens(raw)
        hit = any(fnmatch.fnmatchcase(t, pattern) for t in tokens) or fnmatch.fnmatchcase(
            raw.lower(), pattern
        )
        return hit == (op == "CONTAINS_TOKEN")
    operand = comparable(prop, str(f.get("value", "")))
    try:
        if op == "EQ":
            return bool(value == operand)
        if op == "NEQ":
            return bool(value != operand)
        if op == "LT":
            return bool(value < operand)
        if op == "LTE":
            return bool(value <= operand)
        if op == "GT":
            return bool(value > operand)
        if op == "GTE":
            return bool(value >= operand)
        if op == "BETWEEN":
            high = comparable(prop, str(f.get("highValue", "")))
            return bool(operand <= value <= high)
    except TypeError:
        # a number compared with text that is not a number: HubSpot finds nothing
        return False
    return False


def matches(
    props: dict[str, str],
    groups: list[list[dict[str, Any]]],
    query: str | None,
    searchable: tuple[str, ...],
    schema: dict[str, dict[str, Any]],
) -> bool:
    if groups and not any(all(_filter_matches(f, props, schema) for f in group) for group in groups):
        return False
    if query:
        needle = query.strip().lower()
        haystack = [props.get(name) or "" for name in searchable]
        if not any(needle in text.lower() for text in haystack):
            return False
    return True


def sort_records(
    records: list[dict[str, Any]], sorts: list[tuple[str, bool]], schema: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Stable multi-key sort; records without the sort property go last in either direction."""
    ordered = sorted(records, key=lambda r: int(r["id"]))
    for name, descending in reversed(sorts):
        prop = schema.get(name)
        present = [r for r in ordered if r["properties"].get(name) not in (None, "")]
        missing = [r for r in ordered if r["properties"].get(name) in (None, "")]
        present.sort(key=lambda r, p=prop, n=name: sort_key(p, r["properties"][n]), reverse=descending)
        ordered = present + missing
    return ordered
