"""HubSpot's rate limits: a rolling 10-second window per app, a daily cap per account, and a separate
per-second limit on the search endpoints (whose answers carry no rate-limit headers)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, fields, replace
from typing import Any

from biss_emulators.hubspot.errors import new_correlation_id
from biss_emulators.hubspot.schema import TIER_LIMITS


@dataclass(frozen=True)
class RateLimits:
    ten_secondly: int
    daily: int
    window_s: float = 10.0
    daily_window_s: float = 86_400.0  # fixed windows aligned to the epoch: midnight UTC by default
    search_per_second: int = 5
    search_window_s: float = 1.0

    @classmethod
    def for_tier(cls, tier: str, overrides: RateLimits | dict[str, Any] | None = None) -> RateLimits:
        if tier not in TIER_LIMITS:
            raise ValueError(f"unknown HubSpot tier {tier!r}; expected one of {sorted(TIER_LIMITS)}")
        per_ten, per_day = TIER_LIMITS[tier]
        limits = cls(ten_secondly=per_ten, daily=per_day)
        if overrides is None:
            return limits
        if isinstance(overrides, RateLimits):
            return overrides
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown rate limit settings: {sorted(unknown)}")
        return replace(limits, **overrides)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: dict[str, str]
    body: dict[str, Any] | None = None


class RateLimiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._day_bucket = -1
        self._day_count = 0

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self._search_window.clear()
            self._day_bucket, self._day_count = -1, 0

    def acquire(self, kind: str) -> Decision:
        """Count one request ("api" or "search"); requests that get a 429 do not count."""
        now = time.monotonic()
        limits = self.limits
        with self._lock:
            bucket = int(time.time() // limits.daily_window_s)
            if bucket != self._day_bucket:
                self._day_bucket, self._day_count = bucket, 0
            while self._window and self._window[0] <= now - limits.window_s:
                self._window.popleft()
            while self._search_window and self._search_window[0] <= now - limits.search_window_s:
                self._search_window.popleft()

            if self._day_count >= limits.daily:
                return Decision(
                    False,
                    {} if kind == "search" else self._headers(),
                    _body("You have reached your daily limit.", "DAILY", "publicapi-daily"),
                )
            if kind == "search":
                if len(self._search_window) >= limits.search_per_second:
                    return Decision(
                        False,
                        {},
                        _body("You have reached your secondly limit.", "SECONDLY", "publicapi-crm-search"),
                    )
                self._search_window.append(now)
                self._day_count += 1
                return Decision(True, {})
            if len(self._window) >= limits.ten_secondly:
                return Decision(
                    False,
                    self._headers(),
                    _body(
                        "You have reached your ten_secondly_rolling limit.",
                        "TEN_SECONDLY_ROLLING",
                        "publicapi-app-limits",
                    ),
                )
            self._window.append(now)
            self._day_count += 1
            return Decision(True, self._headers())

    def storm(self, kind: str) -> Decision:
        """A 429 from a storm (the account's budget used up elsewhere): HubSpot's body and headers with
        nothing remaining; not counted, like every 429."""
        with self._lock:
            if kind == "search":
                return Decision(
                    False,
                    {},
                    _body("You have reached your secondly limit.", "SECONDLY", "publicapi-crm-search"),
                )
            headers = {**self._headers(), "X-HubSpot-RateLimit-Remaining": "0"}
        return Decision(
            False,
            headers,
            _body(
                "You have reached your ten_secondly_rolling limit.",
                "TEN_SECONDLY_ROLLING",
                "publicapi-app-limits",
            ),
        )

    def _headers(self) -> dict[str, str]:
        limits = self.limits
        return {
            "X-HubSpot-RateLimit-Daily": str(limits.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, limits.daily - self._day_count)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.window_s * 1000)),
            "X-HubSpot-RateLimit-Max": str(limits.ten_secondly),
            "X-HubSpot-RateLimit-Remaining": str(max(0, limits.ten_secondly - len(self._window))),
        }


def _body(message: str, policy: str, group: str) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": new_correlation_id(),
        "policyName": policy,
        "groupName": group,
    }
