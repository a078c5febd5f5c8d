"""Schedules: the incremental sync of recent days and a nightly re-sync of a trailing window.

Both launch a practice's pipeline job (extraction → staging → deals → HubSpot) as one run over
a date range (range tags, single-run backfill policy). Windows are computed from the tick's
scheduled time, so a tick evaluated twice asks for the same window, and the run key makes the
second request a no-op.

A practice whose own mapping rows are invalid (`MappingResource.load_state().disabled`) is skipped with
the row's error (tab, row, column) as the tick's message; the other practices' schedules go on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.keys import (
    BOOKING_LOOKAHEAD_DAYS,
    PRACTICE_TAG,
    PRACTICE_TIMEZONE,
    SYNC_KIND_TAG,
    window_tags,
)
from biss_pipeline.resources.mapping import MappingResource


@dataclass(frozen=True)
class SyncWindows:
    """Crons and windows (days relative to the tick's date) of the two schedules.

    Windows by purpose: an intraday tick re-reads yesterday to two weeks ahead, where the day's changes
    happen (visits today, bookings for the coming days), so its cost stays small and fixed; the
    nightly run takes the long window, the trailing fortnight (late edits, billing) up to the booking
    look-ahead. Every partition of a ranged run costs Dagster bookkeeping for every asset of the job
    (a 62-day tick wrote 1,447 events, a 16-day one 435; docs/performance.md)."""

    incremental_cron: str = "*/30 7-19 * * 1-6"
    incremental_days_back: int = 1
    incremental_days_ahead: int = 14
    nightly_cron: str = "15 2 * * *"
    # The freshness policy of every pipeline asset: materialized between the nightly run's start (the
    # lower bound before the deadline) and the deadline, Berlin time. A nightly run of a practice takes
    # minutes (docs/performance.md), so two hours leave room for a queue and a retried step.
    nightly_deadline_cron: str = "15 4 * * *"
    nightly_lower_bound: dt.timedelta = dt.timedelta(hours=2)
    nightly_days_back: int = 14
    # bookings ahead of today change too ("nothing booked ahead" decides lost deals)
    nightly_days_ahead: int = BOOKING_LOOKAHEAD_DAYS


def sync_window(tick: dt.datetime, days_back: int, days_ahead: int,
                earliest: dt.date) -> tuple[dt.date, dt.date]:
    today = tick.date()
    return max(earliest, today - dt.timedelta(days=days_back)), today + dt.timedelta(days=days_ahead)


def build_practice_schedules(practice: PracticeConfig, job_name: str,
                             windows: SyncWindows) -> list[ScheduleDefinition]:
    pid = practice.practice_id

    def request(context: ScheduleEvaluationContext, mapping: MappingResource, kind: str, days_back: int,
                days_ahead: int) -> RunRequest | SkipReason:
        try:
            disabled = mapping.load_state().disabled.get(pid)
        except Exception:  # unreadable and no last good mapping: the run itself will say why
            disabled = None
        if disabled is not None:
            return SkipReason(f"{pid} is disabled by its mapping rows, no run requested: {disabled}")
        tick = context.scheduled_execution_time
        first, last = sync_window(tick, days_back, days_ahead, practice.history_start)
        return RunRequest(
            run_key=f"{pid}-{kind}-{tick.isoformat()}",
            tags={**window_tags(first, last), PRACTICE_TAG: pid, SYNC_KIND_TAG: kind},
        )

    @schedule(name=f"{pid}_incremental_sync", job_name=job_name, cron_schedule=windows.incremental_cron,
              execution_timezone=PRACTICE_TIMEZONE, default_status=DefaultScheduleStatus.STOPPED,
              description=f"{practice.name}: sync the last {windows.incremental_days_back} day(s) and "
                          f"{windows.incremental_days_ahead} days of bookings ahead.")
    def incremental(context: ScheduleEvaluationContext, mapping: MappingResource) -> RunRequest | SkipReason:
        return request(context, mapping, "incremental", windows.incremental_days_back,
                       windows.incremental_days_ahead)

    @schedule(name=f"{pid}_nightly_resync", job_name=job_name, cron_schedule=windows.nightly_cron,
              execution_timezone=PRACTICE_TIMEZONE, default_status=DefaultScheduleStatus.STOPPED,
              description=f"{practice.name}: re-sync the trailing {windows.nightly_days_back} days (late "
                          f"edits in Ivoris) to {windows.nightly_days_ahead} days of bookings ahead, and "
                          "verify HubSpot in full.")
    def nightly(context: ScheduleEvaluationContext, mapping: MappingResource) -> RunRequest | SkipReason:
        return request(context, mapping, "nightly", windows.nightly_days_back, windows.nightly_days_ahead)

    return [incremental, nightly]
