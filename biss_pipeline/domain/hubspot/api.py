"""What the sync needs from a HubSpot client: plain result types, errors and a Protocol.

The client (`biss_pipeline.resources.hubspot.HubSpotClient`) turns the SDK's models into these, so the
engine and its tests never touch SDK models or HTTP.

Error summaries are built from HubSpot's *codes* (status, category, sub-category, per-property
error codes, property names, existing object ids), never from `message`: HubSpot echoes submitted
values in messages (`Email address x@y is invalid`), and these summaries go to logs and to the
ledger's `last_error`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
_PROBLEMS = re.compile(r"Property values were not valid:\s*(\[.*\])", re.DOTALL)

# Validation codes that belong to one record's values, so bisecting a batch isolates the record.
PER_RECORD_CODES = frozenset(
    {
        "INVALID_EMAIL",
        "INVALID_DATE",
        "INVALID_DATETIME",
        "INVALID_NUMBER",
        "INVALID_BOOLEAN",
        "INVALID_STRING_LENGTH",
        "INVALID_PHONE_NUMBER",
        "INVALID_INTEGER",
    }
)
# Codes that mean the portal or the pipeline's setup is wrong: every record would fail the same way.
SYSTEMIC_CODES = frozenset({"PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"})


@dataclass(frozen=True)
class ErrorInfo:
    """A HubSpot error reduced to codes and ids (safe to log and store)."""

    status: int
    category: str = ""
    sub_category: str = ""
    problems: tuple[tuple[str, str], ...] = ()  # (error code, property name)
    conflict_property: str = ""
    existing_id: str = ""
    email_conflict: bool = False
    policy: str = ""  # rate-limit policy name of a 429
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        parts = [str(self.status)] if self.status else []
        if self.category:
            parts.append(self.category)
        if self.sub_category:
            parts.append(self.sub_category)
        if self.policy:
            parts.append(f"policy {self.policy}")
        if self.problems:
            parts.append("[" + ", ".join(f"{code} on {name}" for code, name in self.problems) + "]")
        if self.email_conflict:
            parts.append(f"contact email already used by {self.existing_id or '?'}")
        elif self.conflict_property:
            parts.append(f"unique {self.conflict_property} already used by {self.existing_id or '?'}")
        return " ".join(parts) or "unknown error"

    @property
    def problem_properties(self) -> frozenset[str]:
        return frozenset(name for _, name in self.problems)

    @property
    def is_systemic(self) -> bool:
        """Retrying or bisecting cannot help: auth, scopes, missing object type or properties."""
        if self.status in (401, 403, 404):
            return True
        return any(code in SYSTEMIC_CODES for code, _ in self.problems)

    @property
    def is_per_record(self) -> bool:
        """The failure belongs to one (unknown) input of the batch: bisecting finds it."""
        if self.status == 409:
            return True
        if self.status == 400 and self.problems:
            return all(code in PER_RECORD_CODES for code, _ in self.problems)
        return False


def error_info(
    status: int,
    category: str | None = None,
    message: str | None = None,
    context: Mapping[str, Sequence[str]] | None = None,
    sub_category: Any = None,
    policy: str | None = None,
) -> ErrorInfo:
    message = message or ""
    contexts = {str(k): tuple(str(v) for v in (vals or ())) for k, vals in (context or {}).items()}
    problems: list[tuple[str, str]] = []
    found = _PROBLEMS.search(message)
    if found:
        try:
            for item in json.loads(found.group(1)):
                problems.append((str(item.get("error", "")), str(item.get("name", ""))))
        except (ValueError, AttributeError):
            problems.append(("UNPARSED_VALIDATION", ""))
    existing = _EXISTING_ID.search(message)
    email_conflict = message.startswith("Contact already exists")
    conflict_property = ""
    if contexts.get("propertyName"):
        conflict_property = contexts["propertyName"][0]
    elif email_conflict:
        conflict_property = "email"
    existing_id = existing.group(1) if existing else (contexts.get("existingId") or ("",))[0]
    return ErrorInfo(
        status=int(status or 0),
        category=str(category or ""),
        sub_category=str(sub_category or "") if isinstance(sub_category, str) else "",
        problems=tuple(problems),
        conflict_property=conflict_property,
        existing_id=existing_id,
        email_conflict=email_conflict,
        policy=str(policy or ""),
        context=contexts,
    )


def error_info_from_body(status: int, body: str | bytes | None) -> ErrorInfo:
    """From an HTTP error body (HubSpot's JSON envelope, or a gateway's HTML page)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body or "")
    except ValueError:
        return ErrorInfo(status=int(status or 0), category="NON_JSON_RESPONSE" if body else "")
    if not isinstance(data, dict):
        return ErrorInfo(status=int(status or 0))
    context = dict(data.get("context") or {})
    # a 403 MISSING_SCOPES names the scopes inside `errors[].context.requiredGranularScopes`
    for item in data.get("errors") or []:
        if isinstance(item, dict) and isinstance(item.get("context"), dict):
            for key, values in item["context"].items():
                if isinstance(values, list):
                    context.setdefault(key, values)
    return error_info(
        status,
        data.get("category") or data.get("errorType"),
        data.get("message"),
        context,
        data.get("subCategory"),
        data.get("policyName"),
    )


class HubSpotError(Exception):
    """Base of the client's errors; `str()` is the code summary only."""

    def __init__(self, info: ErrorInfo, operation: str) -> None:
        super().__init__(f"{operation}: {info.summary}")
        self.info = info
        self.operation = operation

    @property
    def status(self) -> int:
        return self.info.status


class HubSpotApiError(HubSpotError):
    """HubSpot answered with a client error (4xx other than 423/429): retrying the same call is futile."""


class HubSpotTransientError(HubSpotError):
    """Gateway errors, 429s, locks or connection errors persisted through every retry."""


class HubSpotDailyLimitError(HubSpotError):
    """The account's daily API quota is used up: nothing works until the next day."""


# -- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpsertInput:
    key: str  # value of the unique id property
    properties: Mapping[str, str]


@dataclass(frozen=True)
class UpsertResult:
    key: str
    hubspot_id: str
    new: bool


@dataclass(frozen=True)
class RowError:
    """One entry of a 207's `errors`; `key` is the input's unique key when HubSpot named it."""

    info: ErrorInfo
    key: str | None = None


@dataclass(frozen=True)
class UpsertOutcome:
    results: tuple[UpsertResult, ...]
    errors: tuple[RowError, ...] = ()


@dataclass(frozen=True)
class AssociationError:
    info: ErrorInfo
    pair: tuple[str, str] | None = None  # (from id, to id) when HubSpot named it

    @property
    def missing_objects(self) -> bool:
        return "INVALID_OBJECT_IDS" in self.info.sub_category or self.info.category == "OBJECT_NOT_FOUND"


@dataclass(frozen=True)
class AssociationOutcome:
    created: frozenset[tuple[str, str]]
    errors: tuple[AssociationError, ...] = ()


@dataclass(frozen=True)
class PropertyInfo:
    name: str
    type: str
    unique: bool
    group: str
    options: tuple[str, ...] = ()  # enumeration option values


@dataclass(frozen=True)
class AssociationLabel:
    """One association type between two object types (v4 labels endpoint); the unlabeled default
    has `label` None."""

    category: str
    type_id: int
    label: str | None


@dataclass(frozen=True)
class StageInfo:
    id: str
    label: str
    display_order: int
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class PipelineInfo:
    id: str
    label: str
    stages: tuple[StageInfo, ...]


class HubSpotApi(Protocol):
    """The client surface the portal setup and the sync engine use."""

    def batch_upsert(
        self, object_type: str, id_property: str, inputs: Sequence[UpsertInput]
    ) -> UpsertOutcome: ...

    def batch_read(
        self, object_type: str, id_property: str, keys: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, str | None]]: ...

    def read_by_ids(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, str | None]]: ...

    def create_associations(
        self, from_type: str, to_type: str, type_id: int, pairs: Sequence[tuple[str, str]]
    ) -> AssociationOutcome: ...

    def archive_associations(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]
    ) -> None: ...

    def association_labels(self, from_type: str, to_type: str) -> list[AssociationLabel]: ...

    def token_scopes(self) -> frozenset[str] | None: ...

    def list_property_groups(self, object_type: str) -> set[str]: ...

    def create_property_group(self, object_type: str, name: str, label: str) -> None: ...

    def list_properties(self, object_type: str) -> dict[str, PropertyInfo]: ...

    def create_properties(self, object_type: str, definitions: Sequence[Any]) -> list[ErrorInfo]: ...

    def list_pipelines(self) -> list[PipelineInfo]: ...

    def create_pipeline(
        self, label: str, display_order: int, stages: Sequence[tuple[str, int, Mapping[str, str]]]
    ) -> PipelineInfo: ...

    def create_stage(
        self, pipeline_id: str, label: str, display_order: int, metadata: Mapping[str, str]
    ) -> StageInfo: ...

    def update_stage(self, pipeline_id: str, stage_id: str, metadata: Mapping[str, str]) -> None: ...


@dataclass(frozen=True)
class UpdateOutcome:
    """A batch update by HubSpot id: what HubSpot updated, and its per-input errors (207)."""

    updated: tuple[str, ...]
    errors: tuple[ErrorInfo, ...] = ()
    failed_ids: tuple[str, ...] = ()
