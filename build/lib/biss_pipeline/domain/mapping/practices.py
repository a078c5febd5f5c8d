"""The `practices` tab: a practice is a config entry, not code (SPEC §1, §4)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PRACTICE_ID = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
KEY_PREFIX = re.compile(r"^[A-Z][A-Z0-9]{0,7}_$")
ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
DEFAULT_HISTORY_START = dt.date(2026, 1, 1)


class ConfigError(ValueError):
    """Invalid mapping config; the message names the tab, row and column."""

    def __init__(self, tab: str, row: int | None, column: str | None, problem: str) -> None:
        where = f"tab '{tab}'" + (f", row {row}" if row is not None else "") + (
            f", column '{column}'" if column else "")
        super().__init__(f"{where}: {problem}")
        self.tab, self.row, self.column = tab, row, column


@dataclass(frozen=True)
class PracticeConfig:
    practice_id: str
    name: str
    key_prefix: str
    ivoris_base_url: str
    api_key_env: str
    history_start: dt.date
    active: bool

    @property
    def resource_key(self) -> str:
        return f"ivoris_{self.practice_id}"


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "ja", "y", "x"}


def _required(tab: str, row: dict[str, Any], index: int, column: str,
              pattern: re.Pattern[str] | None = None) -> str:
    value = str(row.get(column, "") or "").strip()
    if not value:
        raise ConfigError(tab, index, column, "is empty")
    if pattern and not pattern.match(value):
        raise ConfigError(tab, index, column, f"{value!r} does not match {pattern.pattern}")
    return value


def parse_practices(rows: list[dict[str, Any]]) -> list[PracticeConfig]:
    """Validate the rows of the `practices` tab (row numbers count the header as row 1, like a sheet)."""
    practices: list[PracticeConfig] = []
    seen_ids: set[str] = set()
    seen_prefixes: set[str] = set()
    for index, row in enumerate(rows, start=2):
        practice_id = _required("practices", row, index, "id", PRACTICE_ID)
        key_prefix = _required("practices", row, index, "key_prefix", KEY_PREFIX)
        base_url = _required("practices", row, index, "ivoris_base_url")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("practices", index, "ivoris_base_url", "must start with http:// or https://")
        if practice_id in seen_ids:
            raise ConfigError("practices", index, "id", f"duplicate practice id {practice_id!r}")
        if key_prefix in seen_prefixes:
            raise ConfigError("practices", index, "key_prefix", f"duplicate key prefix {key_prefix!r}")
        raw_start = row.get("history_start") or DEFAULT_HISTORY_START.isoformat()
        try:
            history_start = dt.date.fromisoformat(str(raw_start))
        except ValueError as exc:
            raise ConfigError("practices", index, "history_start", f"not a date: {raw_start!r}") from exc
        seen_ids.add(practice_id)
        seen_prefixes.add(key_prefix)
        practices.append(PracticeConfig(
            practice_id=practice_id,
            name=_required("practices", row, index, "name"),
            key_prefix=key_prefix,
            ivoris_base_url=base_url.rstrip("/"),
            api_key_env=_required("practices", row, index, "api_key_env", ENV_VAR),
            history_start=history_start,
            active=_truthy(row.get("active", True)),
        ))
    return practices


def load_mapping_tabs(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Read the local mapping file: a YAML mapping of tab name to a list of row mappings."""
    with path.open(encoding="utf-8") as handle:
        tabs = yaml.safe_load(handle) or {}
    if not isinstance(tabs, dict):
        raise ConfigError(str(path), None, None, "expected a mapping of tab names to rows")
    return tabs


def load_practices(path: Path) -> list[PracticeConfig]:
    return parse_practices(load_mapping_tabs(path).get("practices") or [])
