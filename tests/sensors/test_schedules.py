from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import build_schedule_context

from biss_pipeline.domain.mapping.practices import parse_practices
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.sensors.schedules import SyncWindows, build_practice_schedules

[PRACTICE] = parse_practices([{"id": "mb", "name": "Magdeburg", "key_prefix": "MB_",
                               "ivoris_base_url": "http://127.0.0.1:1/sites/mb", "api_key_env": "K",
                               "history_start": "2026-03-01"}])
BERLIN = ZoneInfo("Europe/Berlin")


def evaluate(schedule, when: dt.datetime):
    # the shipped mapping: every practice in it is valid, so no schedule skips
    return schedule.evaluate_tick(build_schedule_context(
        scheduled_execution_time=when, resources={"mapping": MappingResource()})).run_requests


def test_incremental_and_nightly_windows_come_from_the_tick() -> None:
    windows = SyncWindows(incremental_days_ahead=30)
    incremental, nightly = build_practice_schedules(PRACTICE, "sync_mb", windows)
    tick = dt.datetime(2026, 6, 30, 10, 30, tzinfo=BERLIN)
    [run] = evaluate(incremental, tick)
    assert run.tags["dagster/asset_partition_range_start"] == "2026-06-29"
    assert run.tags["dagster/asset_partition_range_end"] == "2026-07-30"
    [night] = evaluate(nightly, tick)
    assert night.tags["dagster/asset_partition_range_start"] == "2026-06-16"
    assert night.tags["dagster/asset_partition_range_end"] == "2026-08-29"  # the long window ahead
    assert run.run_key != night.run_key
    assert evaluate(incremental, tick)[0].run_key == run.run_key  # same tick, same request


def test_windows_never_start_before_the_practice_history() -> None:
    _, nightly = build_practice_schedules(PRACTICE, "sync_mb", SyncWindows(nightly_days_back=30))
    [run] = evaluate(nightly, dt.datetime(2026, 3, 5, 2, 15, tzinfo=BERLIN))
    assert run.tags["dagster/asset_partition_range_start"] == "2026-03-01"


def test_crons_are_configurable() -> None:
    incremental, nightly = build_practice_schedules(
        PRACTICE, "sync_mb", SyncWindows(incremental_cron="0 * * * *", nightly_cron="0 3 * * *"))
    assert incremental.cron_schedule == "0 * * * *" and nightly.cron_schedule == "0 3 * * *"
    assert incremental.execution_timezone == "Europe/Berlin"


def test_intraday_ticks_take_a_short_window_and_the_nightly_run_the_long_one() -> None:
    incremental, nightly = build_practice_schedules(PRACTICE, "sync_mb", SyncWindows())
    tick = dt.datetime(2026, 6, 30, 10, 30, tzinfo=BERLIN)
    [run] = evaluate(incremental, tick)
    [night] = evaluate(nightly, tick)
    assert (run.tags["dagster/asset_partition_range_start"],
            run.tags["dagster/asset_partition_range_end"]) == ("2026-06-29", "2026-07-14")
    assert (night.tags["dagster/asset_partition_range_start"],
            night.tags["dagster/asset_partition_range_end"]) == ("2026-06-16", "2026-08-29")
    assert (run.tags["sync"], night.tags["sync"]) == ("incremental", "nightly")
