"""The HTTP side: Starlette routes for every site, fault injection and request counters."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from random import Random
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from biss_emulators.ivoris import lies
from biss_emulators.ivoris._util import LruCache, derive_seed, dumps, epoch_of, unit, utc_text
from biss_emulators.ivoris.dataset import Dataset
from biss_emulators.ivoris.faults import SITE_ROUTES, FaultConfig, Injection

SITE_PREFIX = "/sites/{site_id}"
UNMATCHED = "<unmatched>"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_RANGE_DAYS = 366
MAX_IDS = 500
# What an nginx in front of Ivoris sends; clients must not expect JSON from the gateway.
GATEWAY_BODIES = {
    503: "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
         "<h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>\n",
    504: "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1>"
         "</center><hr><center>nginx</center></body></html>\n",
}


@dataclass(frozen=True)
class SiteInfo:
    site_id: str
    practice_id: int
    name: str
    key_prefix: str
    api_key: str


@dataclass
class Outage:
    mode: str  # "503" | "refuse"
    until: float | None  # time.monotonic() deadline; None = until cleared
    token: int = 0

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


class Stats:
    """Counters by (route template, status), fault counts and peak concurrency; thread-safe.

    Concurrency is tracked in total and per site: each practice runs its own Ivoris server,
    so `max_in_flight` applies to one site's requests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: Counter[tuple[str, int]] = Counter()
            self.faults: Counter[str] = Counter()
            self.in_flight = 0
            self.peak_in_flight = 0
            self.site_in_flight: Counter[str] = Counter()
            self.site_peak: Counter[str] = Counter()

    def enter(self, site_id: str) -> int:
        """Count a request in; returns how many of this site's requests are now in flight."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.site_in_flight[site_id] += 1
            current = self.site_in_flight[site_id]
            self.site_peak[site_id] = max(self.site_peak[site_id], current)
            return current

    def leave(self, site_id: str) -> None:
        with self._lock:
            self.in_flight -= 1
            self.site_in_flight[site_id] -= 1

    def record(self, template: str, status: int) -> None:
        with self._lock:
            self.requests[(template, status)] += 1

    def fault(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self.faults[kind] += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "peak_in_flight": self.peak_in_flight,
                "peak_in_flight_by_site": dict(self.site_peak),
                "in_flight": self.in_flight,
                "total_requests": sum(self.requests.values()),
                "faults": dict(self.faults),
            }


@dataclass(frozen=True)
class Call:
    """One site request as the handlers see it, with a copy of the fault config taken when the
    answer starts: a knob flipped mid-request cannot make one answer half faulty."""

    site: SiteInfo
    route: str
    params: QueryParams
    path: dict[str, Any]
    faults: FaultConfig
    key: str  # lies.request_key, "" when no seeded per-request decision needs it
    attempt: int  # earlier requests with the same key (0 when no transient knob is on)
    fault_seed: int

    @property
    def lies(self) -> bool:
        return self.faults.lies_apply(self.site.site_id, self.route)


Handler = Callable[[Call], bytes]
Endpoint = Callable[[Request], Awaitable[Response]]
# Attempts are remembered per distinct request; a year's backfill of the bench preset makes some
# 100,000 of them, and forgetting the oldest only restarts their count.
ATTEMPT_MEMORY = 200_000


class IvorisService:
    """Shared state behind every port: data, clock, faults, outages and counters."""

    def __init__(self, dataset: Dataset, sites: list[SiteInfo], faults: FaultConfig, clock: int,
                 seed: int) -> None:
        self.dataset = dataset
        self.sites = {site.site_id: site for site in sites}
        self.faults = faults
        self.stats = Stats()
        self.outages: dict[str | None, Outage] = {}
        self._clock = clock
        self._clock_lock = threading.Lock()
        self._seed = seed
        self._fault_lock = threading.Lock()
        self._fault_rng_seed: int | None = None
        self._fault_rng = Random(0)
        self._dup_key = derive_seed(seed, "duplicates")
        self._stale_key = derive_seed(seed, "stale")
        self._default_fault_seed = derive_seed(seed, "faults")
        self._non_integer = lies.NonIntegerIds(seed)
        self._attempts: LruCache[str, list[int]] = LruCache(ATTEMPT_MEMORY)
        self._injections: list[Injection] = []
        self._injection_lock = threading.Lock()
        self.site_routes: tuple[str, ...] = ()
        self.app = self._build_app()

    # -- clock ----------------------------------------------------------------------------------

    @property
    def clock(self) -> int:
        with self._clock_lock:
            return self._clock

    @clock.setter
    def clock(self, value: int) -> None:
        with self._clock_lock:
            self._clock = value

    # -- app --------------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        site_routes: list[tuple[str, Handler]] = [
            ("/practices", self._practices),
            ("/chairs", self._chairs),
            ("/appointment-types", self._appointment_types),
            ("/appointments", self._appointments),
            ("/patients", self._patients),
            ("/patients/{patient_id:int}/document-entries", self._patient_entries),
            ("/document-entries", self._document_entries),
        ]
        self.site_routes = tuple(path.replace(":int", "") for path, _ in site_routes)
        assert self.site_routes == SITE_ROUTES, "faults.SITE_ROUTES must list the routes served here"
        # counters use the path without converters, e.g. /sites/{site_id}/patients/{patient_id}/...
        routes = [
            Route(SITE_PREFIX + path, self._site_endpoint(SITE_PREFIX + path.replace(":int", ""), handler),
                  methods=["GET"])
            for path, handler in site_routes
        ]
        routes.append(Route("/_emulator/stats", self._counted("/_emulator/stats", self._stats_endpoint),
                            methods=["GET"]))
        routes.append(Route("/{path:path}", self._counted(UNMATCHED, self._not_found)))
        return Starlette(routes=routes)

    def _counted(self, template: str, endpoint: Endpoint) -> Endpoint:
        async def wrapped(request: Request) -> Response:
            response = await endpoint(request)
            self.stats.record(template, response.status_code)
            return response

        return wrapped

    async def _stats_endpoint(self, request: Request) -> Response:
        snap = self.stats.snapshot()
        body = {
            "requests": [{"route": route, "status": status, "count": count}
                         for (route, status), count in sorted(snap["requests"].items())],
            "peak_in_flight": snap["peak_in_flight"],
            "peak_in_flight_by_site": snap["peak_in_flight_by_site"], "in_flight": snap["in_flight"],
            "total_requests": snap["total_requests"], "faults": snap["faults"], "clock": utc_text(self.clock),
        }
        return _json(200, body)

    async def _not_found(self, request: Request) -> Response:
        return _error(ApiError(404, "not_found", "no such route"))

    def _site_endpoint(self, template: str, handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            site_id = str(request.path_params["site_id"])
            in_flight = self.stats.enter(site_id)
            try:
                response = await self._serve(request, in_flight, handler, template.removeprefix(SITE_PREFIX))
            finally:
                self.stats.leave(site_id)
            self.stats.record(template, response.status_code)
            return response

        return endpoint

    async def _serve(self, request: Request, in_flight: int, handler: Handler, route: str) -> Response:
        site = self.sites.get(request.path_params["site_id"])
        if site is None:
            return _error(ApiError(404, "not_found", "unknown site"))
        # Gateway-level faults come first: the real proxy answers before Ivoris sees the key.
        if self._in_outage(site.site_id):
            self.stats.fault("outage_503")
            return _gateway(503)
        faults = self.faults
        if faults.max_in_flight is not None and in_flight > faults.max_in_flight:
            self.stats.fault("overload_504")
            return _gateway(504)
        delay = faults.latency_s
        if faults.latency_jitter_s:
            delay += self._draw(faults) * faults.latency_jitter_s
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.random_504_rate > 0 and self._draw(faults) < faults.random_504_rate:
            self.stats.fault("random_504")
            return _gateway(504)
        if request.headers.get("x-api-key") != site.api_key:
            return _error(ApiError(401, "unauthorized", "missing or wrong X-Api-Key"))
        injection = self._take_injection(site.site_id, route, request.query_params)
        if injection is not None and injection.body is not None:
            return _injected(injection, injection.body)
        call = self._call(site, route, request, faults)
        faults = call.faults
        # An injection is a test's deliberate answer: seeded garbling on top would blur what it tests.
        garble = injection is None and call.lies
        if garble and faults.html_200_rate > 0 and self._chance(call, "html-200") < faults.html_200_rate:
            self.stats.fault("html_200")
            return Response(lies.HTML_200_BODY, status_code=200, media_type="text/html")
        try:
            # data generation is CPU work; a worker thread keeps other requests' sleeps on time
            body = await anyio.to_thread.run_sync(handler, call)
        except ApiError as exc:
            return _error(exc)
        if injection is not None:
            return _injected(injection, _rewritten(injection, body, dict(request.query_params)))
        if (garble and faults.truncated_json_rate > 0
                and self._chance(call, "truncated-json") < faults.truncated_json_rate):
            self.stats.fault("truncated_json")
            body = lies.cut(body, derive_seed(call.fault_seed, call.key, call.attempt, "cut"))
        return Response(body, status_code=200, media_type="application/json")

    def _call(self, site: SiteInfo, route: str, request: Request, faults: FaultConfig) -> Call:
        faults = copy.copy(faults)
        path = dict(request.path_params)
        in_scope = faults.lies_apply(site.site_id, route)
        keyed = in_scope and (faults.transient_on or faults.wide_short_page_rate > 0)
        # the key costs a hash per request, so only knobs that decide per request pay for it
        key = lies.request_key(site.site_id, route, path, request.query_params.multi_items()) if keyed else ""
        attempt = self._next_attempt(key) if keyed and faults.transient_on else 0
        return Call(site, route, request.query_params, path, faults, key, attempt, self._fault_seed(faults))

    def _next_attempt(self, key: str) -> int:
        with self._fault_lock:
            counter = self._attempts.get_or_create(key, lambda: [0])
            attempt = counter[0]
            counter[0] += 1
            return attempt

    def _chance(self, call: Call, kind: str, persistent: bool = False) -> float:
        return lies.chance(call.fault_seed, call.key, None if persistent else call.attempt, kind)

    # -- malformed answers on request (IvorisEmulator.inject_response / rewrite_response) ---------

    def add_injection(self, injection: Injection) -> Injection:
        if injection.route != "*" and injection.route not in self.site_routes:
            raise ValueError(f"unknown route {injection.route!r}; routes are {list(self.site_routes)} or '*'")
        if injection.site_id is not None and injection.site_id not in self.sites:
            raise ValueError(f"unknown site {injection.site_id!r}")
        with self._injection_lock:
            self._injections.append(injection)
        return injection

    def clear_injections(self) -> None:
        with self._injection_lock:
            self._injections.clear()

    def _take_injection(self, site_id: str, route: str, query: QueryParams) -> Injection | None:
        """The first registered rule matching the request, counted; used-up rules are dropped."""
        with self._injection_lock:
            for injection in self._injections:
                if injection.matches(site_id, route, query):
                    injection.served += 1
                    if injection.times is not None:
                        injection.times -= 1
                        if injection.times == 0:
                            self._injections.remove(injection)
                    self.stats.fault("injected")
                    return injection
        return None

    def _fault_seed(self, faults: FaultConfig) -> int:
        return faults.seed if faults.seed is not None else self._default_fault_seed

    def _draw(self, faults: FaultConfig) -> float:
        with self._fault_lock:
            seed = self._fault_seed(faults)
            if seed != self._fault_rng_seed:
                self._fault_rng_seed, self._fault_rng = seed, Random(seed)
            return self._fault_rng.random()

    def reset_fault_rng(self) -> None:
        """A new fault config starts its 504 sequence and every request's attempt count afresh."""
        with self._fault_lock:
            self._fault_rng_seed = None
            self._attempts.clear()

    def _in_outage(self, site_id: str) -> bool:
        # A site in "refuse" mode has its own port closed; reached through the shared port it
        # can only say 503.
        now = time.monotonic()
        return any(outage is not None and outage.active(now)
                   for outage in (self.outages.get(None), self.outages.get(site_id)))

    # -- handlers (run in a worker thread, return JSON bytes) --------------------------------------

    def _practices(self, call: Call) -> bytes:
        return dumps(self.dataset.practices(call.site.site_id))

    def _chairs(self, call: Call) -> bytes:
        return dumps(self.dataset.chairs(call.site.site_id))

    def _appointment_types(self, call: Call) -> bytes:
        return dumps(self.dataset.appointment_types())

    def _appointments(self, call: Call) -> bytes:
        site, params = call.site, call.params
        first, last = _date_range(params)
        page, size = _paging(params)
        clock = self.clock
        ds = self.dataset

        def fetch(offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
            return ds.appointments_page(site.site_id, first, last, clock, offset, limit)

        def stale(record: dict[str, Any]) -> dict[str, Any]:
            before = _epoch_text(record["modifiedAt"]) - 1
            return ds.appointment_record(site.site_id, record["id"], before) or record

        return self._paged(call, "appointments", "appointments", page, size, fetch, stale, last - first + 1)

    def _document_entries(self, call: Call) -> bytes:
        site, params = call.site, call.params
        first, last = _date_range(params)
        page, size = _paging(params)
        clock = self.clock
        gap_rate = call.faults.date_route_gap_rate

        def fetch(offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
            return self.dataset.entries_page(site.site_id, first, last, clock, gap_rate, offset, limit)

        return self._paged(call, "document-entries", "document_entries", page, size, fetch,
                           self._stale_entry, last - first + 1)

    def _stale_entry(self, record: dict[str, Any]) -> dict[str, Any]:
        hours = 1 + int(unit(self._stale_key, record["id"]) * 6)
        older = _epoch_text(record["modifiedAt"]) - hours * 3600
        return {**record, "modifiedAt": utc_text(older)}

    def _stale_patient(self, site: SiteInfo) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def stale(record: dict[str, Any]) -> dict[str, Any]:
            before = _epoch_text(record["modifiedAt"]) - 1
            return self.dataset.patient_record(site.site_id, record["id"], before) or record

        return stale

    def _patients(self, call: Call) -> bytes:
        site, params = call.site, call.params
        clock = self.clock
        ds = self.dataset
        if "ids" in params:
            if "modifiedSince" in params:
                raise bad_request("use either ids or modifiedSince, not both")
            records = ds.patients_by_ids(site.site_id, _ids(params["ids"]), clock)
            return self._listed(call, "patients-by-ids", "patients", records, self._stale_patient(site))
        since = _instant(params["modifiedSince"]) if "modifiedSince" in params else None
        page, size = _paging(params)

        def fetch(offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
            return ds.patients_page(site.site_id, since, clock, offset, limit)

        return self._paged(call, "patients", "patients", page, size, fetch, self._stale_patient(site), None)

    def _patient_entries(self, call: Call) -> bytes:
        entries = self.dataset.patient_entries(call.site.site_id, call.path["patient_id"], self.clock)
        if entries is None:
            raise ApiError(404, "not_found", "unknown patient")
        records = [entry.record() for entry in entries]
        return self._listed(call, "patient-entries", "document_entries", records, self._stale_entry)

    def _listed(self, call: Call, route: str, entity: str, records: list[dict[str, Any]],
                stale: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
        """The `?ids=` and per-patient answers: the contract's plain list, or pages when the
        `paged_lists_page_size` switch is on (legitimate server behaviour, not a lie)."""
        default = call.faults.paged_lists_page_size
        if default is None:
            return dumps(self._non_integer_ids(call, entity, records))
        page, size = _paging(call.params, default)

        def fetch(offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
            return len(records), records[offset: offset + limit]

        return self._paged(call, route, entity, page, size, fetch, stale, None)

    def _paged(self, call: Call, route: str, entity: str, page: int, size: int,
               fetch: Callable[[int, int], tuple[int, list[dict[str, Any]]]],
               stale: Callable[[dict[str, Any]], dict[str, Any]], window_days: int | None) -> bytes:
        site, faults = call.site, call.faults
        offset = (page - 1) * size
        total, items = fetch(offset, size)
        rate = faults.duplicate_rate
        if rate > 0 and page > 1 and items:
            # As if records were inserted before our offset between two page requests: some of
            # the previous page's records come again. Extra items, so nothing is ever skipped.
            _, previous = fetch(offset - size, size)
            route_key = derive_seed(site.site_id, route, page)
            repeats = []
            for record in previous:
                if unit(self._dup_key ^ route_key, record["id"]) < rate:
                    is_stale = unit(self._stale_key ^ route_key, record["id"]) < 1 / 3
                    repeats.append(stale(record) if is_stale else record)
            if repeats:
                self.stats.fault("duplicates", len(repeats))
                items = repeats + items
        if call.lies:
            items, total = self._paging_lies(call, size, window_days, items, total)
        items = self._non_integer_ids(call, entity, items)
        return dumps({"items": items, "page": page, "pageSize": size, "total": total})

    def _paging_lies(self, call: Call, size: int, window_days: int | None, items: list[dict[str, Any]],
                     total: int) -> tuple[list[dict[str, Any]], int]:
        faults = call.faults
        if (items and faults.wide_short_page_rate > 0 and _is_wide(faults, size, window_days)
                and self._chance(call, "wide-short", persistent=True) < faults.wide_short_page_rate):
            self.stats.fault("wide_short_page")
            items = lies.drop_items(items, derive_seed(call.fault_seed, call.key, "wide-drop"))
        if items and faults.short_page_rate > 0 and self._chance(call, "short") < faults.short_page_rate:
            self.stats.fault("short_page")
            items = lies.drop_items(items, derive_seed(call.fault_seed, call.key, call.attempt, "drop"))
        if faults.phantom_total_extra:
            self.stats.fault("phantom_total")
            total += faults.phantom_total_extra
        if faults.total_drift_rate > 0 and self._chance(call, "drift") < faults.total_drift_rate:
            self.stats.fault("total_drift")
            seed = derive_seed(call.fault_seed, call.key, call.attempt, "drift-by")
            total = max(0, total + lies.drift(seed, faults.total_drift_max))
        return items, total

    def _non_integer_ids(self, call: Call, entity: str,
                         records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        faults = call.faults
        if faults.non_integer_id_rate <= 0 or not faults.lies_apply(call.site.site_id):
            return records
        out, changed = self._non_integer.apply(call.site.site_id, entity, records, faults.non_integer_id_rate,
                                               faults.non_integer_id_references)
        if changed:
            self.stats.fault("non_integer_ids", changed)
        return out


# -- parameter parsing ----------------------------------------------------------------------------


def _date(params: QueryParams, name: str) -> int:
    value = params.get(name)
    if not value:
        raise bad_request(f"{name} is required (YYYY-MM-DD)")
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value).toordinal()
    except ValueError:
        raise bad_request(f"{name} must be a date YYYY-MM-DD") from None


def _date_range(params: QueryParams) -> tuple[int, int]:
    first, last = _date(params, "from"), _date(params, "to")
    if first > last:
        raise bad_request("from must not be after to")
    if last - first >= MAX_RANGE_DAYS:
        raise bad_request(f"date range is limited to {MAX_RANGE_DAYS} days")
    return first, last


def _int(params: QueryParams, name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise bad_request(f"{name} must be within {lo}..{hi}")
    return value


def _paging(params: QueryParams, default_size: int = DEFAULT_PAGE_SIZE) -> tuple[int, int]:
    return _int(params, "page", 1, 1, 10**9), _int(params, "pageSize", default_size, 1, MAX_PAGE_SIZE)


def _is_wide(faults: FaultConfig, size: int, window_days: int | None) -> bool:
    """A request the `wide_short_page_rate` knob may spoil; routes without a date window are judged
    by their page size alone."""
    days = faults.wide_after_days
    by_days = days is not None and window_days is not None and window_days > days
    by_size = faults.wide_after_page_size is not None and size > faults.wide_after_page_size
    return by_days or by_size


def _ids(raw: str) -> list[int]:
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise bad_request("ids must list at least one id")
    if len(parts) > MAX_IDS:
        raise bad_request(f"at most {MAX_IDS} ids per request")
    try:
        ids = [int(part) for part in parts]
    except ValueError:
        raise bad_request("ids must be comma-separated integers") from None
    if any(pid < 1 for pid in ids):
        raise bad_request("ids must be positive")
    return ids


def _instant(raw: str) -> int:
    # an unencoded "+02:00" arrives as " 02:00"
    value = raw.strip().replace(" ", "+")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise bad_request("modifiedSince must be an ISO-8601 timestamp, e.g. 2026-06-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return epoch_of(parsed)


def _epoch_text(text: str) -> int:
    return epoch_of(dt.datetime.fromisoformat(text))


# -- responses ---------------------------------------------------------------------------------------


def _json(status: int, body: Any) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def _error(exc: ApiError) -> Response:
    return _json(exc.status, {"error": exc.error, "message": exc.message, "status": exc.status})


def _rewritten(injection: Injection, body: bytes, query: dict[str, str]) -> bytes:
    assert injection.rewrite is not None
    answer = json.loads(body, parse_float=Decimal)
    result = injection.rewrite(answer, query)
    if result is None:
        result = answer
    if isinstance(result, bytes):
        return result
    if isinstance(result, str):
        return result.encode("utf-8", "surrogatepass")
    return dumps(result, ascii_only=True)


def _injected(injection: Injection, body: bytes) -> Response:
    # Starlette adds Content-Length from the body unless the injection sets one (a wrong one on purpose).
    media_type = "application/json" if injection.content_type is None else injection.content_type or None
    return Response(body, status_code=injection.status or 200, headers=injection.headers or None,
                    media_type=media_type)


def _gateway(status: int) -> Response:
    return Response(GATEWAY_BODIES[status], status_code=status, media_type="text/html")
