"""Ivoris REST client: retries, robust paging, bounded concurrency, per-run statistics.

Ivoris answers 504 under load and at random, goes away for hours, repeats records when data
shifts between pages and is slow. The client absorbs the short faults (tenacity: exponential
backoff with jitter and a cap) and raises `IvorisUnavailableError` for the long ones, so the
partition fails visibly and is re-run later instead of losing records.

Payloads are never logged: they carry health data. Log lines name the site, route and status.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

log = logging.getLogger("biss_pipeline.ivoris")

RETRYABLE_STATUS = frozenset({502, 503, 504})
Record = dict[str, Any]


class IvorisError(RuntimeError):
    """Base class; messages name the site and route, never payload content."""


class IvorisUnavailableError(IvorisError):
    """Ivoris did not answer usefully within the retry budget (outage, persistent 5xx)."""


class IvorisResponseError(IvorisError):
    """Ivoris answered, but not in the contract's shape (non-JSON, wrong envelope, 4xx)."""


# A page count above this is not data but a broken `total`: refuse instead of paging for hours.
MAX_PAGES = 10_000


class IvorisNotFoundError(IvorisResponseError):
    """HTTP 404: the route or the record (e.g. a patient id the site does not know) does not exist."""


class _RetryableStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Garbled(Exception):
    """HTTP 2xx whose body is not JSON (an HTML error page from a gateway, a cut-off answer): in
    practice transient, so it is retried like a 5xx, within the same budget."""

    def __init__(self, content_type: str, status: int) -> None:
        super().__init__(f"answer is not JSON (HTTP {status}, {content_type})")
        self.content_type = content_type
        self.status = status


@dataclass(frozen=True)
class PagingAnomaly:
    """A paged answer that did not add up (SPEC §3 rev. 2): what was asked, what was wrong, and
    whether re-reading and narrowing made it consistent. Counts only, never content."""

    route: str
    window: str  # the request's window ("2026-04-01 .. 2026-04-07", "patient 123", "100 ids", ...)
    problem: str
    resolved: bool


Settings = TypeVar("Settings", "IvorisRoutes", "IvorisParams", "IvorisClientSettings")


@dataclass(frozen=True)
class IvorisRoutes:
    """Route templates relative to a site's base URL; a real installation maps them (resource
    config or the mapping's settings tab) without code changes."""

    practices: str = "/practices"
    chairs: str = "/chairs"
    appointment_types: str = "/appointment-types"
    appointments: str = "/appointments"
    patients: str = "/patients"
    document_entries: str = "/document-entries"
    patient_document_entries: str = "/patients/{patient_id}/document-entries"


@dataclass(frozen=True)
class IvorisParams:
    """Query parameter names of the site's API."""

    date_from: str = "from"
    date_to: str = "to"
    page: str = "page"
    page_size: str = "pageSize"
    ids: str = "ids"
    modified_since: str = "modifiedSince"


def with_overrides(defaults: Settings, overrides: Mapping[str, Any], what: str) -> Settings:
    """`defaults` with the named fields replaced; an unknown name is an error that lists the known ones."""
    known = {f.name for f in fields(defaults)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return replace(defaults, **overrides)


@dataclass(frozen=True)
class IvorisClientSettings:
    """How the client talks to one site. The defaults fit the emulated contract; the resource
    (and the mapping, per practice) override what a real installation needs."""

    auth_header: str = "X-Api-Key"
    routes: IvorisRoutes = IvorisRoutes()
    params: IvorisParams = IvorisParams()
    page_size: int = 200
    max_concurrency: int = 4
    timeout_s: float = 30.0
    max_attempts: int = 12
    max_retry_seconds: float = 600.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    verify_tls: bool = True
    chunk_days: int = 7
    # Paging lies: a short page is re-read this often before the request is narrowed (one day at
    # a time, then pages of `narrow_page_size`).
    page_rereads: int = 1
    narrow_page_size: int = 50
    # the entry repair asks every patient once within this many days (a rotating slice per day)
    repair_period_days: int = 7


@dataclass
class RequestStats:
    """What one client did: reported as materialization metadata, safe to log (no payloads)."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    records: int = 0
    duplicates_dropped: int = 0
    garbled: int = 0
    rereads: int = 0
    narrowed: int = 0
    status_counts: Counter[str] = field(default_factory=Counter)
    seconds_waiting: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_response(self, status: str) -> None:
        with self._lock:
            self.requests += 1
            self.status_counts[status] += 1

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_metadata(self) -> dict[str, Any]:
        with self._lock:
            return {
                "ivoris_requests": self.requests,
                "ivoris_retries": self.retries,
                "ivoris_pages": self.pages,
                "ivoris_records": self.records,
                "ivoris_duplicates_dropped": self.duplicates_dropped,
                "ivoris_garbled_answers": self.garbled,
                "ivoris_page_rereads": self.rereads,
                "ivoris_narrowed_requests": self.narrowed,
                "ivoris_status_counts": dict(sorted(self.status_counts.items())),
                "ivoris_seconds_in_backoff": round(self.seconds_waiting, 2),
            }


def newest_by_id(records: Iterable[Record]) -> tuple[list[Record], int]:
    """Dedupe by `id`; the copy with the newest `modifiedAt` wins (ISO UTC strings sort by time).

    Copies with the same newest `modifiedAt` but different content are all kept: nobody can tell
    which is right, so the extraction quarantines that id instead of keeping an arbitrary one.
    Returns the records in first-seen order and the number of copies dropped.
    """
    chosen: dict[Any, list[Record]] = {}
    dropped = 0
    for record in records:
        key = record.get("id")
        if key is None:
            # No identity to dedupe on: keep it, the extraction asset quarantines it.
            chosen[("__no_id__", len(chosen))] = [record]
            continue
        key = str(key)
        current = chosen.get(key)
        if current is None:
            chosen[key] = [record]
            continue
        stamp, kept = str(record.get("modifiedAt") or ""), str(current[0].get("modifiedAt") or "")
        if stamp > kept:
            dropped += len(current)
            chosen[key] = [record]
        elif stamp == kept and all(record != other for other in current):
            current.append(record)
        else:
            dropped += 1
    return [record for versions in chosen.values() for record in versions], dropped


class IvorisClient:
    """Talks to one practice's Ivoris server. Thread-safe; use as a context manager."""

    def __init__(self, *, site: str, base_url: str, api_key: str,
                 settings: IvorisClientSettings | None = None, **overrides: Any) -> None:
        # Keyword overrides on top of `settings`, e.g. one attempt for a probe.
        settings = with_overrides(settings or IvorisClientSettings(), overrides, "Ivoris client setting")
        self.site = site
        self.settings = settings
        self.routes = settings.routes
        self.params = settings.params
        self.page_size = settings.page_size
        self.max_concurrency = max(1, settings.max_concurrency)
        self.stats = RequestStats()
        self._anomalies: list[PagingAnomaly] = []
        self._anomaly_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._max_attempts = settings.max_attempts
        self._max_retry_seconds = settings.max_retry_seconds
        self._backoff_initial_s = settings.backoff_initial_s
        self._backoff_max_s = settings.backoff_max_s
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={settings.auth_header: api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(settings.timeout_s, connect=min(settings.timeout_s, 10.0)),
            verify=settings.verify_tls,
            limits=httpx.Limits(max_connections=self.max_concurrency,
                                max_keepalive_connections=self.max_concurrency),
        )

    def __enter__(self) -> IvorisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def anomalies(self) -> list[PagingAnomaly]:
        """Paged answers that did not add up, in the order met (resolved ones included)."""
        with self._anomaly_lock:
            return list(self._anomalies)

    def _note_anomaly(self, anomaly: PagingAnomaly) -> None:
        with self._anomaly_lock:
            self._anomalies.append(anomaly)
        log.warning("ivoris %s %s %s: %s (%s)", self.site, anomaly.route, anomaly.window, anomaly.problem,
                    "resolved by narrowing" if anomaly.resolved else "kept what was served")

    # -- transport -------------------------------------------------------------------------

    def _is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, _RetryableStatus | _Garbled | httpx.TimeoutException | httpx.TransportError)

    def _before_sleep(self, route: str) -> Callable[[RetryCallState], None]:
        def note_retry(state: RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0.0
            self.stats.add(retries=1, seconds_waiting=wait)
            exc = state.outcome.exception() if state.outcome else None
            reason = (f"HTTP {exc.status}" if isinstance(exc, _RetryableStatus)
                      else str(exc) if isinstance(exc, _Garbled) else type(exc).__name__)
            log.warning("ivoris %s %s: %s, retry %d in %.1fs", self.site, route, reason,
                        state.attempt_number, wait)
        return note_retry

    def _where(self, route: str, query: dict[str, Any] | None) -> str:
        """Site, route and the request's window (no payload, no patient data) for error messages."""
        query = query or {}
        p = self.params
        parts = [f"Ivoris site {self.site!r}, route {route}"]
        if p.date_from in query or p.date_to in query:
            parts.append(f"window {query.get(p.date_from)} .. {query.get(p.date_to)}")
        if p.modified_since in query:
            parts.append(f"modified since {query[p.modified_since]}")
        if p.ids in query:
            parts.append(f"{len(str(query[p.ids]).split(','))} ids")
        if p.page in query:
            parts.append(f"page {query[p.page]}")
        return ", ".join(parts)

    def _get_json(self, route: str, path: str, query: dict[str, Any] | None = None) -> Any:
        where = self._where(route, query)
        retrying = Retrying(
            retry=retry_if_exception(self._is_retryable),
            wait=wait_exponential_jitter(multiplier=self._backoff_initial_s, max=self._backoff_max_s,
                                         jitter=self._backoff_initial_s),
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._max_retry_seconds),
            before_sleep=self._before_sleep(route),
            reraise=True,
        )
        try:
            response, body = retrying(self._request_once, path, query)
        except _RetryableStatus as exc:
            raise IvorisUnavailableError(
                f"{where}: still HTTP {exc.status} after {self._max_attempts} attempts") from None
        except _Garbled as exc:
            raise IvorisResponseError(
                f"{where}: {exc} on every one of {self._max_attempts} attempts") from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise IvorisUnavailableError(
                f"{where}: unreachable ({type(exc).__name__}) after retrying") from None
        except httpx.DecodingError:
            # e.g. `Content-Encoding: gzip` over a body that is not gzip: no answer to read
            raise IvorisResponseError(
                f"{where}: answer body cannot be decoded (its Content-Encoding does not match it)") from None
        if response.status_code == 404:
            raise IvorisNotFoundError(f"{where}: HTTP 404")
        if response.status_code >= 400:
            raise IvorisResponseError(f"{where}: HTTP {response.status_code}")
        return body

    def _request_once(self, path: str, query: dict[str, Any] | None) -> tuple[httpx.Response, Any]:
        with self._slots:
            try:
                response = self._http.get(path, params=query)
            except httpx.TimeoutException:
                self.stats.count_response("timeout")
                raise
            except httpx.TransportError:
                self.stats.count_response("connection_error")
                raise
            except httpx.DecodingError:
                self.stats.count_response("undecodable")
                raise
        self.stats.count_response(str(response.status_code))
        if response.status_code in RETRYABLE_STATUS:
            raise _RetryableStatus(response.status_code)
        if response.status_code >= 400:
            return response, None
        try:
            # Amounts must stay exact: parse JSON numbers with a fraction as Decimal, never float.
            return response, json.loads(response.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            self.stats.add(garbled=1)
            raise _Garbled(response.headers.get("content-type", "no content type"),
                           response.status_code) from None

    # -- paging ----------------------------------------------------------------------------

    def _page(self, route: str, path: str, query: dict[str, Any], page: int,
              page_size: int) -> dict[str, Any]:
        """One page, checked against the contract `{items, page, pageSize, total}`."""
        request = {**query, self.params.page: page, self.params.page_size: page_size}
        body = self._get_json(route, path, request)
        where = self._where(route, request)
        if isinstance(body, dict) and "error" in body and "items" not in body:
            raise IvorisResponseError(f"{where}: answered an error object with HTTP 200, not a page")
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise IvorisResponseError(f"{where}: answer is not a {{items, total}} envelope")
        total = body.get("total")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise IvorisResponseError(f"{where}: page has no valid total (a non-negative integer)")
        echoed = body.get("page", page)
        if echoed != page:
            raise IvorisResponseError(f"{where}: the server answered page {echoed!r} instead")
        # A record that is not an object cannot be keyed: an empty record goes on to quarantine.
        body["items"] = [item if isinstance(item, dict) else {} for item in body["items"]]
        self.stats.add(pages=1)
        return body

    @staticmethod
    def _expected(body: dict[str, Any], page: int, page_size: int) -> int:
        """How many records the page's own `total` says it holds (offset paging)."""
        return min(page_size, max(0, body["total"] - (page - 1) * page_size))

    def _whole_page(self, route: str, path: str, query: dict[str, Any], page: int, page_size: int,
                    body: dict[str, Any]) -> tuple[dict[str, Any], list[Record]]:
        """The page, re-read while it is short of its own total (a transient lie is gone on the next
        read). Returns the fullest answer and every record the re-reads served (all real records)."""
        served = list(body["items"])
        for _ in range(max(0, self.settings.page_rereads)):
            if len(body["items"]) >= self._expected(body, page, page_size):
                break
            self.stats.add(rereads=1)
            again = self._page(route, path, query, page, page_size)
            served.extend(again["items"])
            if len(again["items"]) >= len(body["items"]):
                body = again
        return body, served

    def _read_pages(self, route: str, path: str, query: dict[str, Any],
                    page_size: int) -> tuple[list[Record], list[str]]:
        """Every page of one request, and what did not add up (empty: consistent).

        Pages after the first are fetched concurrently (bounded). A growing total adds pages, a
        shrinking one is not trusted: reading ends at the first page that stays empty (offset paging
        has nothing after it), so a phantom or runaway total costs one empty page, not thousands.
        """
        items: list[Record] = []
        problems: list[str] = []
        totals: set[int] = set()
        sequences: dict[tuple[str, ...], int] = {}
        page, last = 1, 1
        while page <= last:
            wanted = list(range(page, min(last, page + self.max_concurrency - 1) + 1))
            if wanted[-1] > MAX_PAGES:
                raise IvorisResponseError(
                    f"{self._where(route, query)}: more than {MAX_PAGES} pages of {page_size} hold "
                    "records; refusing to page")
            if len(wanted) == 1:
                bodies = [self._page(route, path, query, wanted[0], page_size)]
            else:
                with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
                    bodies = list(pool.map(lambda n: self._page(route, path, query, n, page_size), wanted))
            ended = False
            for number, first_answer in zip(wanted, bodies, strict=True):
                body, served = self._whole_page(route, path, query, number, page_size, first_answer)
                sequence = tuple(str(item.get("id")) for item in body["items"])
                if sequence and sequences.setdefault(sequence, number) != number:
                    raise IvorisResponseError(
                        f"{self._where(route, {**query, self.params.page: number})}: repeats page "
                        f"{sequences[sequence]} exactly; the server ignores paging")
                items.extend(served)
                totals.add(body["total"])
                expected = self._expected(body, number, page_size)
                if len(body["items"]) < expected:
                    problems.append(f"page {number} served {len(body['items'])} of the {expected} records "
                                    f"its total {body['total']} implies")
                if not body["items"]:
                    ended = True
                    break
                last = max(last, -(-body["total"] // page_size))
            if ended:
                break
            page = wanted[-1] + 1
        if len(totals) > 1:
            problems.append(f"total changed between pages ({min(totals)} .. {max(totals)})")
        return items, problems

    def _label(self, query: dict[str, Any]) -> str:
        """The request's window for an anomaly row (no site: the row has the practice)."""
        p = self.params
        if p.date_from in query or p.date_to in query:
            return f"{query.get(p.date_from)} .. {query.get(p.date_to)}"
        if p.modified_since in query:
            return f"modified since {query[p.modified_since]}"
        if p.ids in query:
            return f"{len(str(query[p.ids]).split(','))} ids"
        return "all"

    def _day_queries(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        p = self.params
        try:
            first = dt.date.fromisoformat(str(query[p.date_from]))
            last = dt.date.fromisoformat(str(query[p.date_to]))
        except (KeyError, ValueError):
            return [query]
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        return [{**query, p.date_from: day.isoformat(), p.date_to: day.isoformat()} for day in days]

    def _paged(self, route: str, path: str, query: dict[str, Any], label: str | None = None,
               ) -> list[Record]:
        """All pages of an offset-paged route, deduplicated by id (newest `modifiedAt` wins).

        When the pages do not add up (SPEC §3 rev. 2: a page short of `total`, a `total` that
        changes), the request is narrowed, one day at a time and then in pages of
        `narrow_page_size`, and read again. Every record any read served is kept (the lies drop
        records, they never invent them); what still does not add up is a `PagingAnomaly`.
        """
        items, problems = self._read_pages(route, path, query, self.page_size)
        if problems:
            items.extend(self._narrowed(route, path, query, label, problems))
        unique, dropped = newest_by_id(item for item in items if isinstance(item, dict))
        self.stats.add(records=len(unique), duplicates_dropped=dropped)
        return unique

    def _narrowed(self, route: str, path: str, query: dict[str, Any], label: str | None,
                  problems: list[str]) -> list[Record]:
        levels: list[tuple[bool, int]] = []  # (split into days, page size)
        if len(self._day_queries(query)) > 1:
            levels.append((True, self.page_size))
        small = max(1, min(self.page_size, self.settings.narrow_page_size))
        if small < self.page_size:
            levels.append((False, small))
        pending = [(query, problems)]
        items: list[Record] = []
        for split, page_size in levels:
            requests = [q for q, _ in pending for q in (self._day_queries(q) if split else [q])]
            self.stats.add(narrowed=len(requests))
            with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
                reads = list(pool.map(self._read_pages, [route] * len(requests), [path] * len(requests),
                                      requests, [page_size] * len(requests)))
            pending = []
            for request, (served, still) in zip(requests, reads, strict=True):
                items.extend(served)
                if still:
                    pending.append((request, still))
            if not pending:
                break
        if not pending:
            self._note_anomaly(PagingAnomaly(route, label or self._label(query), "; ".join(problems),
                                             resolved=True))
        for request, still in pending:
            window = label or self._label(request)
            self._note_anomaly(PagingAnomaly(route, window, "; ".join(still), resolved=False))
        return items

    def _list(self, route: str, path: str, query: dict[str, Any] | None = None,
              label: str | None = None) -> list[Record]:
        """A route the contract answers with a plain list; a server that pages it (an envelope with
        `total`) is followed page by page like the paged routes."""
        body = self._get_json(route, path, query)
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            total = body.get("total")
            whole = (isinstance(total, int) and not isinstance(total, bool)
                     and len(body["items"]) >= total and body.get("page", 1) == 1)
            if "total" in body and not whole:
                return self._paged(route, path, dict(query or {}), label)
            body = body["items"]
        if not isinstance(body, list):
            raise IvorisResponseError(f"{self._where(route, query)}: expected a list")
        records = [item if isinstance(item, dict) else {} for item in body]
        self.stats.add(records=len(records))
        return records

    # -- contract --------------------------------------------------------------------------

    def practices(self) -> list[Record]:
        return self._list("practices", self.routes.practices)

    def chairs(self) -> list[Record]:
        return self._list("chairs", self.routes.chairs)

    def appointment_types(self) -> list[Record]:
        return self._list("appointment-types", self.routes.appointment_types)

    def records_in_window(self, route: str, date_from: dt.date, date_to: dt.date) -> list[Record]:
        """Every record of a date-filtered route (an `IvorisRoutes` field) dated in the window."""
        return self._paged(route.replace("_", "-"), getattr(self.routes, route),
                           {self.params.date_from: date_from.isoformat(),
                            self.params.date_to: date_to.isoformat()})

    def appointments(self, date_from: dt.date, date_to: dt.date) -> list[Record]:
        return self.records_in_window("appointments", date_from, date_to)

    def document_entries(self, date_from: dt.date, date_to: dt.date) -> list[Record]:
        return self.records_in_window("document_entries", date_from, date_to)

    def patient_document_entries(self, patient_id: int | str) -> list[Record]:
        path = self.routes.patient_document_entries.format(patient_id=patient_id)
        try:
            answer = self._list("patient-document-entries", path, label=f"patient {patient_id}")
        except IvorisNotFoundError:
            # The contract's answer for a patient the site does not know (e.g. an appointment that
            # references a stranger; staging quarantines it as "unknown patient"): no entries.
            return []
        records, dropped = newest_by_id(answer)
        self.stats.add(duplicates_dropped=dropped)
        return records

    def patients_by_ids(self, ids: Iterable[int | str], chunk_size: int = 100) -> list[Record]:
        wanted = sorted({str(i) for i in ids}, key=lambda s: (len(s), s))
        chunks = [wanted[i:i + chunk_size] for i in range(0, len(wanted), chunk_size)]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            answers = list(pool.map(
                lambda chunk: self._list("patients", self.routes.patients,
                                         {self.params.ids: ",".join(chunk)}), chunks))
        records, dropped = newest_by_id(record for answer in answers for record in answer)
        self.stats.add(duplicates_dropped=dropped)
        return records

    def patients_modified_since(self, since: dt.datetime) -> list[Record]:
        stamp = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._paged("patients", self.routes.patients, {self.params.modified_since: stamp})


def iter_date_chunks(date_from: dt.date, date_to: dt.date, days: int) -> Iterator[tuple[dt.date, dt.date]]:
    """Split an inclusive date window into inclusive chunks of at most `days` days."""
    step = dt.timedelta(days=max(1, days))
    start = date_from
    while start <= date_to:
        end = min(date_to, start + step - dt.timedelta(days=1))
        yield start, end
        start = end + dt.timedelta(days=1)
