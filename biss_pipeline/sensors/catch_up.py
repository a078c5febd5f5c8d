"""Catch-up: windows whose runs failed re-run automatically once the cause of the failure clears.

One sensor per practice (`<practice>_catch_up`). Each tick it

1. reads the failed runs of the last `lookback_days` that belong to the practice: runs tagged
   `practice=<id>` (`extract_<id>`, `pipeline_<id>`, scheduled or manual, its own catch-up runs) and
   backfills launched from the UI over the practice's assets (no practice tag, the asset selection
   says whose they are);
2. takes each run's date window from its tags (range tags or a single `dagster/partition`) and drops
   the days a later successful run already covered;
3. tells why each run failed, from its events:
   - `ivoris`: Ivoris was unavailable (`IvorisUnavailableError`): retried once the site answers;
   - `hubspot`: a HubSpot step failed (outage, daily cap, rate limits beyond the retries): retried
     once a cheap HubSpot call succeeds again (the daily cap answers 429 until it resets);
   - `crash`: the run failed outside every step (its worker was killed, or its pod): retried;
   - anything else (a bug, bad data) is left alone: a re-run would fail the same way;
4. waits `backoff_base_s · 2^(n-1)` (capped) after the n-th failed catch-up of the same days, and
   gives up, saying so, after `max_catch_up_attempts` (the windows stay failed and visible);
5. requests ONE run of `pipeline_<id>` over the span of the days whose causes cleared.

Steady state costs nothing outside Dagster's own run storage: the probes (one Ivoris `GET
/practices`, one HubSpot pipelines read) are made only while a failed window waits, so the sensor
can tick every `minimum_interval_seconds` (30 s) and HubSpot matches again within a minute of the
system answering plus the run's own time.

The run key is derived from the ids of the failed runs it replaces, and the cursor remembers the last
key, so the same set of failures is requested once. The cursor is JSON: `{"run_key": <last requested
key or null>, "down": [<systems seen down on the last tick>]}`.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRecord,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from biss_pipeline.domain.hubspot.api import HubSpotError
from biss_pipeline.domain.ivoris.client import IvorisError
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.keys import (
    CATCH_UP_RUNS_TAG,
    CATCH_UP_TAG,
    PARTITION_TAG,
    PRACTICE_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    window_tags,
)
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.ivoris import IvorisResource

OUTAGE_ERRORS: frozenset[str] = frozenset({"IvorisUnavailableError"})
HUBSPOT_ERRORS: frozenset[str] = frozenset({"HubSpotTransientError", "HubSpotDailyLimitError", "SyncAborted",
                                            "PortalSetupError"})
# Steps whose failure means HubSpot: the portal setup and the practice syncs (asset keys hubspot/...).
HUBSPOT_STEP_PREFIX = "hubspot__"
IVORIS, HUBSPOT, CRASH, OTHER = "ivoris", "hubspot", "crash", "other"
RETRIED_CAUSES = (IVORIS, HUBSPOT, CRASH)
IN_FLIGHT = (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED)


@dataclass(frozen=True)
class CatchUpSettings:
    """Knobs of the catch-up sensors; the defaults suit a site that is down for minutes to hours."""

    # Failed runs older than this are left to a person (the UI shows them as failed).
    lookback_days: int = 7
    max_failed_runs: int = 200
    # Failed catch-up runs still uncovered: at this many the sensor stops re-requesting (a flapping site).
    max_catch_up_attempts: int = 5
    # Wait after the n-th failed catch-up of the same days: base · 2^(n-1), at most backoff_max_s.
    backoff_base_s: float = 60.0
    backoff_max_s: float = 1800.0
    probe_timeout_s: float = 10.0
    minimum_interval_seconds: int = 30
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED
    outage_errors: frozenset[str] = OUTAGE_ERRORS


@dataclass(frozen=True)
class FailedWindow:
    """A failed run of the practice and the days of its window no later run has covered."""

    run_id: str
    job_name: str
    days: frozenset[dt.date]
    catch_up: bool
    cause: str = IVORIS
    failed_at: float = 0.0  # the run's end (or creation) time, a timestamp


@dataclass
class CatchUpPlan:
    waiting: list[FailedWindow] = field(default_factory=list)  # outage failures, days still missing
    in_flight: int = 0  # failures whose missing days a queued or running run already covers
    covered: int = 0  # failures a later successful run made good
    not_outage: int = 0  # failed for a reason a re-run would not cure
    no_window: int = 0  # no date window in the tags (e.g. an unpartitioned selection)

    @property
    def days(self) -> list[dt.date]:
        return sorted(set().union(*(w.days for w in self.waiting)))

    @property
    def catch_up_failures(self) -> int:
        return sum(w.catch_up for w in self.waiting)

    @property
    def causes(self) -> set[str]:
        return {w.cause for w in self.waiting}

    def next_attempt_at(self, settings: CatchUpSettings) -> float:
        """When the backoff after the latest failed catch-up run allows the next request."""
        catch_ups = [w.failed_at for w in self.waiting if w.catch_up]
        if not catch_ups:
            return 0.0
        delay = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** (len(catch_ups) - 1))
        return max(catch_ups) + delay

    def run_key(self, practice_id: str) -> str:
        digest = hashlib.sha256(",".join(sorted(w.run_id for w in self.waiting)).encode()).hexdigest()
        return f"catch-up-{practice_id}-{digest[:16]}"

    def describe(self) -> str:
        parts = [f"{self.covered} made good by a later run" if self.covered else "",
                 f"{self.in_flight} covered by a queued or running run" if self.in_flight else "",
                 f"{self.not_outage} failed for a reason other than an Ivoris outage, a HubSpot "
                 "failure or a crash (not re-run; see the run's logs)" if self.not_outage else "",
                 f"{self.no_window} without a date window" if self.no_window else ""]
        return "; ".join(p for p in parts if p)


def run_window(tags: Mapping[str, str]) -> tuple[dt.date, dt.date] | None:
    """The inclusive date window a run covered, from its range tags or its single partition tag."""
    try:
        if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
            first = dt.date.fromisoformat(tags[RANGE_START_TAG])
            last = dt.date.fromisoformat(tags[RANGE_END_TAG])
        elif PARTITION_TAG in tags:
            first = last = dt.date.fromisoformat(tags[PARTITION_TAG])
        else:
            return None
    except ValueError:
        return None  # not a daily partition key: not one of this project's windows
    return (first, last) if first <= last else None


def window_days(window: tuple[dt.date, dt.date]) -> frozenset[dt.date]:
    first, last = window
    return frozenset(first + dt.timedelta(days=n) for n in range((last - first).days + 1))


def _error_chain(error: object) -> Iterator[object]:
    while error is not None:
        yield error
        # Dagster wraps the asset's exception (step execution error, retry policy): the cause holds it.
        error = getattr(error, "cause", None) or getattr(error, "context", None)


def failure_cause(instance: DagsterInstance, run_id: str,
                  outage_errors: frozenset[str] = OUTAGE_ERRORS) -> str:
    """Why the run failed: `ivoris`, `hubspot`, `crash` or `other` (see the module docstring)."""
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}).records
    names: set[str] = set()
    failed_steps: set[str] = set()
    run_failed = False
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE:
            failed_steps.add(event.step_key or "")
        else:
            run_failed = True
        data = event.event_specific_data
        names.update(getattr(e, "cls_name", "") for e in _error_chain(getattr(data, "error", None)))
    if names & outage_errors:
        return IVORIS
    if names & HUBSPOT_ERRORS or any(step.startswith(HUBSPOT_STEP_PREFIX) for step in failed_steps):
        return HUBSPOT
    if run_failed and not failed_steps:
        return CRASH
    return OTHER


def belongs_to(run: DagsterRun, practice_id: str) -> bool:
    """A run of the practice: tagged with it, or (a UI backfill) selecting only its assets."""
    if run.tags.get(PRACTICE_TAG) == practice_id:
        return True
    keys = run.asset_selection or set()
    return bool(keys) and all(
        key.path[0] == practice_id or key.path[:2] == ["hubspot", practice_id] for key in keys)


def plan_catch_up(instance: DagsterInstance, practice_id: str, target_job: str, settings: CatchUpSettings,
                  now: dt.datetime) -> CatchUpPlan:
    """Which failed windows of the practice still need a run, and what became of the others."""
    since = now - dt.timedelta(days=settings.lookback_days)
    failed = [record for record in instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.FAILURE], created_after=since), limit=settings.max_failed_runs)
        if belongs_to(record.dagster_run, practice_id)]
    plan = CatchUpPlan()
    if not failed:
        return plan
    oldest = min(record.create_timestamp for record in failed)
    later = [record for record in instance.get_run_records(RunsFilter(
        statuses=[DagsterRunStatus.SUCCESS, *IN_FLIGHT], created_after=oldest))
        if belongs_to(record.dagster_run, practice_id)]

    def days_after(record: RunRecord, statuses: Iterable[DagsterRunStatus]) -> set[dt.date]:
        # A later run of the pipeline job covers any failure; another job covers only failed runs of
        # the same job (an extraction run does not rebuild deals or sync HubSpot).
        jobs = {target_job, record.dagster_run.job_name}
        days: set[dt.date] = set()
        for other in later:
            run = other.dagster_run
            if (other.create_timestamp > record.create_timestamp and run.status in statuses
                    and run.job_name in jobs and (window := run_window(run.tags))):
                days |= window_days(window)
        return days

    for record in sorted(failed, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        window = run_window(run.tags)
        if window is None:
            plan.no_window += 1
            continue
        missing = window_days(window) - days_after(record, [DagsterRunStatus.SUCCESS])
        cause = failure_cause(instance, run.run_id, settings.outage_errors) if missing else OTHER
        if not missing:
            plan.covered += 1
        elif cause not in RETRIED_CAUSES:
            plan.not_outage += 1
        elif missing <= days_after(record, IN_FLIGHT):
            plan.in_flight += 1
        else:
            ended = record.end_time or record.create_timestamp.timestamp()
            plan.waiting.append(FailedWindow(run.run_id, run.job_name, frozenset(missing),
                                             run.tags.get(CATCH_UP_TAG) == "true", cause, ended))
    return plan


def probe_site(ivoris: IvorisResource, timeout_s: float) -> str | None:
    """None if the site answers `GET /practices`; else why not (no payload, no key in the text).
    The probe is the resource's own client (its routes, TLS settings and key), with one attempt:
    the sensor asks again next tick, retrying here would only hold the daemon."""
    try:
        with ivoris.client(max_attempts=1, max_concurrency=1, timeout_s=timeout_s) as client:
            client.practices()
    except IvorisError as exc:
        return f"{type(exc).__name__}: {exc}"
    except httpx.HTTPError as exc:  # e.g. an invalid URL: the client only converts transport errors
        return type(exc).__name__
    return None


def probe_hubspot(hubspot: HubSpotResource) -> str | None:
    """None if HubSpot answers a cheap read (the deal pipelines); else why not. One attempt: a daily
    cap answers 429 until it resets, an outage 5xx or no connection."""
    try:
        hubspot.get_client(max_retries=0).list_pipelines()
    except HubSpotError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _load_cursor(cursor: str | None) -> dict[str, Any]:
    try:
        value = json.loads(cursor) if cursor else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def _clock(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%H:%M:%S UTC")


def _span(days: Sequence[dt.date]) -> str:
    return f"{days[0].isoformat()}..{days[-1].isoformat()}" if days else "-"


def build_catch_up_sensor(practice: PracticeConfig, job_name: str,
                          settings: CatchUpSettings | None = None) -> SensorDefinition:
    settings = settings or CatchUpSettings()
    pid = practice.practice_id

    @sensor(name=f"{pid}_catch_up", job_name=job_name, default_status=settings.default_status,
            minimum_interval_seconds=settings.minimum_interval_seconds,
            required_resource_keys={practice.resource_key, "hubspot"},
            description=f"{practice.name}: re-run the date windows whose runs failed on an Ivoris or "
                        f"HubSpot outage or a crash, once the cause clears (one {job_name} run over "
                        "their span; backoff, then a visible give-up).")
    def catch_up(context: SensorEvaluationContext) -> SensorResult:
        cursor = _load_cursor(context.cursor)
        now = dt.datetime.now(dt.UTC)
        plan = plan_catch_up(context.instance, pid, job_name, settings, now)
        others = f" ({plan.describe()})" if plan.describe() else ""
        if not plan.waiting:
            return SensorResult(
                skip_reason=SkipReason(f"{pid}: no failed window waiting for a catch-up{others}"))
        # Days before the practice's history start (moved later in the config since) have no partition.
        days = [day for day in plan.days if day >= practice.history_start]
        if not days:
            return SensorResult(skip_reason=SkipReason(
                f"{pid}: the failed windows lie before the practice's history start "
                f"{practice.history_start}; nothing to re-run"))
        causes = ", ".join(sorted(plan.causes))
        waiting = f"{len(plan.waiting)} failed run(s) over {_span(days)} waiting ({causes}){others}"
        if plan.catch_up_failures >= settings.max_catch_up_attempts:
            context.log.warning(f"{pid}: catch-up gave up: {waiting}")
            return SensorResult(skip_reason=SkipReason(
                f"{pid}: gave up: {waiting}; {plan.catch_up_failures} catch-up runs failed on outages "
                "already, so this sensor stops re-requesting: check the cause, then re-execute from "
                "the UI"))
        run_key = plan.run_key(pid)
        if cursor.get("run_key") == run_key:
            return SensorResult(skip_reason=SkipReason(
                f"{pid}: {waiting}; a catch-up run for exactly these failures was requested already "
                f"(run key {run_key}); it did not make them good, see its logs"))
        retry_at = plan.next_attempt_at(settings)
        if retry_at > now.timestamp():
            return SensorResult(skip_reason=SkipReason(
                f"{pid}: {waiting}; backing off after {plan.catch_up_failures} failed catch-up run(s), "
                f"next attempt after {_clock(retry_at)}"))
        down: dict[str, str] = {}
        if IVORIS in plan.causes:
            problem = probe_site(getattr(context.resources, practice.resource_key), settings.probe_timeout_s)
            if problem is not None:
                down["Ivoris"] = problem
        if HUBSPOT in plan.causes:
            problem = probe_hubspot(context.resources.hubspot)
            if problem is not None:
                down["HubSpot"] = problem
        if down:
            unavailable = "; ".join(f"{system} still unavailable ({why})" for system, why in down.items())
            return SensorResult(skip_reason=SkipReason(f"{pid}: {waiting}; {unavailable}"),
                                cursor=json.dumps({**cursor, "down": sorted(down)}))
        for system in cursor.get("down") or []:
            context.log.info(f"{system} answers again for {pid}")
        context.log.info(f"{pid}: requesting catch-up run {_span(days)} for {len(plan.waiting)} "
                         f"failed run(s) ({causes}){others}")
        # One run over the span: a gap between failed windows is re-run too, which is idempotent and
        # cheaper than a run per window (each run pays the deals and HubSpot steps once).
        request = RunRequest(run_key=run_key, tags={
            **window_tags(days[0], days[-1]), PRACTICE_TAG: pid, CATCH_UP_TAG: "true",
            CATCH_UP_RUNS_TAG: str(len(plan.waiting))})
        return SensorResult(run_requests=[request], cursor=json.dumps({"run_key": run_key, "down": []}))

    return catch_up


def build_catch_up_sensors(practices: Sequence[PracticeConfig], job_name_for: Callable[[PracticeConfig], str],
                           settings: CatchUpSettings | None = None) -> list[SensorDefinition]:
    """One catch-up sensor per practice; `job_name_for(practice)` names the job it requests (the
    practice's pipeline job)."""
    return [build_catch_up_sensor(practice, job_name_for(practice), settings) for practice in practices]
