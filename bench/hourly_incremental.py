"""What does one incremental schedule tick cost after a day of changes in Ivoris? (issue "Benchmarks",
measure 5)

Through Dagster end to end, both emulators over HTTP, as tests/test_end_to_end.py does: a fresh
warehouse and HubSpot portal are first synced for a window (`refresh_reference_data`, then
`pipeline_<practice>` over the window; timed but not part of the measurement). Then the Ivoris
emulator's clock moves one day ahead, the practice's real incremental schedule
(`<practice>_incremental_sync` from `build_definitions`) is evaluated at its latest tick before the new
clock, and the job it names runs in-process with the run request's tags on a DagsterInstance with
SQLite storage. Measured: wall time, Ivoris requests (emulator counters), HubSpot calls and write
calls (the emulator's request log), and what changed (Ivoris truth, the warehouse's deals, HubSpot
records). The same request then runs again with nothing changed.

    .venv/bin/python -m bench.hourly_incremental [--size demo] [--practice mb] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import platform
import pstats
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, Definitions, RunRequest, ScheduleDefinition, build_schedule_context
from dagster._utils.schedules import reverse_cron_string_iterator

from bench.backfill_runs import environment
from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_emulators.ivoris.sizes import PRESETS
from biss_pipeline.demo import hubspot_write_calls
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse, dispose_engine
from biss_pipeline.keys import RANGE_END_TAG, RANGE_START_TAG, sync_asset_key
from biss_pipeline.resources.warehouse import WarehouseResource

TOKEN = "bench-token"
SEED = 7
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SETUP_LOOKAHEAD_DAYS = 60  # what the incremental schedule keeps synced ahead of its tick
# Dagster's notice on get_schedule_def (resources are not needed to evaluate the schedule).
warnings.filterwarnings("ignore", message="Starting in dagster 1.11, get_schedule_def")


def write_mapping(emulator: IvorisEmulator, path: Path, history_start: dt.date) -> dict[str, str]:
    """The shipped mapping with its practices pointed at the emulator; returns the key variables."""
    practices = [
        {"id": s.site_id, "name": s.name, "key_prefix": s.key_prefix,
         "ivoris_base_url": emulator.site_url(s.site_id),
         "api_key_env": f"BENCH_IVORIS_KEY_{s.site_id.upper()}",
         "history_start": history_start.isoformat(), "active": True}
        for s in emulator.sites
    ]
    tabs = load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml")
    tabs["practices"] = practices
    path.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return {f"BENCH_IVORIS_KEY_{s.site_id.upper()}": s.api_key for s in emulator.sites}


def latest_tick(schedule: ScheduleDefinition, now: dt.datetime) -> dt.datetime:
    """The schedule's most recent cron time at or before `now` (what the daemon last evaluated)."""
    cron = schedule.cron_schedule
    assert isinstance(cron, str)
    for tick in reverse_cron_string_iterator(now.timestamp(), cron, schedule.execution_timezone):
        if tick.timestamp() <= now.timestamp():
            return tick
    raise RuntimeError("no tick")


def run_requests(schedule: ScheduleDefinition, instance: DagsterInstance, tick: dt.datetime,
                 defs: Definitions) -> list[RunRequest]:
    # the schedules read the mapping (a practice disabled by its rows is skipped), as under the daemon
    with build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                resources={"mapping": (defs.resources or {})["mapping"]}) as context:
        data = schedule.evaluate_tick(context)
    return list(data.run_requests or [])


def deals_snapshot(warehouse: Warehouse, practice: str) -> dict[str, tuple[Any, ...]]:
    rows = warehouse.read_rows(sa.select(schema.deals).where(schema.deals.c.practice_id == practice))
    return {row["deal_key"]: tuple(sorted(row.items())) for row in rows}


def raw_appointments(warehouse: Warehouse, practice: str, first: dt.date,
                     last: dt.date) -> set[tuple[str, str, str]]:
    table = schema.raw_appointments
    rows = warehouse.read_rows(sa.select(table.c.ivoris_id, table.c.status, table.c.modified_at).where(
        table.c.practice_id == practice, table.c.partition_date >= first, table.c.partition_date <= last))
    return {(str(r["ivoris_id"]), str(r["status"]), str(r["modified_at"])) for r in rows}


def metadata_values(entries: dict[str, Any]) -> dict[str, Any]:
    return {name: getattr(value, "value", value) for name, value in entries.items()}


@dataclass
class Measured:
    label: str
    success: bool
    seconds: float
    cpu_seconds: float = 0.0
    ivoris_requests: Counter[str] = field(default_factory=Counter)
    ivoris_504: int = 0
    hubspot_calls: int = 0
    hubspot_writes: int = 0
    sync: dict[str, Any] = field(default_factory=dict)
    materializations: int = 0
    checks_failed: list[str] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)
    deals_new: int = 0
    deals_changed: int = 0
    deals_gone: int = 0
    profile: str = ""


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def execute(defs: Definitions, request: RunRequest, job_name: str, instance: DagsterInstance,
            ivoris: IvorisEmulator, hubspot: HubSpotEmulator, warehouse: Warehouse, practice: str,
            label: str, profile: bool) -> Measured:
    progress(f"{label}: {job_name} {request.tags.get(RANGE_START_TAG)} .. {request.tags.get(RANGE_END_TAG)}")
    job = defs.resolve_job_def(job_name)
    run_config = {**(request.run_config or {}), **QUIET}
    deals_before = deals_snapshot(warehouse, practice)
    ivoris.reset_stats()
    log_start = len(hubspot.request_log)
    profiler = cProfile.Profile() if profile else None
    began, cpu_began = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    result = job.execute_in_process(instance=instance, tags=dict(request.tags), run_config=run_config,
                                    raise_on_error=False)
    if profiler:
        profiler.disable()
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    stats = ivoris.stats()
    log = [r for r in hubspot.request_log[log_start:] if not r.path.startswith("/_emulator")]
    measured = Measured(label=label, success=result.success, seconds=seconds, cpu_seconds=cpu_seconds,
                        hubspot_calls=len(log), hubspot_writes=hubspot_write_calls(hubspot, log_start))
    for (route, status), count in stats["requests"].items():
        if route.startswith("/sites/"):
            measured.ivoris_requests[route.removeprefix("/sites/{site_id}")] += count
            measured.ivoris_504 += count if status == 504 else 0
    events = result.get_asset_materialization_events()
    measured.materializations = len(events)
    for event in events:
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == sync_asset_key(practice):
            measured.sync = metadata_values(dict(materialization.metadata))
    measured.checks_failed = [f"{e.asset_key.to_user_string()}:{e.check_name}"
                              for e in result.get_asset_check_evaluations() if not e.passed]
    for stat in instance.get_run_step_stats(result.run_id):
        if stat.start_time is not None and stat.end_time is not None:
            measured.steps.append((stat.step_key, stat.end_time - stat.start_time))
    measured.steps.sort(key=lambda step: -step[1])
    deals_after = deals_snapshot(warehouse, practice)
    measured.deals_new = len(deals_after.keys() - deals_before.keys())
    measured.deals_gone = len(deals_before.keys() - deals_after.keys())
    measured.deals_changed = sum(1 for key in deals_after.keys() & deals_before.keys()
                                 if deals_after[key] != deals_before[key])
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
        measured.profile = out.getvalue()
    return measured


def row(label: str, value: object) -> str:
    return f"  {label:<52} {value}"


def print_measured(m: Measured) -> None:
    print(row("run", "succeeded" if m.success else "FAILED"))
    print(row("wall seconds (execute_in_process)", f"{m.seconds:.1f}"))
    print(row("CPU seconds (this process, emulators included)", f"{m.cpu_seconds:.1f}"))
    in_steps = sum(seconds for _key, seconds in m.steps)
    print(row("sum of step durations / outside steps", f"{in_steps:.1f} s / {m.seconds - in_steps:.1f} s"))
    requests = sum(m.ivoris_requests.values())
    routes = ", ".join(f"{route} {n}" for route, n in sorted(m.ivoris_requests.items()))
    print(row("Ivoris requests (emulator counters)", f"{requests} ({m.ivoris_504} × 504)"))
    print(row("  by route", routes or "-"))
    print(row("HubSpot calls / write calls (request log)", f"{m.hubspot_calls} / {m.hubspot_writes}"))
    objects = ", ".join(
        f"{kind} +{m.sync.get(f'{kind}_hubspot_new', 0)} ~{m.sync.get(f'{kind}_hubspot_updated', 0)} "
        f"={m.sync.get(f'{kind}_unchanged', 0)}"
        for kind in ("contacts", "deals", "appointments") if f"{kind}_unchanged" in m.sync)
    print(row("HubSpot records (+new ~updated =unchanged)", objects or "-"))
    added = sum(v for k, v in m.sync.items() if k.startswith("assoc_") and k.endswith("_added"))
    removed = sum(v for k, v in m.sync.items() if k.startswith("assoc_") and k.endswith("_removed"))
    print(row("HubSpot associations added / removed", f"{added} / {removed}"))
    print(row("warehouse deals new / changed / gone", f"{m.deals_new} / {m.deals_changed} / {m.deals_gone}"))
    print(row("asset materializations recorded by Dagster", m.materializations))
    print(row("failed asset checks", ", ".join(m.checks_failed) or "none"))
    top = ", ".join(f"{key} {seconds:.1f}s" for key, seconds in m.steps[:6])
    print(row("slowest steps", top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(PRESETS), default="demo",
                        help="Ivoris emulator preset (default demo: 400 patients, 30-60 appointments a day)")
    parser.add_argument("--practice", default="mb", help="practice to run (default mb)")
    parser.add_argument("--profile", action="store_true",
                        help="profile the incremental run (cProfile, top 15 by cumulative time)")
    args = parser.parse_args(argv)
    practice = args.practice

    args_given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python -m bench.hourly_incremental", *args_given])
    print(f"# {command}")
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
          flush=True)

    problems: list[str] = []
    with (tempfile.TemporaryDirectory(prefix="bench-hourly-") as tmp,
          IvorisEmulator(seed=SEED, size=args.size) as ivoris):
        hubspot = HubSpotEmulator(token=TOKEN, search_index_delay_s=0.2).start()
        url = f"sqlite:///{Path(tmp) / 'warehouse.sqlite'}"
        history_start = ivoris.size.history_start
        keys = write_mapping(ivoris, Path(tmp) / "mapping.yaml", history_start)
        try:
            with environment(BISS_WAREHOUSE_URL=url, HUBSPOT_ACCESS_TOKEN=TOKEN,
                             BISS_HUBSPOT_HOST=hubspot.base_url, BISS_MAPPING_SOURCE="local", **keys):
                from biss_pipeline.definitions import build_definitions

                defs = build_definitions(Path(tmp) / "mapping.yaml")
                schedule = defs.get_schedule_def(f"{practice}_incremental_sync")
                job_name = schedule.job_name
                warehouse = WarehouseResource(url=url).get()
                (Path(tmp) / "dagster").mkdir()
                instance = DagsterInstance.local_temp(str(Path(tmp) / "dagster"),
                                                      overrides={"telemetry": {"enabled": False}})

                # -- setup (timed, not measured): the portal synced up to the emulator's clock
                setup_clock = ivoris.clock
                setup_window = (history_start, setup_clock.date() + dt.timedelta(days=SETUP_LOOKAHEAD_DAYS))
                began = time.perf_counter()
                ok = defs.resolve_job_def("refresh_reference_data").execute_in_process(
                    instance=instance, run_config=QUIET, raise_on_error=False).success
                reference_seconds = time.perf_counter() - began
                setup_request = RunRequest(tags={RANGE_START_TAG: setup_window[0].isoformat(),
                                                 RANGE_END_TAG: setup_window[1].isoformat()})
                setup = execute(defs, setup_request, job_name, instance, ivoris, hubspot, warehouse,
                                practice, "setup", profile=False)
                if not (ok and setup.success):
                    problems.append("setup runs failed")

                # -- one day later: the schedule's latest tick, its run request, executed
                new_clock = ivoris.advance_clock(dt.timedelta(days=1))
                tick = latest_tick(schedule, new_clock)
                requests = run_requests(schedule, instance, tick, defs)
                if len(requests) != 1:
                    problems.append(f"schedule returned {len(requests)} run requests, expected 1")
                request = requests[0]
                first = dt.date.fromisoformat(request.tags[RANGE_START_TAG])
                last = dt.date.fromisoformat(request.tags[RANGE_END_TAG])
                old = setup_clock.strftime("%Y-%m-%dT%H:%M:%SZ")
                changed_appointments = [a for a in ivoris.truth.appointments(practice, first, last)
                                        if a["modifiedAt"] > old]
                changed_entries = [e for e in ivoris.truth.document_entries(practice, first, last)
                                   if e["modifiedAt"] > old]
                changed_patients = ivoris.truth.patient_ids(practice, setup_clock + dt.timedelta(seconds=1))
                incremental = execute(defs, request, job_name, instance, ivoris, hubspot, warehouse,
                                      practice, "incremental", profile=args.profile)
                expected = {(str(a["id"]), a["status"], a["modifiedAt"])
                            for a in ivoris.truth.appointments(practice, first, last)}
                in_warehouse = raw_appointments(warehouse, practice, first, last)
                if not incremental.success:
                    problems.append("the incremental run failed")
                if in_warehouse != expected:
                    problems.append(f"raw appointments in the window differ from Ivoris: "
                                    f"{len(in_warehouse ^ expected)} rows")

                # -- the same request again, nothing changed in Ivoris
                again = execute(defs, request, job_name, instance, ivoris, hubspot, warehouse,
                                practice, "no change", profile=False)
                if not again.success:
                    problems.append("the no-change run failed")
                if again.hubspot_writes:
                    problems.append(f"the no-change run made {again.hubspot_writes} HubSpot write calls")
                deals_in_hubspot = sum(1 for d in hubspot.objects("deals")
                                       if d["properties"].get("ivoris_deal_key", "").startswith(
                                           ivoris.site(practice).key_prefix))
                deals_in_warehouse = warehouse.count_rows(schema.deals, practice)
                if deals_in_hubspot != deals_in_warehouse:
                    problems.append(f"HubSpot holds {deals_in_hubspot} deals, the warehouse "
                                    f"{deals_in_warehouse}")
                instance.dispose()
        finally:
            hubspot.stop()
            dispose_engine(url)

    print()
    print(f"5. Hourly incremental: schedule {schedule.name} ('{schedule.cron_schedule}', "
          f"{schedule.execution_timezone}) → {job_name}, in-process")
    print(row("Ivoris emulator", f"'{args.size}' preset, seed {SEED}, practice {practice}, no faults"))
    print(row("HubSpot emulator", "professional tier, search index delay 0.2 s"))
    print(row("Dagster instance", "DagsterInstance.local_temp (SQLite run/event storage)"))
    print()
    print(f"Setup (not measured): refresh_reference_data, then {job_name} for "
          f"{setup_window[0]} .. {setup_window[1]} at Ivoris clock {setup_clock:%Y-%m-%d %H:%M} UTC")
    print(row("refresh_reference_data seconds", f"{reference_seconds:.1f}"))
    print(row(f"{job_name} seconds", f"{setup.seconds:.1f}"))
    print(row("Ivoris requests / HubSpot calls / write calls",
              f"{sum(setup.ivoris_requests.values())} / {setup.hubspot_calls} / {setup.hubspot_writes}"))
    print(row("warehouse deals after setup", f"{setup.deals_new}"))
    print()
    print(f"One day of changes: Ivoris clock advanced to {new_clock:%Y-%m-%d %H:%M} UTC; latest tick "
          f"{tick.isoformat()}")
    print(row("run request tags", ", ".join(f"{k}={v}" for k, v in sorted(request.tags.items()))))
    print(row("run key", request.run_key))
    print(row("Ivoris changes in the window since the setup (truth)",
              f"{len(changed_appointments)} appointments, {len(changed_entries)} document entries; "
              f"{len(changed_patients)} patients modified"))
    print_measured(incremental)
    print(row("raw appointments in the window = Ivoris truth",
              f"{'yes' if in_warehouse == expected else 'NO'} ({len(expected)} appointments)"))
    print()
    print("Second run of the same request, nothing changed in Ivoris")
    print_measured(again)
    print(row("HubSpot deals = warehouse deals", f"{deals_in_hubspot} = {deals_in_warehouse}"))
    if incremental.profile:
        print()
        print("Profile of the incremental run (cProfile, main thread, top 15 by cumulative time)")
        print(incremental.profile)
    print()
    print("   note: 2 CPUs shared with other work; one run each, so wall times are noisy.")
    for problem in problems:
        print(f"   PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
