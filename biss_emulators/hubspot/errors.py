"""HubSpot's error bodies: `{"status":"error","message":…,"correlationId":…,"category":…}`."""

from __future__ import annotations

import json
import uuid
from typing import Any


class HubSpotError(Exception):
    """A request-level failure; the app turns it into HubSpot's JSON error body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        sub_category: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context
        self.sub_category = sub_category
        self.errors = errors

    def body(self, correlation_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id or new_correlation_id(),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = self.context
        if self.errors:
            body["errors"] = self.errors
        return body


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def standard_error(
    category: str,
    message: str,
    *,
    context: dict[str, list[str]] | None = None,
    sub_category: str | None = None,
    status: str = "error",
) -> dict[str, Any]:
    """One entry of a 207's `errors` list. The SDK's `StandardError` model rejects a missing
    `context`, `links` or `errors`, so they are always present (possibly empty)."""
    entry: dict[str, Any] = {
        "status": status,
        "category": category,
        "message": message,
        "context": context or {},
        "errors": [],
        "links": {},
    }
    if sub_category:
        entry["subCategory"] = sub_category
    return entry


def property_validation_error(problems: list[dict[str, Any]]) -> HubSpotError:
    """HubSpot embeds the per-property problems as a JSON string inside `message`."""
    detail = json.dumps(problems, separators=(",", ":"))
    return HubSpotError(400, "VALIDATION_ERROR", f"Property values were not valid: {detail}")


def property_problem(name: str, error: str, message: str) -> dict[str, Any]:
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
    }


def validation_error(message: str, **kwargs: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **kwargs)


def not_found(message: str, **kwargs: Any) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND", message, **kwargs)


def conflict(message: str, **kwargs: Any) -> HubSpotError:
    return HubSpotError(409, "CONFLICT", message, **kwargs)


AUTH_MISSING_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
