"""The client's mapping spreadsheet, every tab parsed and validated into one `MappingConfig` (SPEC §4).

The Google Sheet and the local YAML file (`config/mapping.yaml`) have the same tabs and columns and go
through the same parser (`parse_mapping`), so whatever passes locally passes from the sheet.

Tabs and columns
----------------

| tab                 | columns                                                                   |
| ------------------- | ------------------------------------------------------------------------- |
| `practices`         | id, name, key_prefix, ivoris_base_url, api_key_env, history_start, active |
| `appointment_types` | practice, type_id, code, name, deal_role, hubspot_label (one row a type)  |
| `entry_rules`       | entry_type, code_pattern, billable, revenue_bucket, treatment_category    |
|                     | (in order: the first matching row wins)                                   |
| `stages`            | stage, pipeline_label, stage_label, probability, pipeline_id, stage_id    |
| `settings`          | key, value; optional, every setting has a default (the deal-rule settings |
|                     | of SPEC §5: `DealSettings`; the contact-field allowlist; the pipeline     |
|                     | label)                                                                    |
| `appointment_statuses` | ivoris_status, hubspot_status (SPEC §4 rev. 2): each Ivoris status → the |
|                     | `hs_appointment_status` option of the portal; optional, every status must  |
|                     | be on a row when the tab exists (`DEFAULT_APPOINTMENT_STATUS_MAP` without)  |

Row numbers in error messages count the header as row 1, like the sheet. Column headers are matched
case-insensitively with spaces read as underscores (`Type ID` is `type_id`); columns the parser does not
know (notes, comments) are ignored; rows whose cells are all blank are skipped but still counted.

Values accepted (the sheet delivers text, the YAML file numbers and booleans; both are read alike)

| kind        | column                   | accepted                                                      |
| ----------- | ------------------------ | ------------------------------------------------------------- |
| text        | names, labels, codes     | text, outer whitespace dropped; a number as its digits        |
|             |                          | (`12.0` → `12`); a yes/no value is refused                    |
| code text   | `code_pattern`           | text only: a number has lost its leading zeros (`0010`), so   |
|             |                          | quote it in YAML and format the sheet column as plain text    |
| yes/no      | `billable`               | true/false, TRUE/FALSE, yes/no, ja/nein, j/n, y/n,            |
|             |                          | wahr/falsch, x, 1/0; blank is an error                        |
| type id     | `type_id`                | a whole number ≥ 0 (`7`, `"7"`, `7.0`, `"07"` → `7`)          |
| whole days  | `close_after_days`,      | a whole number ≥ 1 (`60`, `"60"`, `60.0`)                     |
|             | `lost_after_days`,       |                                                               |
|             | `stale_after_days`       |                                                               |
| whole days  | `rebook_days`,           | a whole number ≥ 0 (0: the same day only)                     |
|             | `entry_grace_days`       |                                                               |
| probability | `probability`            | 0 ≤ p ≤ 1: `0.5`, `"0.5"`, `"0,5"`, `"50%"`, `"50 %"`         |
| field list  | `hubspot_contact_fields` | comma-separated names from `PERSONAL_CONTACT_FIELDS`, or      |
|             |                          | `none` for no personal field at all; blank is an error        |
| category    | `treatment_category`     | one of `TREATMENT_CATEGORIES`, any letter case                |
| stage       | `stage`                  | machine name (`in_behandlung`) or label (`In Behandlung`)     |
| probability | closed stages            | `abgeschlossen` must be 1 (won), `verloren` 0 (lost)          |

The practices tab keeps the rules of `parse_practices` (ISO dates, lenient `active`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from biss_pipeline.domain.deals.entry_rules import (
    ENTRY_TYPES,
    TREATMENT_CATEGORIES,
    EntryRule,
    entry_rule_problems,
)
from biss_pipeline.domain.deals.rules import (
    APPOINTMENT_STATUSES as IVORIS_APPOINTMENT_STATUSES,
)
from biss_pipeline.domain.deals.rules import DEAL_ROLES, STAGE_LABELS, DealSettings, Stage
from biss_pipeline.domain.mapping.practices import ConfigError, PracticeConfig, parse_practices

PRACTICES = "practices"
APPOINTMENT_TYPES = "appointment_types"
ENTRY_RULES = "entry_rules"
STAGES = "stages"
SETTINGS = "settings"
APPOINTMENT_STATUSES = "appointment_statuses"
IVORIS_CLIENT = "ivoris_client"
# Tabs whose content every practice's deals or HubSpot sync read.
PRACTICE_SHARED_TABS: tuple[str, ...] = (ENTRY_RULES, STAGES, SETTINGS, APPOINTMENT_STATUSES)
MAPPING_TABS: tuple[str, ...] = (PRACTICES, APPOINTMENT_TYPES, ENTRY_RULES, STAGES, SETTINGS,
                                 APPOINTMENT_STATUSES, IVORIS_CLIENT)
REQUIRED_TABS: tuple[str, ...] = (PRACTICES, APPOINTMENT_TYPES, ENTRY_RULES, STAGES)
# The first column of each tab: a sheet source finds the header row by it, below any title rows.
KEY_COLUMNS: Mapping[str, str] = {
    PRACTICES: "id", APPOINTMENT_TYPES: "practice", ENTRY_RULES: "entry_type", STAGES: "stage",
    SETTINGS: "key", APPOINTMENT_STATUSES: "ivoris_status", IVORIS_CLIENT: "practice",
}

# The sheet's dropdown order, for messages; which roles exist is the deal logic's `DEAL_ROLES` (a test
# keeps the two equal).
DEAL_ROLE_NAMES: tuple[str, ...] = ("lead", "treatment", "followup", "ignore")

# HubSpot contact property → Ivoris patient attribute it is filled from. Only these can be allowed: the
# sync has no other patient data, and refusing unknown names turns a typo into an error instead of a
# silently missing field.
PERSONAL_CONTACT_FIELDS: Mapping[str, str] = {
    "firstname": "firstName",
    "lastname": "lastName",
    "email": "email",
    "phone": "phone",
    "date_of_birth": "birthDate",
    "insurance": "insurance",
}
DEFAULT_CONTACT_FIELDS: tuple[str, ...] = ("firstname", "lastname", "email", "phone")
DEFAULT_PIPELINE_LABEL = "Patientenreise"
DEFAULT_MAX_QUARANTINED_SHARE = Decimal("0.2")
NO_FIELDS = "none"

TYPE_ID = re.compile(r"^\d+$")
REVENUE_BUCKET = re.compile(r"^[a-z][a-z0-9_]*$")
WHOLE_NUMBER = re.compile(r"^[+-]?\d+$")
TRUE_WORDS = frozenset({"true", "wahr", "yes", "ja", "y", "j", "x", "1"})
FALSE_WORDS = frozenset({"false", "falsch", "no", "nein", "n", "0"})


# --- model ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppointmentTypeMapping:
    """One row of `appointment_types`: how a practice's Terminart drives deals and shows in HubSpot."""

    practice_id: str
    type_id: str
    type_key: str
    code: str
    name: str
    deal_role: str
    hubspot_label: str


@dataclass(frozen=True)
class StageMapping:
    """One row of `stages`. `pipeline_id`/`stage_id` stay None until the portal setup writes them back."""

    stage: Stage
    pipeline_label: str
    stage_label: str
    probability: Decimal
    pipeline_id: str | None = None
    stage_id: str | None = None


# The deal-rule settings of the tab are exactly `DealSettings`' fields, in its order.
DEAL_SETTING_KEYS: tuple[str, ...] = tuple(setting.name for setting in fields(DealSettings))


@dataclass(frozen=True)
class MappingSettings:
    """The `settings` tab. The deal-rule defaults are `DealSettings`' own, so they are stated once."""

    close_after_days: int = DealSettings.close_after_days
    lost_after_days: int = DealSettings.lost_after_days
    stale_after_days: int = DealSettings.stale_after_days
    rebook_days: int = DealSettings.rebook_days
    entry_grace_days: int = DealSettings.entry_grace_days
    hubspot_contact_fields: tuple[str, ...] = DEFAULT_CONTACT_FIELDS
    deal_pipeline_label: str = DEFAULT_PIPELINE_LABEL
    # A window whose appointments are quarantined beyond this share fails a blocking check before
    # anything goes to HubSpot (a broken mapping or reference data, not a few bad records).
    max_quarantined_share: Decimal = DEFAULT_MAX_QUARANTINED_SHARE

    @property
    def deal_settings(self) -> DealSettings:
        return DealSettings(**{key: getattr(self, key) for key in DEAL_SETTING_KEYS})


@dataclass(frozen=True)
class MappingConfig:
    """The whole mapping spreadsheet, validated. Build it with `parse_mapping`."""

    practices: tuple[PracticeConfig, ...]
    appointment_types: tuple[AppointmentTypeMapping, ...]
    entry_rules: tuple[EntryRule, ...]
    stages: tuple[StageMapping, ...]
    settings: MappingSettings = field(default_factory=MappingSettings)
    # Ivoris status → the portal's `hs_appointment_status` option (tab `appointment_statuses`).
    appointment_statuses: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_APPOINTMENT_STATUS_MAP))
    # practice id → Ivoris client settings where the practice differs from the defaults (the
    # `ivoris_client` tab, `parse_ivoris_client`): IvorisResource field → value, routes and params
    # as dicts
    ivoris_client: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    # -- lookups ------------------------------------------------------------------------------------

    @property
    def deal_settings(self) -> DealSettings:
        return self.settings.deal_settings

    @property
    def active_practices(self) -> tuple[PracticeConfig, ...]:
        return tuple(practice for practice in self.practices if practice.active)

    def practice(self, practice_id: str) -> PracticeConfig:
        for practice in self.practices:
            if practice.practice_id == practice_id:
                return practice
        raise KeyError(f"no practice {practice_id!r} in the mapping")

    def type_key(self, practice_id: str, type_id: str | int) -> str:
        """Global key of a practice's appointment type: key prefix + Ivoris type id (e.g. `MB_1`)."""
        return f"{self.practice(practice_id).key_prefix}{type_id}"

    @cached_property
    def appointment_types_by_key(self) -> Mapping[str, AppointmentTypeMapping]:
        return {row.type_key: row for row in self.appointment_types}

    def appointment_type(self, type_key: str) -> AppointmentTypeMapping:
        try:
            return self.appointment_types_by_key[type_key]
        except KeyError:
            raise KeyError(f"appointment type {type_key!r} is not in the mapping") from None

    @cached_property
    def deal_roles(self) -> Mapping[str, str]:
        """type_key → deal_role, the input the deal logic joins onto appointments."""
        return {row.type_key: row.deal_role for row in self.appointment_types}

    def stage(self, stage: Stage | str) -> StageMapping:
        wanted = Stage(stage)
        return next(row for row in self.stages if row.stage is wanted)

    @property
    def pipeline_label(self) -> str:
        return self.stages[0].pipeline_label

    @property
    def pipeline_id(self) -> str | None:
        return next((row.pipeline_id for row in self.stages if row.pipeline_id), None)

    # -- canonical form and hash --------------------------------------------------------------------

    def canonical_tabs(self) -> dict[str, list[dict[str, Any]]]:
        """The config as sheet tabs with canonical values; `parse_mapping` of it gives the same content.

        Row order is kept only where it means something (entry rules: first match wins); the other tabs
        are sorted by their keys, so reordering rows in the sheet changes nothing downstream.
        """
        practices = sorted(self.practices, key=lambda p: p.practice_id)
        types = sorted(self.appointment_types, key=lambda t: (t.practice_id, int(t.type_id)))
        return {
            PRACTICES: [
                {"id": p.practice_id, "name": p.name, "key_prefix": p.key_prefix,
                 "ivoris_base_url": p.ivoris_base_url, "api_key_env": p.api_key_env,
                 "history_start": p.history_start.isoformat(), "active": p.active}
                for p in practices
            ],
            APPOINTMENT_TYPES: [
                {"practice": t.practice_id, "type_id": t.type_id, "code": t.code, "name": t.name,
                 "deal_role": t.deal_role, "hubspot_label": t.hubspot_label}
                for t in types
            ],
            ENTRY_RULES: [
                {"entry_type": r.entry_type, "code_pattern": r.code_pattern, "billable": r.billable,
                 "revenue_bucket": r.revenue_bucket, "treatment_category": r.treatment_category}
                for r in self.entry_rules
            ],
            STAGES: [
                {"stage": s.stage.value, "pipeline_label": s.pipeline_label, "stage_label": s.stage_label,
                 "probability": _decimal_text(s.probability), "pipeline_id": s.pipeline_id or "",
                 "stage_id": s.stage_id or ""}
                for s in self.stages
            ],
            SETTINGS: [
                *({"key": key, "value": str(getattr(self.settings, key))} for key in DEAL_SETTING_KEYS),
                {"key": "hubspot_contact_fields",
                 "value": ",".join(self.settings.hubspot_contact_fields) or NO_FIELDS},
                {"key": "deal_pipeline_label", "value": self.settings.deal_pipeline_label},
                # only when set: the default adds no row, so older mappings keep their hashes
                *([{"key": "max_quarantined_share",
                    "value": _decimal_text(self.settings.max_quarantined_share)}]
                  if self.settings.max_quarantined_share != DEFAULT_MAX_QUARANTINED_SHARE else []),
            ],
            APPOINTMENT_STATUSES: [
                {"ivoris_status": status, "hubspot_status": self.appointment_statuses[status]}
                for status in sorted(self.appointment_statuses)
            ],
            **({IVORIS_CLIENT: canonical_ivoris_client(self.ivoris_client)} if self.ivoris_client else {}),
        }

    @cached_property
    def tab_hashes(self) -> Mapping[str, str]:
        """sha256 per tab, so a consumer can tell which part of the mapping changed."""
        return {tab: _sha256(rows) for tab, rows in self.canonical_tabs().items()}

    def practice_hash(self, practice_id: str) -> str:
        """sha256 of the part of the mapping one practice's processing depends on: its key prefix and
        its appointment-type rows, and the tabs every practice shares. Other practices' rows are not
        in it, so onboarding a practice reprocesses no other."""
        tabs = self.canonical_tabs()
        practice = self.practice(practice_id)
        own_types = [row for row in tabs[APPOINTMENT_TYPES] if row["practice"] == practice_id]
        parts: list[Any] = [practice.key_prefix, own_types,
                            {tab: self.tab_hashes[tab] for tab in PRACTICE_SHARED_TABS}]
        # Its own Ivoris client rows (routes, paging) decide what extraction reads, so a change there
        # reprocesses the practice; a practice on the defaults keeps the hash it had before the tab.
        own_client = [row for row in tabs.get(IVORIS_CLIENT, []) if row["practice"] == practice_id]
        if own_client:
            parts.append({IVORIS_CLIENT: own_client})
        return _sha256(parts)

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical form of all tabs.

        Equal for equal meaning: key order, whitespace, the spelling of a value (`ja`/`TRUE`/`true`,
        `0,5`/`50%`) and the order of rows where it does not matter leave it unchanged.
        """
        return _sha256(self.canonical_tabs())


def _sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _decimal_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


# --- cells ---------------------------------------------------------------------------------------------


def column_name(header: Any) -> str:
    """How a column header is matched: case-insensitive, surrounding space dropped, inner space as `_`."""
    return re.sub(r"\s+", "_", unicodedata.normalize("NFC", str(header)).strip().lower())


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class _Row:
    """One data row with its sheet row number, for values read with the error pointing at the cell."""

    tab: str
    number: int
    cells: Mapping[str, Any]

    def error(self, column: str | None, problem: str) -> ConfigError:
        return ConfigError(self.tab, self.number, column, problem)

    def raw(self, column: str) -> Any:
        return self.cells.get(column)

    def text(self, column: str, required: bool = True) -> str:
        value = self.cells.get(column)
        if isinstance(value, bool):
            raise self.error(column, f"expected text, got the yes/no value {value!r} (quote it in YAML)")
        if _is_blank(value):
            if required:
                raise self.error(column, "is empty")
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, dt.date):
            value = value.isoformat()
        return unicodedata.normalize("NFC", str(value)).strip()

    def flag(self, column: str) -> bool:
        value = self.cells.get(column)
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        word = self.text(column).lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise self.error(column, f"expected yes or no (ja/nein, TRUE/FALSE), got {word!r}")

    def whole_number(self, column: str) -> int:
        value = self.cells.get(column)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = self.text(column)
        if WHOLE_NUMBER.match(text):
            return int(text)
        raise self.error(column, f"expected a whole number, got {text!r}")

    def fraction(self, column: str) -> Decimal:
        value = self.cells.get(column)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # str() first: Decimal(0.1) would carry the float's binary noise into the hash.
            return Decimal(str(value))
        text = self.text(column).replace(" ", "")
        percent = text.endswith("%")
        if percent:
            text = text[:-1]
        if "," in text and "." not in text:
            text = text.replace(",", ".")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise self.error(column, f"expected a number like 0.5, 0,5 or 50%, got {text!r}") from None
        if not number.is_finite():
            raise self.error(column, f"expected a number like 0.5, 0,5 or 50%, got {text!r}")
        return number / 100 if percent else number


def _tab_rows(tabs: Mapping[str, Any], tab: str, required: bool = True) -> list[_Row]:
    """The non-blank rows of a tab, with headers normalised and sheet row numbers attached."""
    if tab not in tabs:
        if required:
            raise ConfigError(tab, None, None, "the tab is missing from the mapping")
        return []
    raw_rows = tabs[tab] if tabs[tab] is not None else []
    if not isinstance(raw_rows, list):
        raise ConfigError(tab, None, None, "expected a list of rows")
    rows: list[_Row] = []
    for number, raw in enumerate(raw_rows, start=2):
        if raw is None:
            continue
        if not isinstance(raw, Mapping):
            raise ConfigError(tab, number, None, "expected a row of column: value pairs")
        cells: dict[str, Any] = {}
        for header, value in raw.items():
            name = column_name(header)
            if not name:
                continue
            if name in cells:
                raise ConfigError(tab, number, name, "the column appears twice")
            cells[name] = value
        if all(_is_blank(value) for value in cells.values()):
            continue
        rows.append(_Row(tab, number, cells))
    return rows


# --- tabs ----------------------------------------------------------------------------------------------


def _parse_practice_rows(rows: list[_Row]) -> tuple[PracticeConfig, ...]:
    # parse_practices numbers the rows it is given from 2; skipped blank rows would shift its numbers
    # away from the sheet's, so they are mapped back here. It does not strip every cell (a padded date
    # fails), so that happens first, as for every other tab.
    cleaned = [{column: unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else value
                for column, value in row.cells.items()} for row in rows]
    try:
        return tuple(parse_practices(cleaned))
    except ConfigError as error:
        if error.row is None or not 2 <= error.row < len(rows) + 2:
            raise
        problem = str(error).split(": ", 1)[1]
        raise rows[error.row - 2].error(error.column, problem) from None


def _parse_appointment_types(
    rows: list[_Row], practices: tuple[PracticeConfig, ...]
) -> tuple[AppointmentTypeMapping, ...]:
    prefixes = {practice.practice_id: practice.key_prefix for practice in practices}
    seen: dict[tuple[str, str], int] = {}
    mapped: list[AppointmentTypeMapping] = []
    for row in rows:
        practice_id = row.text("practice")
        if practice_id not in prefixes:
            raise row.error("practice", f"practice {practice_id!r} is not in the 'practices' tab")
        type_id = row.text("type_id")
        if not TYPE_ID.match(type_id):
            raise row.error("type_id", f"expected the Ivoris type id (a whole number), got {type_id!r}")
        type_id = str(int(type_id))
        if (practice_id, type_id) in seen:
            raise row.error(
                "type_id", f"type id {type_id} of practice {practice_id!r} is already on row "
                f"{seen[(practice_id, type_id)]}")
        seen[(practice_id, type_id)] = row.number
        deal_role = row.text("deal_role").lower()
        if deal_role not in DEAL_ROLES:
            raise row.error("deal_role", f"unknown deal role {deal_role!r}; expected one of "
                            f"{', '.join(DEAL_ROLE_NAMES)}")
        name = row.text("name")
        mapped.append(AppointmentTypeMapping(
            practice_id=practice_id,
            type_id=type_id,
            type_key=f"{prefixes[practice_id]}{type_id}",
            code=row.text("code"),
            name=name,
            deal_role=deal_role,
            hubspot_label=row.text("hubspot_label", required=False) or name,
        ))
    return tuple(mapped)


def _canonical_category(text: str) -> str:
    for category in TREATMENT_CATEGORIES:
        if category.casefold() == text.casefold():
            return category
    return text


def _entry_rule_column(rule_fields: Mapping[str, Any]) -> str | None:
    """Which cell an `EntryRule` ValueError is about (it checks the fields in this order)."""
    if rule_fields["entry_type"] not in ENTRY_TYPES:
        return "entry_type"
    if rule_fields["treatment_category"] not in TREATMENT_CATEGORIES:
        return "treatment_category"
    if not rule_fields["revenue_bucket"]:
        return "revenue_bucket"
    return None


def _parse_entry_rules(rows: list[_Row]) -> tuple[EntryRule, ...]:
    rules: list[EntryRule] = []
    rows_of_rules: list[_Row] = []
    for row in rows:
        pattern_cell = row.raw("code_pattern")
        if not _is_blank(pattern_cell) and not isinstance(pattern_cell, str):
            raise row.error("code_pattern", f"write the pattern as text, not as the number {pattern_cell!r}: "
                            "numbers lose leading zeros (quote it in YAML, format the column as text)")
        rule_fields: dict[str, Any] = {
            "entry_type": row.text("entry_type", required=False).lower(),
            "code_pattern": row.text("code_pattern"),
            "billable": row.flag("billable"),
            "revenue_bucket": row.text("revenue_bucket", required=False),
            "treatment_category": _canonical_category(row.text("treatment_category", required=False)),
        }
        try:
            rule = EntryRule(**rule_fields)
        except ValueError as error:
            raise row.error(_entry_rule_column(rule_fields), str(error)) from None
        if not REVENUE_BUCKET.match(rule.revenue_bucket):
            raise row.error("revenue_bucket", f"bucket {rule.revenue_bucket!r} must be lower-case letters, "
                            "digits and underscores (it becomes a column and property name)")
        for earlier, earlier_row in zip(rules, rows_of_rules, strict=True):
            if earlier.entry_type == rule.entry_type and earlier.code_pattern in ("*", rule.code_pattern):
                raise row.error("code_pattern", f"never matches: row {earlier_row.number} "
                                f"({earlier.entry_type} {earlier.code_pattern!r}) takes these codes first")
        rules.append(rule)
        rows_of_rules.append(row)
    pabg_rules = [rule for rule in rules if rule.entry_type == "pabg"]
    for rule, row in zip(rules, rows_of_rules, strict=True):
        if rule.entry_type == "pabg":
            continue
        # The pabg rule itself lives in entry_rules.py; asking it per rule finds the row to blame.
        problems = entry_rule_problems([*pabg_rules, rule])
        if problems:
            raise row.error("revenue_bucket", f"{problems[0]}; pabg has its own bucket so it is never "
                            "counted twice")
    return tuple(rules)


_SETTING_KEYS: tuple[str, ...] = (*DEAL_SETTING_KEYS, "hubspot_contact_fields", "deal_pipeline_label",
                                  "max_quarantined_share")


def _contact_fields(row: _Row) -> tuple[str, ...]:
    text = row.text("value")
    if text.lower() == NO_FIELDS:
        return ()
    names = [column_name(name) for name in text.split(",") if name.strip()]
    fields: list[str] = []
    for name in names:
        if name not in PERSONAL_CONTACT_FIELDS:
            raise row.error("value", f"unknown contact field {name!r}; allowed: "
                            f"{', '.join(PERSONAL_CONTACT_FIELDS)} (or '{NO_FIELDS}')")
        if name in fields:
            raise row.error("value", f"contact field {name!r} is listed twice")
        fields.append(name)
    return tuple(fields)


def _parse_settings(rows: list[_Row]) -> dict[str, Any]:
    """The settings the tab sets explicitly (the rest keep their defaults)."""
    values: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for row in rows:
        key = column_name(row.text("key"))
        if key not in _SETTING_KEYS:
            raise row.error("key", f"unknown setting {key!r}; known: {', '.join(_SETTING_KEYS)}")
        if key in seen:
            raise row.error("key", f"setting {key!r} is already on row {seen[key]}")
        seen[key] = row.number
        if key in DEAL_SETTING_KEYS:
            days = row.whole_number("value")
            try:
                # The deal logic owns the ranges; asking it with this one value blames this row.
                DealSettings(**{key: days})
            except ValueError as error:
                raise row.error("value", str(error)) from None
            values[key] = days
        elif key == "hubspot_contact_fields":
            values[key] = _contact_fields(row)
        elif key == "max_quarantined_share":
            share = row.fraction("value")
            if not Decimal(0) <= share <= Decimal(1):
                raise row.error("value", f"{_decimal_text(share)} is outside 0..1 (write 0.2 or 20%)")
            values[key] = share.normalize()
        else:
            values[key] = row.text("value")
    return values


def _stage_named(text: str) -> Stage | None:
    wanted = column_name(text)
    for stage in Stage:
        if wanted in (stage.value, column_name(STAGE_LABELS[stage.value])):
            return stage
    return None


# HubSpot treats a stage as closed won at probability 1 and closed lost at 0.
_CLOSED_PROBABILITY: Mapping[Stage, Decimal] = {Stage.ABGESCHLOSSEN: Decimal(1), Stage.VERLOREN: Decimal(0)}


def _parse_stages(rows: list[_Row], pipeline_label_setting: str | None) -> tuple[StageMapping, ...]:
    by_stage: dict[Stage, StageMapping] = {}
    rows_by_stage: dict[Stage, _Row] = {}
    for row in rows:
        name = row.text("stage")
        stage = _stage_named(name)
        if stage is None:
            raise row.error("stage", f"unknown stage {name!r}; expected one of "
                            f"{', '.join(s.value for s in Stage)}")
        if stage in by_stage:
            raise row.error("stage", f"stage {stage.value!r} is already on row {rows_by_stage[stage].number}")
        probability = row.fraction("probability")
        if not Decimal(0) <= probability <= Decimal(1):
            raise row.error("probability", f"{_decimal_text(probability)} is outside 0..1 (write 0.5 or 50%)")
        closed = _CLOSED_PROBABILITY.get(stage)
        if closed is not None and probability != closed:
            raise row.error("probability", f"stage {stage.value!r} is closed "
                            f"{'won' if closed else 'lost'}, its probability must be {closed}")
        pipeline_label = row.text("pipeline_label", required=False)
        if pipeline_label and pipeline_label_setting and pipeline_label != pipeline_label_setting:
            raise row.error("pipeline_label", f"pipeline {pipeline_label!r} differs from the setting "
                            f"deal_pipeline_label {pipeline_label_setting!r}")
        by_stage[stage] = StageMapping(
            stage=stage,
            pipeline_label=pipeline_label or pipeline_label_setting or DEFAULT_PIPELINE_LABEL,
            stage_label=row.text("stage_label", required=False) or STAGE_LABELS[stage.value],
            probability=probability.normalize(),
            pipeline_id=row.text("pipeline_id", required=False) or None,
            stage_id=row.text("stage_id", required=False) or None,
        )
        rows_by_stage[stage] = row
    missing = [stage.value for stage in Stage if stage not in by_stage]
    if missing:
        raise ConfigError(STAGES, None, "stage", f"no row for stage(s) {', '.join(missing)}")
    stages = tuple(by_stage[stage] for stage in Stage)
    _check_one_pipeline(stages, rows_by_stage)
    return stages


def _check_one_pipeline(stages: tuple[StageMapping, ...], rows: Mapping[Stage, _Row]) -> None:
    """A deal moves through one pipeline: every stage row must name the same one."""
    first = stages[0]
    pipeline_ids = {s.pipeline_id for s in stages if s.pipeline_id}
    labels_seen: dict[str, Stage] = {}
    ids_seen: dict[str, Stage] = {}
    for stage in stages:
        row = rows[stage.stage]
        if stage.pipeline_label != first.pipeline_label:
            raise row.error("pipeline_label", f"all stages belong to one pipeline: {stage.pipeline_label!r} "
                            f"here, {first.pipeline_label!r} for {first.stage.value!r}")
        if len(pipeline_ids) > 1 and stage.pipeline_id:
            raise row.error("pipeline_id", f"all stages belong to one pipeline, found ids "
                            f"{', '.join(sorted(pipeline_ids))}")
        if stage.stage_label.casefold() in labels_seen:
            raise row.error("stage_label", f"label {stage.stage_label!r} is already used by stage "
                            f"{labels_seen[stage.stage_label.casefold()].value!r}")
        labels_seen[stage.stage_label.casefold()] = stage.stage
        if stage.stage_id:
            if stage.stage_id in ids_seen:
                raise row.error("stage_id", f"stage id {stage.stage_id!r} is already used by stage "
                                f"{ids_seen[stage.stage_id].value!r}")
            ids_seen[stage.stage_id] = stage.stage


# Used when the mapping has no `appointment_statuses` tab. Options in HubSpot's style (its own example
# writes `SCHEDULED`); the portal setup checks every value against the portal's definition.
DEFAULT_APPOINTMENT_STATUS_MAP: Mapping[str, str] = {
    "booked": "SCHEDULED",
    "confirmed": "SCHEDULED",
    "arrived": "SCHEDULED",
    "completed": "COMPLETED",
    "cancelled": "CANCELLED",
    "no_show": "NO_SHOW",
    "clarified": "CANCELLED",
}


def _parse_appointment_statuses(rows: list[_Row], present: bool) -> dict[str, str]:
    """The `appointment_statuses` tab: one row per Ivoris status, each naming a HubSpot option."""
    if not present:
        return dict(DEFAULT_APPOINTMENT_STATUS_MAP)
    mapped: dict[str, str] = {}
    rows_of: dict[str, int] = {}
    for row in rows:
        status = row.text("ivoris_status").lower()
        if status not in IVORIS_APPOINTMENT_STATUSES:
            raise row.error("ivoris_status", f"unknown Ivoris status {status!r}; expected one of "
                            f"{', '.join(sorted(IVORIS_APPOINTMENT_STATUSES))}")
        if status in mapped:
            raise row.error("ivoris_status", f"status {status!r} is already on row {rows_of[status]}")
        option = row.text("hubspot_status")
        if any(ch.isspace() for ch in option):
            raise row.error("hubspot_status", f"{option!r}: a HubSpot option value has no spaces "
                            "(write the internal value, e.g. SCHEDULED, not the label)")
        mapped[status] = option
        rows_of[status] = row.number
    missing = sorted(IVORIS_APPOINTMENT_STATUSES - set(mapped))
    if missing:
        raise ConfigError(APPOINTMENT_STATUSES, None, "ivoris_status",
                          f"no row for Ivoris status(es) {', '.join(missing)}")
    return mapped
# --- the ivoris_client tab (SPEC §4 rev. 2) ---------------------------------------------------------
#
# columns: practice, setting, value; one row per setting where a practice's Ivoris server differs from
# the contract's defaults. Settings: the whole numbers below, `timeout_s` and `max_retry_seconds`
# (seconds > 0), `route.<name>` (a path starting with "/"; `route.patient_document_entries` must hold
# `{patient_id}`) and `param.<name>` (a query parameter name).

IVORIS_WHOLE_SETTINGS: Mapping[str, int] = {  # name → smallest value allowed
    "page_size": 1, "max_concurrency": 1, "max_attempts": 1, "chunk_days": 1, "narrow_page_size": 1,
    "page_rereads": 0, "repair_period_days": 1,
}
IVORIS_SECONDS_SETTINGS: tuple[str, ...] = ("timeout_s", "max_retry_seconds")
IVORIS_ROUTE_NAMES: tuple[str, ...] = ("practices", "chairs", "appointment_types", "appointments", "patients",
                                       "document_entries", "patient_document_entries")
IVORIS_PARAM_NAMES: tuple[str, ...] = ("date_from", "date_to", "page", "page_size", "ids", "modified_since")
QUERY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def _ivoris_setting_names() -> list[str]:
    return [*IVORIS_WHOLE_SETTINGS, *IVORIS_SECONDS_SETTINGS, *(f"route.{n}" for n in IVORIS_ROUTE_NAMES),
            *(f"param.{n}" for n in IVORIS_PARAM_NAMES)]


def parse_ivoris_client(rows: list[_Row], practices: tuple[PracticeConfig, ...],
                        ) -> dict[str, dict[str, Any]]:
    """The `ivoris_client` tab: per practice, the IvorisResource fields that differ from the defaults
    (`routes` and `params` as dicts by name). Errors name tab, row and column."""
    known_practices = {p.practice_id for p in practices}
    result: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        practice = row.text("practice")
        if practice not in known_practices:
            raise row.error("practice", f"unknown practice {practice!r}; the practices tab has "
                            f"{', '.join(sorted(known_practices))}")
        name = row.text("setting").lower().replace(" ", "_")
        if name not in _ivoris_setting_names():
            raise row.error("setting", f"unknown Ivoris client setting {name!r}; known: "
                            f"{', '.join(_ivoris_setting_names())}")
        if (practice, name) in seen:
            raise row.error("setting", f"{name!r} for practice {practice!r} is already on row "
                            f"{seen[(practice, name)]}")
        seen[(practice, name)] = row.number
        settings = result.setdefault(practice, {})
        if name in IVORIS_WHOLE_SETTINGS:
            number = row.whole_number("value")
            least = IVORIS_WHOLE_SETTINGS[name]
            if number < least:
                raise row.error("value", f"{name} must be at least {least}, got {number}")
            settings[name] = number
        elif name in IVORIS_SECONDS_SETTINGS:
            seconds = row.fraction("value")
            if seconds <= 0:
                raise row.error("value", f"{name} must be more than 0 seconds, got {_decimal_text(seconds)}")
            settings[name] = float(seconds)
        elif name.startswith("route."):
            route = row.text("value")
            field_name = name.removeprefix("route.")
            if not route.startswith("/"):
                raise row.error("value", f"a route is a path starting with '/', got {route!r}")
            if field_name == "patient_document_entries" and "{patient_id}" not in route:
                raise row.error("value", "the per-patient route must contain {patient_id}")
            settings.setdefault("routes", {})[field_name] = route
        else:
            param = row.text("value")
            if not QUERY_NAME.match(param):
                raise row.error("value", f"not a query parameter name: {param!r}")
            settings.setdefault("params", {})[name.removeprefix("param.")] = param
    return result


def canonical_ivoris_client(client: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for practice in sorted(client):
        for name, value in sorted(client[practice].items()):
            if isinstance(value, Mapping):
                prefix = "route" if name == "routes" else "param"
                rows.extend({"practice": practice, "setting": f"{prefix}.{k}", "value": v}
                            for k, v in sorted(value.items()))
            else:
                rows.append({"practice": practice, "setting": name, "value": str(value)})
    return rows


# --- public --------------------------------------------------------------------------------------------


def parse_mapping(tabs: Mapping[str, Any]) -> MappingConfig:
    """Validate every tab of the mapping (tab name → list of row mappings) into a `MappingConfig`.

    Raises `ConfigError` naming tab, row and column of the first problem found.
    """
    normalised: dict[str, Any] = {}
    for name, rows in tabs.items():
        tab = column_name(name)
        if tab in normalised:
            raise ConfigError(tab, None, None, f"two tabs are named {tab!r}")
        normalised[tab] = rows
    for tab in REQUIRED_TABS:
        if tab not in normalised:
            raise ConfigError(tab, None, None, "the tab is missing from the mapping")
    practices = _parse_practice_rows(_tab_rows(normalised, PRACTICES))
    appointment_types = _parse_appointment_types(_tab_rows(normalised, APPOINTMENT_TYPES), practices)
    entry_rules = _parse_entry_rules(_tab_rows(normalised, ENTRY_RULES))
    explicit_settings = _parse_settings(_tab_rows(normalised, SETTINGS, required=False))
    stages = _parse_stages(_tab_rows(normalised, STAGES), explicit_settings.get("deal_pipeline_label"))
    # Stage rows may name the pipeline themselves; the setting then follows them.
    settings = MappingSettings(**{**explicit_settings, "deal_pipeline_label": stages[0].pipeline_label})
    statuses = _parse_appointment_statuses(
        _tab_rows(normalised, APPOINTMENT_STATUSES, required=False), APPOINTMENT_STATUSES in normalised)
    ivoris_client = parse_ivoris_client(_tab_rows(normalised, IVORIS_CLIENT, required=False), practices)
    return MappingConfig(
        practices=practices,
        appointment_types=appointment_types,
        entry_rules=entry_rules,
        stages=stages,
        settings=settings,
        appointment_statuses=statuses,
        ivoris_client=ivoris_client,
    )


def check_types_mapped(config: MappingConfig, used_type_keys: Iterable[str]) -> None:
    """Refuse data that uses an appointment type the mapping does not know (its role would be a guess)."""
    missing = sorted(set(used_type_keys) - set(config.appointment_types_by_key))
    if not missing:
        return
    practice_by_prefix = {practice.key_prefix: practice.practice_id for practice in config.practices}
    described: list[str] = []
    for type_key in missing:
        prefix, _, type_id = type_key.partition("_")
        practice_id = practice_by_prefix.get(f"{prefix}_")
        if practice_id is None:
            described.append(f"type key {type_key!r} (its prefix belongs to no practice)")
        else:
            described.append(f"practice {practice_id!r} type id {type_id}")
    more = f" (and {len(described) - 1} more: {'; '.join(described[1:])})" if len(described) > 1 else ""
    raise ConfigError(APPOINTMENT_TYPES, None, "type_id",
                      f"{described[0]} is used by the data but has no row{more}")
