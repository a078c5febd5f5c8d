"""Fault knobs: the ways the real Ivoris misbehaves, all off by default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Every site route template; `lie_routes` and the injections name routes this way.
SITE_ROUTES = ("/practices", "/chairs", "/appointment-types", "/appointments", "/patients",
               "/patients/{patient_id}/document-entries", "/document-entries")
RATES = ("random_504_rate", "duplicate_rate", "date_route_gap_rate", "short_page_rate",
         "wide_short_page_rate", "total_drift_rate", "html_200_rate", "truncated_json_rate",
         "non_integer_id_rate")


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

    Paging lies and garbled answers (SPEC §3 rev. 2; docs/ivoris-emulator.md has the table of what a
    correct client can and cannot recover). "Transient" decisions are a pure function of the fault
    seed, the exact request (site, route, path, query) and how often that request was made before, so
    a re-read may be whole and concurrent clients asking different things cannot disturb each other's
    sequence; "persistent" ones leave out the attempt, so re-reading never helps.

    - `short_page_rate` (transient): share of page envelopes that drop items (a quarter of them
      every item); `total` stays true.
    - `wide_short_page_rate` (persistent): share of the pages of a *wide* request that drop items,
      the same ones on every read. A request is wide when its date window spans more than
      `wide_after_days` days (from..to inclusive) or its `pageSize` exceeds `wide_after_page_size`;
      None switches that criterion off. Narrow requests are never touched by this knob.
    - `phantom_total_extra`: every page envelope reports this many records more than exist; pages
      past the real end are empty.
    - `total_drift_rate` (transient): share of page envelopes whose `total` is off by
      1..`total_drift_max` records, up or down (never below 0).
    - `paged_lists_page_size`: None (the contract's default) answers `GET /patients?ids=` and
      `GET /patients/{id}/document-entries` with a plain list; a number makes them page envelopes
      of that default size, honouring `page` and `pageSize` like the other paged routes.
    - `html_200_rate`, `truncated_json_rate` (transient): share of site answers replaced by an HTML
      error page with status 200, or whose JSON body is cut off (status 200, Content-Length of the
      cut body).
    - `non_integer_id_rate`: share of patients, appointments and document entries (a fixed subset
      by id) whose `id` is served as a non-integer (`"bc"`, `"12a"`, `"12"`, `12.5`, `true`) in
      every answer holding them; with `non_integer_id_references` the `patientId`/`appointmentId`
      pointing at such a record carry the same value.
    - `lie_sites`, `lie_routes`: restrict the knobs above to these site ids and route templates
      (e.g. "/appointments"); None = all. `lie_routes` does not apply to non-integer ids, which
      must look the same in every answer.
    """

    random_504_rate: float = 0.0
    max_in_flight: int | None = None
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    duplicate_rate: float = 0.0
    date_route_gap_rate: float = 0.0
    short_page_rate: float = 0.0
    wide_short_page_rate: float = 0.0
    wide_after_days: int | None = 1
    wide_after_page_size: int | None = 100
    phantom_total_extra: int = 0
    total_drift_rate: float = 0.0
    total_drift_max: int = 10
    paged_lists_page_size: int | None = None
    html_200_rate: float = 0.0
    truncated_json_rate: float = 0.0
    non_integer_id_rate: float = 0.0
    non_integer_id_references: bool = False
    lie_sites: tuple[str, ...] | None = None
    lie_routes: tuple[str, ...] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.latency_s < 0 or self.latency_jitter_s < 0:
            raise ValueError("latency must not be negative")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1 (or None for unlimited)")
        for name in ("wide_after_days", "wide_after_page_size", "paged_lists_page_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None), got {value}")
        no_criterion = self.wide_after_days is None and self.wide_after_page_size is None
        if self.wide_short_page_rate > 0 and no_criterion:
            # every request would be wide, and the knob promises that narrowing helps
            raise ValueError("wide_short_page_rate needs wide_after_days or wide_after_page_size")
        if self.phantom_total_extra < 0:
            raise ValueError("phantom_total_extra must not be negative")
        if self.total_drift_max < 1:
            raise ValueError("total_drift_max must be at least 1")
        if self.lie_routes is not None:
            unknown = set(self.lie_routes) - set(SITE_ROUTES)
            if unknown:
                raise ValueError(f"lie_routes has unknown routes {sorted(unknown)}; "
                                 f"routes are {list(SITE_ROUTES)}")

    def lies_apply(self, site_id: str, route: str | None = None) -> bool:
        """Whether the paging-lie and garbling knobs cover this site (and route, when given)."""
        return ((self.lie_sites is None or site_id in self.lie_sites)
                and (route is None or self.lie_routes is None or route in self.lie_routes))

    @property
    def transient_on(self) -> bool:
        """Whether any knob needs the per-request attempt count."""
        return (self.short_page_rate > 0 or self.total_drift_rate > 0 or self.html_200_rate > 0
                or self.truncated_json_rate > 0)


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
