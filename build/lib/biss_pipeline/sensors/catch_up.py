"""Catch-up after an Ivoris outage: windows that failed while a site was down re-run once it answers.

One sensor per practice (`<practice>_catch_up`). Each tick it

1. reads the practice's failed runs of the last `lookback_days` (run tag `practice=<id>`, so both
   `extract_<id>` and `pipeline_<id>` runs, scheduled or manual, and its own earlier catch-up runs);
2. takes each run's date window from its tags (the range tags the schedules set, or a single
   `dagster/partition`) and drops the days a later successful run already covered;
3. keeps only runs that failed because Ivoris was unavailable (`IvorisUnavailableError` in a step
   failure): a run that failed on a bug would fail again, and re-running it on every tick is noise;
4. if days remain and no later run is already queued or running for them, probes the site with one
   cheap request (`GET /practices`, one attempt, short timeout);
5. when the site answers, requests ONE run of `pipeline_<id>` over the span of the remaining days.

The run key is derived from the ids of the failed runs it replaces, and the cursor remembers the last
key, so the same set of failures is re-requested once. If the catch-up run fails on another outage, it
is itself a failed run: the next tick after the site answers again requests a new one over the same
days. After `max_catch_up_attempts` such failed catch-up runs the sensor stops asking and says so;
a person then looks at the site (the windows stay failed and visible in the UI).

The cursor is JSON: `{"run_key": <last requested key or null>, "site": "up" | "down" | null}`;
`site` only serves the log line "answers again" when a down site comes back.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from dagster import (
    DagsterEventType,
    DagsterInstance,
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
from biss_pipeline.resources.ivoris import IvorisResource

OUTAGE_ERRORS: frozenset[str] = frozenset({"IvorisUnavailableError"})
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
    probe_timeout_s: float = 10.0
    minimum_interval_seconds: int = 300
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED
    outage_errors: frozenset[str] = OUTAGE_ERRORS


@dataclass(frozen=True)
class FailedWindow:
    """A failed run of the practice and the days of its window no later run has covered."""

    run_id: str
    job_name: str
    days: frozenset[dt.date]
    catch_up: bool


@dataclass
class CatchUpPlan:
    waiting: list[FailedWindow] = field(default_factory=list)  # outage failures, days still missing
    in_flight: int = 0  # failures whose missing days a queued or running run already covers
    covered: int = 0  # failures a later successful run made good
    not_outage: int = 0  # failed for another reason: re-running would not help
    no_window: int = 0  # no date window in the tags (e.g. an unpartitioned selection)

    @property
    def days(self) -> list[dt.date]:
        return sorted(set().union(*(w.days for w in self.waiting)))

    @property
    def catch_up_failures(self) -> int:
        return sum(w.catch_up for w in self.waiting)

    def run_key(self, practice_id: str) -> str:
        digest = hashlib.sha256(",".join(sorted(w.run_id for w in self.waiting)).encode()).hexdigest()
        return f"catch-up-{practice_id}-{digest[:16]}"

    def describe(self) -> str:
        parts = [f"{self.covered} made good by a later run" if self.covered else "",
                 f"{self.in_flight} covered by a queued or running run" if self.in_flight else "",
                 f"{self.not_outage} failed for a reason other than an Ivoris outage (not re-run; "
                 "see the run's logs)" if self.not_outage else "",
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


def failed_on(instance: DagsterInstance, run_id: str) -> set[str]:
    """Class names of every error in the run's step and run failures (their cause chains included)."""
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}).records
    names: set[str] = set()
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data if event else None
        names.update(getattr(e, "cls_name", "") for e in _error_chain(getattr(data, "error", None)))
    return names


def plan_catch_up(instance: DagsterInstance, practice_id: str, target_job: str, settings: CatchUpSettings,
                  now: dt.datetime) -> CatchUpPlan:
    """Which failed windows of the practice still need a run, and what became of the others."""
    failed = instance.get_run_records(
        RunsFilter(tags={PRACTICE_TAG: practice_id}, statuses=[DagsterRunStatus.FAILURE],
                   created_after=now - dt.timedelta(days=settings.lookback_days)),
        limit=settings.max_failed_runs)
    plan = CatchUpPlan()
    if not failed:
        return plan
    oldest = min(record.create_timestamp for record in failed)
    later = instance.get_run_records(RunsFilter(tags={PRACTICE_TAG: practice_id},
                                                statuses=[DagsterRunStatus.SUCCESS, *IN_FLIGHT],
                                                created_after=oldest))

    def days_after(record: RunRecord, statuses: Iterable[DagsterRunStatus]) -> set[dt.date]:
        # A later run of the pipeline job covers any failure; an extraction run covers only failed
        # extraction runs (it does not rebuild deals or sync HubSpot).
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
        if not missing:
            plan.covered += 1
        elif not failed_on(instance, run.run_id) & settings.outage_errors:
            plan.not_outage += 1
        elif missing <= days_after(record, IN_FLIGHT):
            plan.in_flight += 1
        else:
            plan.waiting.append(FailedWindow(run.run_id, run.job_name, frozenset(missing),
                                             run.tags.get(CATCH_UP_TAG) == "true"))
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


def _load_cursor(cursor: str | None) -> dict[str, str | None]:
    try:
        value = json.loads(cursor) if cursor else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def _span(days: Sequence[dt.date]) -> str:
    return f"{days[0].isoformat()}..{days[-1].isoformat()}" if days else "-"


def build_catch_up_sensor(practice: PracticeConfig, job_name: str,
                          settings: CatchUpSettings | None = None) -> SensorDefinition:
    settings = settings or CatchUpSettings()
    pid = practice.practice_id

    @sensor(name=f"{pid}_catch_up", job_name=job_name, default_status=settings.default_status,
            minimum_interval_seconds=settings.minimum_interval_seconds,
            required_resource_keys={practice.resource_key},
            description=f"{practice.name}: once Ivoris answers again, re-run the date windows whose runs "
                        f"failed while it was down (one {job_name} run over their span).")
    def catch_up(context: SensorEvaluationContext) -> SensorResult:
        cursor = _load_cursor(context.cursor)
        plan = plan_catch_up(context.instance, pid, job_name, settings, dt.datetime.now(dt.UTC))
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
        waiting = f"{len(plan.waiting)} failed run(s) over {_span(days)} waiting{others}"
        if plan.catch_up_failures >= settings.max_catch_up_attempts:
            return SensorResult(skip_reason=SkipReason(
                f"{pid}: {waiting}; {plan.catch_up_failures} catch-up runs failed on outages already, "
                "so this sensor stops re-requesting: check the site, then re-execute from the UI"))
        run_key = plan.run_key(pid)
        if cursor.get("run_key") == run_key:
            return SensorResult(skip_reason=SkipReason(
                f"{pid}: {waiting}; a catch-up run for exactly these failures was requested already "
                f"(run key {run_key}); it did not make them good, see its logs"))
        problem = probe_site(getattr(context.resources, practice.resource_key), settings.probe_timeout_s)
        if problem is not None:
            return SensorResult(
                skip_reason=SkipReason(f"{pid}: {waiting}; Ivoris still unavailable ({problem})"),
                cursor=json.dumps({**cursor, "site": "down"}))
        if cursor.get("site") == "down":
            context.log.info(f"Ivoris site {pid} answers again")
        context.log.info(f"{pid}: requesting catch-up run {_span(days)} for {len(plan.waiting)} "
                         f"failed run(s){others}")
        # One run over the span: a gap between failed windows is re-run too, which is idempotent and
        # cheaper than a run per window (each run pays the deals and HubSpot steps once).
        request = RunRequest(run_key=run_key, tags={
            **window_tags(days[0], days[-1]), PRACTICE_TAG: pid, CATCH_UP_TAG: "true",
            CATCH_UP_RUNS_TAG: str(len(plan.waiting))})
        return SensorResult(run_requests=[request], cursor=json.dumps({"run_key": run_key, "site": "up"}))

    return catch_up


def build_catch_up_sensors(practices: Sequence[PracticeConfig], job_name_for: Callable[[PracticeConfig], str],
                           settings: CatchUpSettings | None = None) -> list[SensorDefinition]:
    """One catch-up sensor per practice; `job_name_for(practice)` names the job it requests (the
    practice's pipeline job)."""
    return [build_catch_up_sensor(practice, job_name_for(practice), settings) for practice in practices]
