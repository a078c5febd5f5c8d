"""Fault knobs: the ways the real Ivoris misbehaves, all off by default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultConfig:
    """Mutable on purpose: a test flips a knob on `emu.faults` and the next request obeys it.

    - `random_504_rate`: share of site requests answered 504 (gateway time-out), drawn from an
      RNG seeded by `seed` (default: derived from the emulator seed), so a sequential test
      sees the same sequence every run.
    - `max_in_flight`: when more than this many requests to one site are being served at once,
      the extra ones get an immediate 504 (per site: each practice has its own server).
      `None` = unlimited.
    - `latency_s`, `latency_jitter_s`: every site request sleeps `latency_s + U(0, jitter)`
      seconds (asyncio sleep, so concurrent requests overlap).
    - `duplicate_rate`: share of a page's records that show up again at the start of the next
      page, a third of them as a stale copy (older `modifiedAt`). Nothing is ever skipped.
    - `date_route_gap_rate`: share of document entries (a fixed subset chosen by entry id)
      that `GET /document-entries?from&to` leaves out; the per-patient route still has them.
    """

    random_504_rate: float = 0.0
    max_in_flight: int | None = None
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    duplicate_rate: float = 0.0
    date_route_gap_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("random_504_rate", "duplicate_rate", "date_route_gap_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.latency_s < 0 or self.latency_jitter_s < 0:
            raise ValueError("latency must not be negative")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1 (or None for unlimited)")


# What a rewrite gets: the answer the emulator would have sent, decoded (amounts as `Decimal`), and
# the request's query parameters. It returns the new answer (any JSON value, encoded with every
# non-ASCII character escaped, so "\ud800" arrives as an escape), raw `bytes`/`str` to send as they
# are, or None after changing the answer in place.
Rewrite = Callable[[Any, dict[str, str]], Any]


@dataclass
class Injection:
    """One malformed-answer rule (see `IvorisEmulator.inject_response` / `rewrite_response`).

    Matches requests to `route` (a site route template such as "/appointments" or
    "/patients/{patient_id}/document-entries", or "*" for every route) of `site_id` (None: every
    site) whose query contains `params` (exact string values). `times` is how many more requests
    it answers (None: all of them); `served` counts those it did. Either `body` replaces the answer
    outright, or `rewrite` transforms the normal answer (only 200 answers; errors pass unchanged).
    """

    route: str
    site_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    status: int | None = None
    body: bytes | None = None
    rewrite: Rewrite | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    served: int = 0

    def __post_init__(self) -> None:
        if (self.body is None) == (self.rewrite is None):
            raise ValueError("an injection needs exactly one of body and rewrite")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None for every matching request)")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status, got {self.status}")

    def matches(self, site_id: str, route: str, query: Mapping[str, str]) -> bool:
        return ((self.site_id is None or self.site_id == site_id)
                and self.route in ("*", route)
                and all(query.get(name) == value for name, value in self.params.items()))
