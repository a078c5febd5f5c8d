"""A check's verdict without Dagster, so the rules behind every asset check are usable and testable
on their own; the wiring turns it into an `AssetCheckResult`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    WARN = "WARN"
    ERROR = "ERROR"


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    severity: Severity
    description: str
    metadata: dict[str, Any]
