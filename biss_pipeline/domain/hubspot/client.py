"""HubSpot client: the official SDK behind a client-side rate limiter, retries and call statistics.

Every call goes through `hubspot.HubSpot` (`host` points it at the emulator in tests and demos).
`HubSpotClient` turns SDK models into the plain types of `biss_pipeline.domain.hubspot.api`, so the sync
engine never sees SDK models or HTTP.

Retries live here, not in urllib3
---------------------------------
urllib3's `Retry` skips POST and PATCH by default, and HubSpot's batch writes are POSTs. Allowing
them in urllib3 would work for upserts, but the retries would be invisible (no statistics), blind
to the 429 body (the daily cap must not be retried) and unable to check a non-idempotent write
(pipeline/stage create) before repeating it. So the SDK gets `Retry(total=0)` and this module
retries:

| answer                                   | action                                                     |
| ---------------------------------------- | ---------------------------------------------------------- |
| 429, policy `DAILY`                      | stop: `HubSpotDailyLimitError`                             |
| 429 otherwise (no `Retry-After` exists)  | back off from a tenth of the rate window, doubling, capped |
|                                          | at the window; the limiter pauses too                      |
| 502, 503, 504, 524, connection errors    | exponential backoff with jitter                            |
| 423 Locked                               | wait at least 2 s                                          |
| other 4xx                                | no retry: `HubSpotApiError` (the sync decides per row)     |

After `max_retries` the call raises `HubSpotTransientError`. Repeating an upsert or an association
create after a lost response is harmless (same unique key → same object). Creating a pipeline or
a stage is not idempotent, so before repeating one the client looks whether the first attempt
landed.

Rate limiter
------------
A rolling window sized below the tier's limit (HUBSPOT.md: starter 100, professional/enterprise
190 per 10 s; `rate_limit_safety` 0.9 of it). The answers' `X-HubSpot-RateLimit-Max` and
`-Interval-Milliseconds` resize it (never above the tier), and when `-Remaining` is nearly
exhausted (other processes of the same app share the budget) it pauses for the time one slot takes
to free up on average. Search has its own window: 4 per second, below HubSpot's 5.

Data protection: the SDK logs whole response bodies at DEBUG, so its loggers are held at INFO and its
`*.rest` loggers drop DEBUG records even when a level set on them says otherwise; errors carry code
summaries only (see `biss_pipeline.domain.hubspot.api`), never the SDK exception with its body.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicAssociationMultiArchive,
    PublicAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
    PublicObjectId,
)
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.pipelines import PipelineInput, PipelineStageInput, PipelineStagePatchInput
from hubspot.crm.properties import BatchInputPropertyCreate, PropertyCreate, PropertyGroupCreate
from urllib3.util.retry import Retry

from biss_pipeline.domain.hubspot.api import (
    AssociationError,
    AssociationLabel,
    AssociationOutcome,
    ErrorInfo,
    HubSpotApiError,
    HubSpotDailyLimitError,
    HubSpotError,
    HubSpotTransientError,
    PipelineInfo,
    PropertyInfo,
    RowError,
    StageInfo,
    UpdateOutcome,
    UpsertInput,
    UpsertOutcome,
    UpsertResult,
    error_info,
    error_info_from_body,
)
from biss_pipeline.domain.hubspot.model import PROPERTY_GROUP, PropertyDef

logger = logging.getLogger(__name__)

HUBSPOT_API_HOST = "https://api.hubapi.com"
ACCESS_TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"
# Requests per rolling 10 s per app (HUBSPOT.md); "free" behaves like starter.
TIER_LIMITS: Mapping[str, int] = {"free": 100, "starter": 100, "professional": 190, "enterprise": 190}
RATE_WINDOW_S = 10.0
SEARCH_PER_SECOND = 5
RETRYABLE_STATUSES = frozenset({502, 503, 504, 524})
MAX_BATCH = 100
RECORD_ID = "hs_object_id"
ASSOCIATION_READ_BATCH = 1000  # v4 batch read takes up to 1,000 inputs
_CATEGORY_STATUS = {
    "CONFLICT": 409,
    "VALIDATION_ERROR": 400,
    "OBJECT_NOT_FOUND": 404,
    "OBJECT_ALREADY_EXISTS": 409,
    "RATE_LIMITS": 429,
}


class _NoSdkBodies(logging.Filter):
    """Drops the SDK's DEBUG records (`response body: …`, whole contacts with names and emails)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_NO_SDK_BODIES = _NoSdkBodies()


def _quiet_sdk_debug_logging() -> None:
    sdk_logger = logging.getLogger("hubspot")
    if sdk_logger.level == logging.NOTSET or sdk_logger.level < logging.INFO:
        sdk_logger.setLevel(logging.INFO)
    # A level set on a child (`hubspot.crm.objects.rest` at DEBUG while debugging) overrides the parent's,
    # so the loggers that print response bodies also drop DEBUG records themselves.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("hubspot.") and name.endswith(".rest"):
            rest_logger = logging.getLogger(name)
            if _NO_SDK_BODIES not in rest_logger.filters:
                rest_logger.addFilter(_NO_SDK_BODIES)


def _header(headers: Any, name: str) -> int | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# -- statistics ---------------------------------------------------------------------------------------


@dataclass
class CallStats:
    """Per-client counters for materialization metadata (a client lives for one run)."""

    calls_by_kind: Counter[str] = field(default_factory=Counter)
    write_calls: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    server_errors: int = 0  # 5xx answers
    connection_errors: int = 0
    locked: int = 0  # 423 answers
    gave_up: int = 0  # calls that failed after every retry
    limiter_wait_s: float = 0.0

    @property
    def calls(self) -> int:
        return sum(self.calls_by_kind.values())

    def as_metadata(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "write_calls": self.write_calls,
            "calls_by_kind": dict(sorted(self.calls_by_kind.items())),
            "retries": self.retries,
            "rate_limited_429": self.rate_limited,
            "server_errors_5xx": self.server_errors,
            "connection_errors": self.connection_errors,
            "locked_423": self.locked,
            "gave_up": self.gave_up,
            "limiter_wait_s": round(self.limiter_wait_s, 3),
        }


# -- rate limiter -------------------------------------------------------------------------------------


class RateLimiter:
    """Rolling-window limiter for API calls, with a separate per-second window for search.

    Sized from HubSpot's answers: `X-HubSpot-RateLimit-Max` and `-Interval-Milliseconds` set the window
    (never above the tier's limit × `safety`), minus `reserve_share` of it kept for the portal's other
    integrations (the limit is per app, the daily budget per account). `-Remaining` at or below that
    reserve means others are using their share: the limiter pauses until a slot frees up on average.
    Search has its own budget (HubSpot: 5 per second, no headers); `search_per_second` − 1 keeps a
    margin for the jitter of a rolling window seen from the client."""

    def __init__(
        self,
        per_window: int,
        window_s: float = RATE_WINDOW_S,
        *,
        safety: float = 1.0,
        reserve_share: float = 0.05,
        search_per_second: int = SEARCH_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < safety <= 1:
            raise ValueError("safety must be within (0, 1]")
        if not 0 <= reserve_share < 1:
            raise ValueError("reserve_share must be within [0, 1)")
        self._tier_limit = per_window
        self.safety = safety
        self.reserve_share = reserve_share
        self.capacity = self._size(per_window)
        self.reserve = math.ceil(per_window * reserve_share)
        self.window_s = window_s
        self.search_capacity = max(1, search_per_second - 1)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._calls: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._pause_until = 0.0
        self.waited_s = 0.0

    def _size(self, maximum: int) -> int:
        allowed = min(self._tier_limit * self.safety, maximum)
        return max(1, math.floor(allowed * (1 - self.reserve_share)))

    def acquire(self, *, search: bool = False) -> None:
        while True:
            with self._lock:
                now = self._clock()
                window, capacity, span = (
                    (self._searches, self.search_capacity, 1.0)
                    if search
                    else (self._calls, self.capacity, self.window_s)
                )
                while window and window[0] <= now - span:
                    window.popleft()
                if not search and self._pause_until > now:
                    wait = self._pause_until - now
                elif len(window) >= capacity:
                    wait = window[0] + span - now
                else:
                    window.append(now)
                    return
            wait = max(wait, 0.001)
            self.waited_s += wait
            self._sleep(wait)

    def observe(self, headers: Any) -> None:
        """Adopt the limits HubSpot reports and pause when others ate into the reserve (our own use stops
        at the capacity, which leaves exactly the reserve)."""
        maximum = _header(headers, "X-HubSpot-RateLimit-Max")
        interval_ms = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        remaining = _header(headers, "X-HubSpot-RateLimit-Remaining")
        with self._lock:
            if interval_ms:
                self.window_s = interval_ms / 1000
            if maximum:
                self.capacity = self._size(maximum)
                self.reserve = math.ceil(maximum * self.reserve_share)
            if remaining is not None and maximum and remaining < self.reserve:
                slot = self.window_s / maximum
                self._pause_until = max(
                    self._pause_until, self._clock() + slot * (self.reserve - remaining + 1)
                )

    def after_429(self, attempt: int, rng: random.Random) -> float:
        """Backoff for a 429 (HubSpot sends no Retry-After); the limiter pauses for it too."""
        delay = min(self.window_s, self.window_s / 10 * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)
        with self._lock:
            self._pause_until = max(self._pause_until, self._clock() + delay)
        return delay


# -- client -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrySettings:
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    locked_wait_s: float = 2.0  # HUBSPOT.md: 423 means wait at least 2 s


class HubSpotClient:
    """The sync's HubSpot API (see `biss_pipeline.domain.hubspot.api.HubSpotApi`) over the official SDK."""

    def __init__(
        self,
        access_token: str,
        host: str = HUBSPOT_API_HOST,
        *,
        tier: str = "professional",
        retry: RetrySettings | None = None,
        rate_limit_safety: float = 1.0,
        rate_limit_reserve: float = 0.05,
        request_timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        if tier not in TIER_LIMITS:
            raise ValueError(f"unknown HubSpot tier {tier!r}; expected one of {sorted(TIER_LIMITS)}")
        _quiet_sdk_debug_logging()
        self.stats = CallStats()
        self.retry = retry or RetrySettings()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._timeout = (min(10.0, request_timeout_s), request_timeout_s)
        self.limiter = RateLimiter(TIER_LIMITS[tier], safety=rate_limit_safety,
                                   reserve_share=rate_limit_reserve, sleep=self._limited_sleep)
        # Retry(total=0): one retry layer, this one (module docstring)
        sdk = HubSpot(
            access_token=access_token,
            host=host.rstrip("/"),
            retry=Retry(total=0, redirect=0, raise_on_status=False),
        )
        self._host = host.rstrip("/")
        self._token = access_token  # only ever sent to HubSpot, never logged
        self._raw = urllib3.PoolManager(retries=Retry(total=0, redirect=0, raise_on_status=False))
        crm = sdk.crm
        # The SDK builds a new API client (and connection pool) on every attribute access: keep one each.
        self._objects_batch = crm.objects.batch_api
        self._objects_search = crm.objects.search_api
        self._associations = crm.associations.v4.batch_api
        self._association_schema = crm.associations.v4.schema.definitions_api
        self._properties = crm.properties.core_api
        self._property_batch = crm.properties.batch_api
        self._groups = crm.properties.groups_api
        self._pipelines = crm.pipelines.pipelines_api
        self._stages = crm.pipelines.pipeline_stages_api

    def _limited_sleep(self, seconds: float) -> None:
        self.stats.limiter_wait_s += seconds
        self._sleep(seconds)

    # ------------------------------------------------------------------ the retry loop

    def _backoff(self, attempt: int) -> float:
        base = min(self.retry.backoff_max_s, self.retry.backoff_base_s * 2 ** (attempt - 1))
        return base * self._rng.uniform(0.5, 1.0)

    def _call(
        self,
        kind: str,
        method: Callable[..., Any],
        *args: Any,
        write: bool,
        verify: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run one SDK `*_with_http_info` call with limiter, retries and statistics; return its data."""
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire(search=kind == "objects.search")
            self.stats.calls_by_kind[kind] += 1
            if write:
                self.stats.write_calls += 1
            failure: ErrorInfo | None = None
            delay = 0.0
            fatal: type[HubSpotError] | None = None
            try:
                data, _status, headers = method(*args, _request_timeout=self._timeout, **kwargs)
            except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out (a write may have landed)
                self.stats.connection_errors += 1
                failure = ErrorInfo(status=0, category=f"CONNECTION {type(exc).__name__}")
                delay = self._backoff(attempt)
            except Exception as exc:
                status = getattr(exc, "status", None)
                if status is None or not hasattr(exc, "body"):
                    raise
                self.limiter.observe(getattr(exc, "headers", None))
                # the body may echo submitted values: keep only the code summary, drop the exception
                failure = error_info_from_body(int(status), getattr(exc, "body", None))
                if status == 429:
                    self.stats.rate_limited += 1
                    if failure.policy == "DAILY":
                        fatal = HubSpotDailyLimitError
                    delay = self.limiter.after_429(attempt, self._rng)
                elif status in RETRYABLE_STATUSES or status == 0:
                    self.stats.server_errors += 1
                    delay = self._backoff(attempt)
                elif status == 423:
                    self.stats.locked += 1
                    delay = max(self.retry.locked_wait_s, self._backoff(attempt))
                else:
                    fatal = HubSpotApiError
            else:
                self.limiter.observe(headers)
                return data
            # raised outside the except block, so no SDK exception (and body) rides along as context
            if fatal is not None:
                raise fatal(failure, kind)
            if attempt > self.retry.max_retries:
                self.stats.gave_up += 1
                raise HubSpotTransientError(failure, kind)
            if write and verify is not None:
                landed = verify()
                if landed is not None:
                    logger.info("HubSpot %s: the failed attempt had landed (%s)", kind, failure.summary)
                    return landed
            self.stats.retries += 1
            logger.warning(
                "HubSpot %s attempt %d: %s; retrying in %.2fs", kind, attempt, failure.summary, delay
            )
            self._sleep(delay)

    # ------------------------------------------------------------------ objects

    def batch_upsert(
        self, object_type: str, id_property: str, inputs: Sequence[UpsertInput]
    ) -> UpsertOutcome:
        if not inputs:
            return UpsertOutcome(())
        if len(inputs) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} inputs per batch")
        body = BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id_property=id_property,
                    id=item.key,
                    object_write_trace_id=item.key,
                    properties=dict(item.properties),
                )
                for item in inputs
            ]
        )
        data = self._call(
            "objects.batch_upsert", self._objects_batch.upsert_with_http_info, object_type, body, write=True
        )
        results = []
        for result in data.results or []:
            properties = result.properties or {}
            key = properties.get(id_property) or result.object_write_trace_id
            results.append(UpsertResult(key=str(key), hubspot_id=str(result.id), new=bool(result.new)))
        errors = []
        for error in getattr(data, "errors", None) or []:
            context = error.context or {}
            traces = context.get("objectWriteTraceId") or []
            errors.append(RowError(_row_error_info(error), str(traces[0]) if len(traces) == 1 else None))
        return UpsertOutcome(tuple(results), tuple(errors))

    def batch_read(
        self, object_type: str, id_property: str, keys: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        """Objects by a unique property's values, keyed by that value. `hs_object_id` means record
        ids: then `idProperty` is left out of the request (HubSpot answers 400 to
        `idProperty: "hs_object_id"`, the spec says to omit it) and the answer is keyed by record id."""
        if id_property == RECORD_ID:
            return self.read_by_ids(object_type, keys, properties)
        found: dict[str, dict[str, str | None]] = {}
        for start in range(0, len(keys), MAX_BATCH):
            body = BatchReadInputSimplePublicObjectId(
                id_property=id_property,
                inputs=[SimplePublicObjectId(id=k) for k in keys[start : start + MAX_BATCH]],
                properties=sorted({*properties, id_property}),
                properties_with_history=[],
            )
            data = self._call(
                "objects.batch_read", self._objects_batch.read_with_http_info, object_type, body, write=False
            )
            for result in data.results or []:
                values = dict(result.properties or {})
                values.setdefault("hs_object_id", str(result.id))  # the record id, whatever was asked
                if values.get(id_property):
                    found[str(values[id_property])] = values
        return found

    def read_by_ids(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        """Current (not archived) objects by HubSpot record id → their properties; 100 ids per call.
        Ids missing from the answer are gone (archived or deleted). The request carries no
        `idProperty`: HubSpot reads by record id when it is left out, and answers 400 to
        `idProperty: hs_object_id` (HUBSPOT.md)."""
        unique = sorted(set(ids), key=lambda i: (len(i), i))
        found: dict[str, dict[str, str | None]] = {}
        for start in range(0, len(unique), MAX_BATCH):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in unique[start : start + MAX_BATCH]],
                properties=sorted(set(properties)),
                properties_with_history=[],
            )
            data = self._call(
                "objects.batch_read", self._objects_batch.read_with_http_info, object_type, body, write=False
            )
            for result in data.results or []:
                found[str(result.id)] = dict(result.properties or {})
        return found

    def search(self, object_type: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """One search page (throttled below 5/s). The sync never searches to decide existence:
        search is eventually consistent (HUBSPOT.md)."""
        body = PublicObjectSearchRequest(**request)
        data = self._call(
            "objects.search", self._objects_search.do_search_with_http_info, object_type, body, write=False
        )
        return data.to_dict()

    # ------------------------------------------------------------------ associations (v4)

    def create_associations(
        self, from_type: str, to_type: str, type_id: int, pairs: Sequence[tuple[str, str]]
    ) -> AssociationOutcome:
        if not pairs:
            return AssociationOutcome(frozenset())
        spec = AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)
        body = BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=source), to=PublicObjectId(id=target), types=[spec]
                )
                for source, target in pairs
            ]
        )
        data = self._call(
            "associations.batch_create",
            self._associations.create_with_http_info,
            from_type,
            to_type,
            body,
            write=True,
        )
        created = frozenset((str(r.from_object_id), str(r.to_object_id)) for r in data.results or [])
        errors = []
        for error in getattr(data, "errors", None) or []:
            context = error.context or {}
            sources, targets = context.get("fromObjectId") or [], context.get("toObjectId") or []
            pair = (str(sources[0]), str(targets[0])) if len(sources) == 1 and len(targets) == 1 else None
            errors.append(AssociationError(_row_error_info(error), pair))
        return AssociationOutcome(created, tuple(errors))

    def archive_associations(self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]) -> None:
        by_source: dict[str, list[str]] = {}
        for source, target in pairs:
            by_source.setdefault(source, []).append(target)
        inputs = [
            PublicAssociationMultiArchive(
                _from=PublicObjectId(id=source), to=[PublicObjectId(id=t) for t in targets]
            )
            for source, targets in sorted(by_source.items())
        ]
        for start in range(0, len(inputs), MAX_BATCH):
            body = BatchInputPublicAssociationMultiArchive(inputs=inputs[start : start + MAX_BATCH])
            self._call(
                "associations.batch_archive",
                self._associations.archive_with_http_info,
                from_type,
                to_type,
                body,
                write=True,
            )

    # ------------------------------------------------------------------ properties

    def read_associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, set[str]]:
        """from id → associated to ids (v4 batch read). Objects without associations are absent
        (HubSpot reports them as per-input 207 errors, which here simply mean "none").

        A result with more associations than one answer holds carries `paging.next.after`; those ids are
        asked again with their `after` cursor until no result pages any more, so a contact with many
        deals is read whole."""
        found: dict[str, set[str]] = {}
        pending: list[tuple[str, str | None]] = [(i, None) for i in sorted(set(ids))]
        while pending:
            batch, pending = pending[:ASSOCIATION_READ_BATCH], pending[ASSOCIATION_READ_BATCH:]
            body = BatchInputPublicFetchAssociationsBatchRequest(inputs=[
                PublicFetchAssociationsBatchRequest(id=i, after=after) if after is not None
                else PublicFetchAssociationsBatchRequest(id=i)
                for i, after in batch])
            data = self._call("associations.batch_read", self._associations.get_page_with_http_info,
                              from_type, to_type, body, write=False)
            for result in data.results or []:
                source = str(result._from.id)
                targets = found.setdefault(source, set())
                targets.update(str(target.to_object_id) for target in result.to or [])
                after_next = _next_after(getattr(result, "paging", None))
                if after_next is not None:
                    pending.append((source, after_next))
        return found

    def association_labels(self, from_type: str, to_type: str) -> list[AssociationLabel]:
        """The association types HubSpot defines from one object type to another (v4 schema)."""
        data = self._call("associations.labels", self._association_schema.get_all_with_http_info,
                          from_type, to_type, write=False)
        return [AssociationLabel(str(r.category), int(r.type_id), r.label) for r in data.results or []]

    def token_scopes(self) -> frozenset[str] | None:
        """The scopes granted to the token (private-app token info); None when the portal cannot say
        (another token kind): the readiness report then relies on what each read answers."""
        try:
            data = self._call("oauth.token_info", self._token_info, write=False)
        except HubSpotApiError as exc:
            if exc.status in (400, 403, 404):
                return None
            raise
        return frozenset(str(scope) for scope in data.get("scopes") or [])

    def _token_info(self, _request_timeout: Any = None) -> tuple[dict[str, Any], int, Any]:
        response = self._raw.request(
            "POST",
            f"{self._host}/oauth/v2/private-apps/get/access-token-info",
            body=json.dumps({"tokenKey": self._token}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
            timeout=urllib3.Timeout(connect=self._timeout[0], read=self._timeout[1]),
        )
        if response.status >= 400:
            raise _RawHttpError(response.status, response.data, response.headers)
        return json.loads(response.data or b"{}"), response.status, response.headers

    def batch_update(self, object_type: str,
                     updates: Sequence[tuple[str, Mapping[str, str]]]) -> UpdateOutcome:
        """Update objects by HubSpot id, at most 100 per call; a 207's errors are returned, not raised.
        An update by id is idempotent, so repeating it after a lost response is harmless."""
        updated: list[str] = []
        errors: list[ErrorInfo] = []
        failed: list[str] = []
        for start in range(0, len(updates), MAX_BATCH):
            body = BatchInputSimplePublicObjectBatchInput(inputs=[
                SimplePublicObjectBatchInput(id=i, properties=dict(p))
                for i, p in updates[start:start + MAX_BATCH]])
            data = self._call("objects.batch_update", self._objects_batch.update_with_http_info,
                              object_type, body, write=True)
            updated.extend(str(r.id) for r in data.results or [])
            for error in getattr(data, "errors", None) or []:
                context = error.context or {}
                errors.append(error_info(0, error.category, error.message, context,
                                         getattr(error, "sub_category", None)))
                failed.extend(str(i) for i in context.get("ids") or [])
        return UpdateOutcome(tuple(updated), tuple(errors), tuple(failed))

    def list_property_groups(self, object_type: str) -> set[str]:
        data = self._call(
            "properties.groups_list", self._groups.get_all_with_http_info, object_type, write=False
        )
        return {group.name for group in data.results or []}

    def create_property_group(self, object_type: str, name: str, label: str) -> None:
        self._call(
            "properties.group_create",
            self._groups.create_with_http_info,
            object_type,
            PropertyGroupCreate(name=name, label=label, display_order=-1),
            write=True,
        )

    def list_properties(self, object_type: str) -> dict[str, PropertyInfo]:
        data = self._call(
            "properties.list", self._properties.get_all_with_http_info, object_type, write=False
        )
        return {
            p.name: PropertyInfo(p.name, p.type, bool(p.has_unique_value), p.group_name,
                                 tuple(str(o.value) for o in p.options or []))
            for p in data.results or []
            if not p.archived
        }

    def create_properties(self, object_type: str, definitions: Sequence[PropertyDef]) -> list[ErrorInfo]:
        errors: list[ErrorInfo] = []
        for start in range(0, len(definitions), MAX_BATCH):
            body = BatchInputPropertyCreate(
                inputs=[
                    PropertyCreate(
                        name=d.name,
                        label=d.label,
                        type=d.type,
                        field_type=d.field_type,
                        group_name=PROPERTY_GROUP,
                        has_unique_value=d.unique,
                        description=d.description,
                        form_field=False,
                    )
                    for d in definitions[start : start + MAX_BATCH]
                ]
            )
            data = self._call(
                "properties.batch_create",
                self._property_batch.create_with_http_info,
                object_type,
                body,
                write=True,
            )
            errors.extend(_row_error_info(e) for e in getattr(data, "errors", None) or [])
        return errors

    # ------------------------------------------------------------------ pipelines

    def list_pipelines(self) -> list[PipelineInfo]:
        data = self._call("pipelines.list", self._pipelines.get_all_with_http_info, "deals", write=False)
        return [_pipeline_info(p) for p in data.results or [] if not p.archived]

    def create_pipeline(
        self, label: str, display_order: int, stages: Sequence[tuple[str, int, Mapping[str, str]]]
    ) -> PipelineInfo:
        body = PipelineInput(
            label=label,
            display_order=display_order,
            stages=[
                PipelineStageInput(label=stage_label, display_order=order, metadata=dict(metadata))
                for stage_label, order, metadata in stages
            ],
        )

        def landed() -> PipelineInfo | None:
            return next((p for p in self.list_pipelines() if p.label == label), None)

        result = self._call(
            "pipelines.create",
            self._pipelines.create_with_http_info,
            "deals",
            body,
            write=True,
            verify=landed,
        )
        return result if isinstance(result, PipelineInfo) else _pipeline_info(result)

    def create_stage(
        self, pipeline_id: str, label: str, display_order: int, metadata: Mapping[str, str]
    ) -> StageInfo:
        body = PipelineStageInput(label=label, display_order=display_order, metadata=dict(metadata))

        def landed() -> StageInfo | None:
            pipeline = next((p for p in self.list_pipelines() if p.id == pipeline_id), None)
            return next((s for s in pipeline.stages if s.label == label), None) if pipeline else None

        result = self._call(
            "pipelines.stage_create",
            self._stages.create_with_http_info,
            "deals",
            pipeline_id,
            body,
            write=True,
            verify=landed,
        )
        return result if isinstance(result, StageInfo) else _stage_info(result)

    def update_stage(self, pipeline_id: str, stage_id: str, metadata: Mapping[str, str]) -> None:
        self._call(
            "pipelines.stage_update",
            self._stages.update_with_http_info,
            "deals",
            pipeline_id,
            stage_id,
            PipelineStagePatchInput(metadata=dict(metadata)),
            write=True,
        )


class _RawHttpError(Exception):
    """An error answer of a call the SDK has no API for, shaped like the SDK's `ApiException`."""

    def __init__(self, status: int, body: bytes, headers: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers


def _next_after(paging: Any) -> str | None:
    """The `after` cursor of a v4 result's `paging.next`, whatever shape the SDK parsed it into."""
    if paging is None:
        return None
    nxt = paging.get("next") if isinstance(paging, dict) else getattr(paging, "next", None)
    if nxt is None:
        return None
    after = nxt.get("after") if isinstance(nxt, dict) else getattr(nxt, "after", None)
    return str(after) if after else None


def _row_error_info(error: Any) -> ErrorInfo:
    category = getattr(error, "category", None) or ""
    return error_info(
        _CATEGORY_STATUS.get(category, 0),
        category,
        getattr(error, "message", None),
        getattr(error, "context", None),
        getattr(error, "sub_category", None),
    )


def _stage_info(stage: Any) -> StageInfo:
    return StageInfo(
        str(stage.id), str(stage.label), int(stage.display_order or 0), dict(stage.metadata or {})
    )


def _pipeline_info(pipeline: Any) -> PipelineInfo:
    stages = sorted(
        (s for s in pipeline.stages or [] if not s.archived), key=lambda s: (s.display_order, s.id)
    )
    return PipelineInfo(str(pipeline.id), str(pipeline.label), tuple(_stage_info(s) for s in stages))
