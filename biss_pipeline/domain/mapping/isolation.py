"""One practice's mistake disables that practice only, and a mapping that cannot be read falls back to
the last one that loaded (issue 16, item 2).

`parse_isolated(tabs)` parses like `parse_mapping`, but an error that belongs to one practice (a row of
its `appointment_types`, its row in `practices`) takes that practice's rows out and parses again, so
the other practices load. The practice stays listed in `disabled` with the error, which names tab, row
and column; if its `practices` row itself was fine the practice stays in the config (its assets,
jobs and schedules keep existing), and every run of it fails with that error until the sheet is fixed.
An error in a tab every practice shares (entry rules, stages, settings) still raises: there is no
practice to blame, and guessing would change everyone's deals.

`MappingState` is what a reader gets: the config, the disabled practices, and, when the source could
not be read (or its shared tabs were invalid), why the last good mapping from the warehouse is in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from biss_pipeline.domain.mapping.config import (
    APPOINTMENT_TYPES,
    KEY_COLUMNS,
    PRACTICES,
    MappingConfig,
    column_name,
    parse_mapping,
)
from biss_pipeline.domain.mapping.practices import ConfigError

# Fallback kinds: the source could not be read at all, or it was read but its shared tabs are invalid.
UNREADABLE = "unreadable"
INVALID = "invalid"


class PracticeDisabledError(ConfigError):
    """A run of a practice whose mapping rows are invalid; the message is the row's own error."""

    def __init__(self, practice_id: str, error: ConfigError) -> None:
        ValueError.__init__(self, f"practice {practice_id!r} is disabled by its mapping rows: {error}")
        self.tab, self.row, self.column = error.tab, error.row, error.column
        self.practice_id = practice_id


@dataclass(frozen=True)
class MappingState:
    """A mapping as the pipeline uses it: config, practices disabled by their own rows, and fallback."""

    config: MappingConfig
    disabled: Mapping[str, ConfigError] = field(default_factory=dict)
    # None: read from the source just now. Else (kind, reason): the last good mapping is in use.
    fallback: tuple[str, str] | None = None

    def check_practice(self, practice_id: str) -> None:
        """Raise the error that disabled `practice_id`, if one did."""
        error = self.disabled.get(practice_id)
        if error is not None:
            raise PracticeDisabledError(practice_id, error)

    def describe_disabled(self) -> dict[str, str]:
        return {practice_id: str(error) for practice_id, error in sorted(self.disabled.items())}


def _row(tabs: Mapping[str, Any], tab: str, number: int | None) -> Mapping[str, Any] | None:
    rows = tabs.get(tab)
    if number is None or not isinstance(rows, list) or not 2 <= number < len(rows) + 2:
        return None
    row = rows[number - 2]
    return row if isinstance(row, Mapping) else None


def _cell(row: Mapping[str, Any], column: str) -> str:
    for header, value in row.items():
        if column_name(header) == column:
            return "" if value is None else str(value).strip()
    return ""


def _blamed_practice(tabs: Mapping[str, Any], error: ConfigError) -> str | None:
    """The practice a row error belongs to, or None when the error is not one practice's."""
    if error.tab == APPOINTMENT_TYPES:
        row = _row(tabs, APPOINTMENT_TYPES, error.row)
        return (_cell(row, KEY_COLUMNS[APPOINTMENT_TYPES]) or None) if row is not None else None
    if error.tab == PRACTICES:
        row = _row(tabs, PRACTICES, error.row)
        if row is None:
            return None
        return _cell(row, KEY_COLUMNS[PRACTICES]) or f"practices row {error.row}"
    return None


def _without_practice(tabs: dict[str, Any], practice_id: str, error: ConfigError) -> None:
    """Blank the practice's rows (None keeps the sheet's row numbers for the other rows' messages)."""
    types = tabs.get(APPOINTMENT_TYPES)
    if isinstance(types, list):
        tabs[APPOINTMENT_TYPES] = [
            None if isinstance(row, Mapping) and _cell(row, KEY_COLUMNS[APPOINTMENT_TYPES]) == practice_id
            else row for row in types]
    if error.tab == PRACTICES and error.row is not None:
        rows = list(tabs[PRACTICES])
        rows[error.row - 2] = None
        tabs[PRACTICES] = rows


def parse_isolated(tabs: Mapping[str, Any]) -> MappingState:
    """`parse_mapping`, with each practice's own errors disabling only that practice."""
    working: dict[str, Any] = {column_name(name): rows for name, rows in tabs.items()}
    if len(working) != len(tabs):  # two tabs with one name: let the parser say so
        return MappingState(parse_mapping(tabs))
    disabled: dict[str, ConfigError] = {}
    # Every pass disables one more practice or returns, so this ends; the bound is a safety net.
    for _ in range(len(working.get(PRACTICES) or []) + len(working.get(APPOINTMENT_TYPES) or []) + 2):
        try:
            config = parse_mapping(working)
        except ConfigError as error:
            practice_id = _blamed_practice(working, error)
            if practice_id is None:
                raise
            disabled.setdefault(practice_id, error)
            _without_practice(working, practice_id, error)
            continue
        return MappingState(config, disabled)
    raise RuntimeError("parse_isolated did not converge")  # pragma: no cover - bounded above
