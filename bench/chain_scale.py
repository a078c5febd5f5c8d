"""The pipeline at the chain's real scale (issue "Cost in proportion to the change", item 6).

One practice at the SPEC §3 size (60,000 patients, 120 appointments a weekday, years of history),
with the emulators' latency switched on (Ivoris 0.1-1 s per request, HubSpot 0.3 s per call),
driven through Dagster as production does, then extrapolated to the chain's 10 practices.

The parent process serves both emulators. For each history length it starts a fresh child process
(so each has its own peak RSS) that builds the code location (`build_definitions`) and runs, on a
DagsterInstance with SQLite storage, in-process:

1. `refresh_reference_data`;
2. the first backfill: `pipeline_<practice>` over every partition (history start .. booking
   look-ahead) as one ranged run, which is what a UI backfill of the practice becomes (single-run
   backfill policy, bench/full_history.py);
3. the no-change tick: the practice's incremental schedule evaluated at its latest tick, its run
   request executed, nothing changed in Ivoris since the backfill;
4. a typical hour's tick: the Ivoris clock one hour ahead (working hours, a weekday), the
   schedule's latest tick executed;
5. the nightly run: the nightly schedule's latest tick executed.

Ivoris requests (emulator counters) and HubSpot calls (emulator request log) are counted by the
parent per phase; the child reports wall time, Dagster events of the run and its peak RSS.

`--scale` shrinks the practice (patients and appointments a day; 1.0 = the spec). Figures measured
at a fraction are printed as measured, with the factor to the spec and the method of the
extrapolation (each is named where it is printed). Nothing is hard-coded: every target ratio is
computed from what this run measured.

    .venv/bin/python -m bench.chain_scale --quick                 # ~8 minutes
    .venv/bin/python -m bench.chain_scale [--scale 0.1] [--history-days 365] [--rss-days 30 365 1825]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHILD_FLAG = "--child"
TOKEN = "bench-chain-token"
PRACTICE = "mb"
SEED = 7

# SPEC §3 and the targets: the figures every measurement is compared with.
SPEC_PATIENTS = 60_000
SPEC_APPOINTMENTS_PER_DAY = 120
CHAIN_PRACTICES = 10
HUBSPOT_DAILY_BUDGET = 650_000  # Professional
BUDGET_SHARE_TARGET = 0.10
# HubSpot's write bound: 190 calls per 10 s (Professional), 100 inputs per batch call.
WRITE_BOUND_RECORDS_PER_S = 190 / 10 * 100
SYNC_SHARE_TARGET = 0.90
BACKFILL_RATIO_TARGET = 1.5
NO_CHANGE_SECONDS_TARGET = 10.0
NO_CHANGE_CALLS_TARGET = 10
HOUR_SECONDS_TARGET = 60.0
RSS_GROWTH_TARGET = 1.10

IVORIS_LATENCY_S, IVORIS_JITTER_S = 0.1, 0.9  # 0.1-1 s per request
HUBSPOT_LATENCY_S = 0.3
# A Tuesday, 11:00 in Berlin: inside the incremental schedule's working hours, so the hour after it
# carries the day's change rate (visits arriving, completed, billed; bookings ahead).
CLOCK = dt.datetime(2026, 6, 30, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
LOOKAHEAD_DAYS = 60  # the emulator's booking horizon and the pipeline's look-ahead

WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
READ_ONLY_POSTS = ("/search", "/batch/read")
# Ivoris routes whose requests do not grow with the practice (one each per run).
FIXED_IVORIS_ROUTES = ("/practices", "/chairs", "/appointment-types")

# Quick: two short histories (the second gives the fit its slope); full: as large as fits ~35 minutes.
QUICK: dict[str, Any] = {"scale": 0.02, "history_days": 14, "rss_days": [30], "cap_minutes": 8.0}
FULL: dict[str, Any] = {"scale": 0.1, "history_days": 365, "rss_days": [30, 365, 1825], "cap_minutes": 35.0}


# --- child: one history length, fresh warehouse, Dagster instance and HubSpot portal ------------

def protocol(line: str) -> dict[str, Any]:
    """Tell the parent where the child is; wait for its answer (JSON on one line)."""
    out = sys.__stdout__  # the parent reads this pipe; a run's own prints are skipped there
    assert out is not None
    out.write(f"@@{line}\n")
    out.flush()
    answer = sys.stdin.readline()
    return json.loads(answer) if answer.strip() else {}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(mapping: Path, dagster_home: Path) -> None:
    import logging

    from dagster import DagsterInstance, RunRequest, ScheduleDefinition

    from bench.hourly_incremental import latest_tick, run_requests
    from biss_pipeline.definitions import build_definitions
    from biss_pipeline.keys import BOOKING_LOOKAHEAD_DAYS, pipeline_job_name, window_tags

    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.ERROR)
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    defs = build_definitions(mapping)
    instance = DagsterInstance.local_temp(str(dagster_home), overrides={"telemetry": {"enabled": False}})
    incremental = defs.get_schedule_def(f"{PRACTICE}_incremental_sync")
    nightly = defs.get_schedule_def(f"{PRACTICE}_nightly_resync")
    practices = {p.practice_id: p for p in _practices(mapping)}
    job_name = pipeline_job_name(practices[PRACTICE])
    history_start = practices[PRACTICE].history_start
    baseline = peak_rss_mb()

    def scheduled(schedule: ScheduleDefinition, now: dt.datetime) -> tuple[RunRequest, dt.datetime]:
        tick = latest_tick(schedule, now)
        requests = run_requests(schedule, instance, tick, defs)
        if len(requests) != 1:
            raise RuntimeError(f"{schedule.name} returned {len(requests)} run requests at {tick}")
        return requests[0], tick

    def execute(phase: str, job: str, tags: dict[str, str], extra: dict[str, Any]) -> None:
        began = time.perf_counter()
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, tags=tags, run_config=quiet, raise_on_error=False)
        seconds = time.perf_counter() - began
        events: Counter[str] = Counter()
        for entry in instance.all_logs(result.run_id):
            events[entry.dagster_event.event_type_value if entry.dagster_event else "log message"] += 1
        steps = {}
        for stat in instance.get_run_step_stats(result.run_id):
            if stat.start_time is not None and stat.end_time is not None:
                steps[stat.step_key] = round(stat.end_time - stat.start_time, 2)
        report = {"phase": phase, "success": result.success, "seconds": round(seconds, 2),
                  "events": sum(events.values()), "events_by_type": dict(events), "steps": steps,
                  "window": [tags.get("dagster/asset_partition_range_start"),
                             tags.get("dagster/asset_partition_range_end")],
                  "peak_rss_mb": round(peak_rss_mb(), 1), **extra}
        protocol(f"END {json.dumps(report)}")

    answer = protocol("BEGIN reference")
    execute("reference", "refresh_reference_data", {}, {})

    answer = protocol("BEGIN backfill")
    clock = dt.datetime.fromisoformat(answer["clock"])
    last = clock.date() + dt.timedelta(days=BOOKING_LOOKAHEAD_DAYS)
    execute("backfill", job_name, window_tags(history_start, last), {})

    for phase, schedule in (("no_change", incremental), ("hour", incremental), ("nightly", nightly)):
        answer = protocol(f"BEGIN {phase}")
        clock = dt.datetime.fromisoformat(answer["clock"])
        request, tick = scheduled(schedule, clock)
        execute(phase, job_name, dict(request.tags), {"tick": tick.isoformat(), "clock": clock.isoformat()})

    instance.dispose()
    protocol(f"DONE {json.dumps({'baseline_rss_mb': round(baseline, 1)})}")


def _practices(mapping: Path) -> list[Any]:
    from biss_pipeline.domain.mapping.practices import load_practices

    return list(load_practices(mapping))


# --- parent: emulators, one child per history length ---------------------------------------------

def write_mapping(path: Path, ivoris: Any, history_start: dt.date) -> dict[str, str]:
    import yaml

    from biss_emulators.ivoris.catalogue import SITE_DEFINITIONS
    from biss_pipeline.domain.mapping.practices import load_mapping_tabs
    from biss_pipeline.domain.paths import PROJECT_ROOT

    served = {s.site_id for s in ivoris.sites}
    # The shipped mapping's other tabs name the three demo practices; the ones not served stay in the
    # practices tab, inactive, so the mapping stays valid and only the measured practice runs.
    practices = [{"id": d.site_id, "name": d.name, "key_prefix": d.key_prefix,
                  "ivoris_base_url": ivoris.site_url(d.site_id) if d.site_id in served
                  else f"{ivoris.base_url}/sites/{d.site_id}",
                  "api_key_env": f"BENCH_IVORIS_KEY_{d.site_id.upper()}",
                  "history_start": history_start.isoformat(), "active": d.site_id in served}
                 for d in SITE_DEFINITIONS[:3]]
    tabs = load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml")
    path.write_text(yaml.safe_dump({**tabs, "practices": practices}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return {f"BENCH_IVORIS_KEY_{s.site_id.upper()}": s.api_key for s in ivoris.sites}


def practice_size(scale: float, history_days: int) -> Any:
    from biss_emulators.ivoris.sizes import DatasetSize

    per_day = max(1, round(SPEC_APPOINTMENTS_PER_DAY * scale))
    return DatasetSize(name=f"chain-scale-{scale:g}", sites=1,
                       patients_per_site=max(1, round(SPEC_PATIENTS * scale)),
                       appointments_per_day=(per_day, per_day), chairs=(6, 12),
                       history_start=CLOCK.date() - dt.timedelta(days=history_days - 1),
                       booking_horizon_days=LOOKAHEAD_DAYS, default_clock=CLOCK)


def hubspot_phase(log: list[Any], since: float) -> dict[str, Any]:
    """Calls of one phase from the emulator's request log (by timestamp: the log is trimmed)."""
    calls = [r for r in log if r.timestamp >= since and not r.path.startswith("/_emulator")]
    writes = [r for r in calls if r.method in WRITE_METHODS
              and not any(r.path.endswith(suffix) for suffix in READ_ONLY_POSTS)]
    by_endpoint: dict[str, dict[str, int]] = {}
    for r in calls:
        endpoint = f"{r.method} {endpoint_template(r.path)}"
        entry = by_endpoint.setdefault(endpoint, {"calls": 0, "inputs": 0})
        entry["calls"] += 1
        entry["inputs"] += r.batch_size or 0
    return {"calls": len(calls), "write_calls": len(writes),
            "write_records": sum(r.batch_size or 1 for r in writes if r.status < 300),
            "status_429": sum(1 for r in calls if r.status == 429),
            "by_endpoint": by_endpoint}


def endpoint_template(path: str) -> str:
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def measure(days: int, scale: float, tmp: Path, log_to: Any) -> dict[str, Any]:
    from biss_emulators.hubspot import HubSpotEmulator
    from biss_emulators.hubspot.faults import Faults
    from biss_emulators.ivoris import FaultConfig, IvorisEmulator

    workdir = tmp / f"days-{days}"
    (workdir / "dagster").mkdir(parents=True)
    size = practice_size(scale, days)
    faults = FaultConfig(latency_s=IVORIS_LATENCY_S, latency_jitter_s=IVORIS_JITTER_S)
    figures: dict[str, Any] = {"days": days, "scale": scale, "patients": size.patients_per_site,
                               "appointments_per_day": size.appointments_per_day[0], "phases": {}}
    with (IvorisEmulator(seed=SEED, size=size, faults=faults) as ivoris,
          HubSpotEmulator(token=TOKEN, tier="professional", search_index_delay_s=0.2,
                          faults=Faults(latency_s=HUBSPOT_LATENCY_S)) as hubspot):
        keys = write_mapping(workdir / "mapping.yaml", ivoris, size.history_start)
        env = {**os.environ, "BISS_MAPPING_FILE": str(workdir / "mapping.yaml"),
               "BISS_MAPPING_SOURCE": "local",
               "BISS_WAREHOUSE_URL": f"sqlite:///{workdir / 'warehouse.sqlite'}",
               "BISS_DATA_DIR": str(workdir), "BISS_HUBSPOT_HOST": hubspot.base_url,
               "HUBSPOT_ACCESS_TOKEN": TOKEN, **keys}
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.chain_scale", CHILD_FLAG, str(workdir / "mapping.yaml"),
             str(workdir / "dagster")],
            env=env, cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log_to, text=True, bufsize=1)
        assert child.stdin is not None and child.stdout is not None
        phase_start = time.time()
        for line in child.stdout:
            if not line.startswith("@@"):
                continue  # anything a run prints on stdout
            verb, _, rest = line[2:].strip().partition(" ")
            if verb == "BEGIN":
                if rest == "hour":
                    ivoris.advance_clock(HOUR)
                ivoris.reset_stats()
                phase_start = time.time()
                progress(f"{days} days, scale {scale:g}: {rest} "
                         f"(Ivoris clock {ivoris.clock:%Y-%m-%d %H:%M} UTC)")
                child.stdin.write(json.dumps({"clock": ivoris.clock.isoformat()}) + "\n")
                child.stdin.flush()
            elif verb == "END":
                report = json.loads(rest)
                stats = ivoris.stats()
                routes: Counter[str] = Counter()
                for (route, _status), count in stats["requests"].items():
                    routes[route.removeprefix("/sites/{site_id}")] += count
                report["ivoris_requests"] = sum(routes.values())
                report["ivoris_by_route"] = dict(routes)
                report["hubspot"] = hubspot_phase(hubspot.request_log, phase_start)
                figures["phases"][report["phase"]] = report
                progress(f"  {report['phase']}: {report['seconds']} s, "
                         f"{'ok' if report['success'] else 'FAILED'}, Ivoris {report['ivoris_requests']}, "
                         f"HubSpot {report['hubspot']['calls']} calls, {report['events']} events")
                child.stdin.write("{}\n")
                child.stdin.flush()
            elif verb == "DONE":
                figures.update(json.loads(rest))
                child.stdin.write("{}\n")
                child.stdin.flush()
        code = child.wait()
        figures["wall_s"] = round(time.monotonic() - started, 1)
        if code != 0:
            raise RuntimeError(f"child for {days} days failed with exit code {code}")
        figures["peak_rss_mb"] = max(p["peak_rss_mb"] for p in figures["phases"].values())
        figures["hubspot_objects"] = {kind: len(hubspot.objects(kind))
                                      for kind in ("contacts", "deals", "appointments")}
        counts = ivoris.truth.counts(PRACTICE)
        figures["ivoris_counts"] = {k: v for k, v in counts.items() if isinstance(v, int)}
    return figures


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


# --- extrapolation and the printed table ---------------------------------------------------------

def extrapolate_calls(hubspot: dict[str, Any], factor: float) -> int:
    """HubSpot calls at the spec's size: batch endpoints carry their inputs × factor in calls of 100
    (at least as many calls as measured); search pages grow with the records (× factor); any other
    call (portal set-up, single reads) is per run (kept)."""
    total = 0
    for endpoint, entry in hubspot["by_endpoint"].items():
        if "/batch/" in endpoint and entry["inputs"]:
            total += max(entry["calls"], math.ceil(entry["inputs"] * factor / 100))
        elif endpoint.endswith("/search"):
            total += math.ceil(entry["calls"] * factor)
        else:
            total += entry["calls"]
    return total


def extrapolate_ivoris(by_route: dict[str, int], factor: float) -> int:
    return sum(n if route in FIXED_IVORIS_ROUTES else math.ceil(n * factor) for route, n in by_route.items())


@dataclass(frozen=True)
class Fit:
    """y = fixed + per_unit × x, least squares over the history lengths measured at one scale.

    With one point it is a line through the origin (everything grows with the practice: an upper
    bound). A negative slope (noise) becomes a flat line, a negative intercept a line through the
    origin."""

    fixed: float
    per_unit: float
    points: int

    @classmethod
    def of(cls, points: list[tuple[float, float]]) -> Fit:
        xs, ys = [x for x, _ in points], [y for _, y in points]
        n = len(points)
        if n >= 2 and max(xs) > min(xs):
            mx, my = sum(xs) / n, sum(ys) / n
            slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
            if slope < 0:
                return cls(my, 0.0, n)
            if my - slope * mx >= 0:
                return cls(my - slope * mx, slope, n)
        through_origin = sum(x * y for x, y in points) / sum(x * x for x in xs) if any(xs) else 0.0
        return cls(0.0, through_origin, n)

    def at(self, x: float) -> float:
        return self.fixed + self.per_unit * x

    def method(self, unit: str, x: float) -> str:
        if self.points < 2:
            return f"one point: proportional to {unit} (upper bound), at {x:,.0f} {unit}"
        return (f"fit over {self.points} history lengths: {self.fixed:.1f} s + {self.per_unit * 1000:.2f} s "
                f"per 1,000 {unit}, at {x:,.0f} {unit}")


def synced_objects(result: dict[str, Any]) -> int:
    """The practice's size as the sync sees it: its objects in HubSpot after the run."""
    return sum(result["hubspot_objects"].values())


def sync_step_key() -> str:
    from biss_pipeline.keys import sync_asset_key

    return "__".join(sync_asset_key(PRACTICE).path)


def pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def ratio(value: float, target: float) -> str:
    return f"{value / target:.2f}× target" if target else "-"


def weekday_ticks(cron: str, timezone: str) -> int:
    """Ticks of a cron on one working day (Tuesday 2026-06-30, Berlin)."""
    from dagster._utils.schedules import cron_string_iterator

    from biss_pipeline.domain.calendar import PRACTICE_TZ

    start = dt.datetime(2026, 6, 30, tzinfo=PRACTICE_TZ)
    end = start + dt.timedelta(days=1)
    count = 0
    for tick in cron_string_iterator(start.timestamp() - 1, cron, timezone):
        if tick.timestamp() >= end.timestamp():
            return count
        count += 1
    return count


def report(results: list[dict[str, Any]], main_days: int, command: str) -> list[str]:
    from biss_pipeline.sensors.schedules import SyncWindows

    problems: list[str] = []
    main = next(r for r in results if r["days"] == main_days)
    scale = main["scale"]
    factor = 1 / scale
    same_scale = [r for r in results if r["scale"] == scale]
    phases = main["phases"]
    for result in results:
        for phase in result["phases"].values():
            if not phase["success"]:
                problems.append(f"{result['days']} days: the {phase['phase']} run failed")

    def line(figure: str, measured: str, target: str, rto: str, method: str) -> None:
        print(f"| {figure} | {measured} | {target} | {rto} | {method} |")

    def seconds_fit(phase: str) -> Fit:
        """A run's seconds against the practice's size (HubSpot objects), over the lengths measured."""
        return Fit.of([(synced_objects(r), r["phases"][phase]["seconds"]) for r in same_scale])

    size_full = synced_objects(main) * factor
    print()
    print(f"Measured at scale {scale:g} ({main['patients']:,} patients, {main['appointments_per_day']} "
          f"appointments a weekday), {main_days} days of history; factor {factor:g} to the spec's practice "
          f"(60,000 patients, 120 a day).")
    print(f"Ivoris latency {IVORIS_LATENCY_S}-{IVORIS_LATENCY_S + IVORIS_JITTER_S} s per request, HubSpot "
          f"{HUBSPOT_LATENCY_S} s per call (Professional limits); SQLite warehouse and Dagster storage.")
    print("Extrapolated = to the spec's practice (× factor in records) at the same history; runs' seconds "
          "by a fixed + linear fit over the history lengths measured at this scale.")
    print()
    print("| figure | measured | target | ratio | method / extrapolation |")
    print("|---|---|---|---|---|")

    # 1. first backfill vs the write bound for its records
    backfill = phases["backfill"]
    records = backfill["hubspot"]["write_records"]
    bound_s = records / WRITE_BOUND_RECORDS_PER_S
    backfill_fit = Fit.of([(r["phases"]["backfill"]["hubspot"]["write_records"],
                            r["phases"]["backfill"]["seconds"]) for r in same_scale])
    full_records = records * factor
    full_s = backfill_fit.at(full_records)
    full_bound_s = full_records / WRITE_BOUND_RECORDS_PER_S
    line("first backfill vs the HubSpot write bound",
         f"{backfill['seconds']:.0f} s for {records:,} records (bound {bound_s:.1f} s) = "
         f"{backfill['seconds'] / bound_s if bound_s else float('inf'):.1f} × bound measured; "
         f"{full_s / 60:.0f} min for {full_records:,.0f} records (bound {full_bound_s / 60:.1f} min) = "
         f"{full_s / full_bound_s if full_bound_s else float('inf'):.1f} × bound extrapolated",
         f"≤ {BACKFILL_RATIO_TARGET} × bound",
         ratio(full_s / full_bound_s if full_bound_s else float("inf"), BACKFILL_RATIO_TARGET)
         + " (extrapolated)",
         "records = inputs of successful HubSpot write calls (objects created or updated, associations); "
         "bound = records / 1,900 per s (190 calls per 10 s × 100); "
         + backfill_fit.method("records", full_records))

    # 2. no-change tick
    quiet = phases["no_change"]
    quiet_fit = seconds_fit("no_change")
    quiet_s = quiet_fit.at(size_full)
    quiet_calls = extrapolate_calls(quiet["hubspot"], factor)
    line("no-change tick: seconds", f"{quiet['seconds']:.1f} s measured; {quiet_s:.0f} s extrapolated",
         f"≤ {NO_CHANGE_SECONDS_TARGET:.0f} s",
         f"{ratio(quiet['seconds'], NO_CHANGE_SECONDS_TARGET)} measured, "
         f"{ratio(quiet_s, NO_CHANGE_SECONDS_TARGET)} extrapolated",
         quiet_fit.method("HubSpot objects", size_full))
    line("no-change tick: Ivoris requests",
         f"{quiet['ivoris_requests']} measured; "
         f"{extrapolate_ivoris(quiet['ivoris_by_route'], factor):,} extrapolated", "-", "-",
         f"per route × {factor:g} (upper bound), reference routes kept; measured by route: "
         f"{quiet['ivoris_by_route']}")
    line("no-change tick: HubSpot calls",
         f"{quiet['hubspot']['calls']} measured ({quiet['hubspot']['write_calls']} writes); "
         f"{quiet_calls} extrapolated", f"≤ {NO_CHANGE_CALLS_TARGET}",
         f"{ratio(quiet['hubspot']['calls'], NO_CHANGE_CALLS_TARGET)} measured, "
         f"{ratio(quiet_calls, NO_CHANGE_CALLS_TARGET)} extrapolated",
         f"per endpoint: batch inputs × {factor:g} in calls of 100, search pages × {factor:g}, "
         "other calls kept")

    # 3. a typical hour
    hour = phases["hour"]
    hour_fit = seconds_fit("hour")
    hour_s = hour_fit.at(size_full)
    hour_calls = extrapolate_calls(hour["hubspot"], factor)
    line("typical hour's tick: seconds", f"{hour['seconds']:.1f} s measured; {hour_s:.0f} s extrapolated",
         f"≤ {HOUR_SECONDS_TARGET:.0f} s", f"{ratio(hour['seconds'], HOUR_SECONDS_TARGET)} measured, "
         f"{ratio(hour_s, HOUR_SECONDS_TARGET)} extrapolated", hour_fit.method("HubSpot objects", size_full))
    line("typical hour's tick: HubSpot calls, Ivoris requests",
         f"{hour['hubspot']['calls']} calls ({hour['hubspot']['write_calls']} writes, "
         f"{hour['hubspot']['write_records']} records), {hour['ivoris_requests']} requests measured; "
         f"{hour_calls} calls, {extrapolate_ivoris(hour['ivoris_by_route'], factor):,} requests extrapolated",
         "-", "-", "as for the no-change tick")

    # 4. calls a day, 10 practices
    windows = SyncWindows()
    ticks = weekday_ticks(windows.incremental_cron, "Europe/Berlin")
    nightly = phases["nightly"]
    nightly_calls = extrapolate_calls(nightly["hubspot"], factor)
    nightly_fit = seconds_fit("nightly")
    # Every working-day tick at the hour's change rate (an upper bound for a 30-minute tick, which
    # carries half an hour's change), plus the nightly run.
    per_day = CHAIN_PRACTICES * (ticks * hour_calls + nightly_calls)
    measured_day = CHAIN_PRACTICES * (ticks * hour["hubspot"]["calls"] + nightly["hubspot"]["calls"])
    share = per_day / HUBSPOT_DAILY_BUDGET
    line("HubSpot calls/day, 10 practices, checks included",
         f"{measured_day:,} = {pct(measured_day / HUBSPOT_DAILY_BUDGET)} measured; "
         f"{per_day:,} = {pct(share)} of {HUBSPOT_DAILY_BUDGET:,} extrapolated",
         f"≤ {pct(BUDGET_SHARE_TARGET)}", ratio(share, BUDGET_SHARE_TARGET) + " (extrapolated)",
         f"10 × ({ticks} ticks a working day of '{windows.incremental_cron}' × the hour's tick's calls "
         f"({hour['hubspot']['calls']} → {hour_calls}) + the nightly run's ({nightly['hubspot']['calls']} → "
         f"{nightly_calls})); nightly run {nightly['seconds']:.0f} s measured, "
         f"{nightly_fit.at(size_full) / 60:.0f} min extrapolated")

    # 5. sync records/s under latency, in the backfill's sync step
    key = sync_step_key()
    sync_fit = Fit.of([(r["phases"]["backfill"]["hubspot"]["write_records"],
                        r["phases"]["backfill"]["steps"].get(key, 0.0)) for r in same_scale])
    sync_s = backfill["steps"].get(key, 0.0)
    rate = records / sync_s if sync_s else 0.0
    # A flat fit (no growth measured, noise) would extrapolate to any rate: keep the measured one then.
    grows = sync_fit.per_unit > 0
    full_rate = full_records / sync_fit.at(full_records) if grows else rate
    line("sync records/s at 0.3 s per call",
         f"{rate:,.0f} records/s = {pct(rate / WRITE_BOUND_RECORDS_PER_S)} measured ({records:,} records in "
         f"{sync_s:.1f} s); {full_rate:,.0f} records/s = {pct(full_rate / WRITE_BOUND_RECORDS_PER_S)} "
         "extrapolated",
         f"≥ {pct(SYNC_SHARE_TARGET)} of 1,900/s",
         ratio(full_rate / WRITE_BOUND_RECORDS_PER_S, SYNC_SHARE_TARGET) + " (extrapolated)",
         f"records written in the backfill / step {key}; {backfill['hubspot']['status_429']} × 429; "
         + (sync_fit.method("records", full_records) if grows else "no growth measured: not extrapolated"))

    # 6. peak RSS by history
    ordered = sorted(results, key=lambda r: r["days"])

    def rss_full(result: dict[str, Any]) -> float:
        base = result["baseline_rss_mb"]
        return base + (result["peak_rss_mb"] - base) / result["scale"]

    first = ordered[0]
    for result in ordered:
        growth = rss_full(result) / rss_full(first)
        line(f"peak RSS, {result['days']} days of history",
             f"{result['peak_rss_mb']:.0f} MB measured (after imports {result['baseline_rss_mb']:.0f} MB); "
             f"{rss_full(result):,.0f} MB extrapolated",
             f"≤ {RSS_GROWTH_TARGET:.2f} × the {first['days']}-day peak",
             f"{growth:.2f} × = {ratio(growth, RSS_GROWTH_TARGET)} (extrapolated)",
             f"peak above the after-imports RSS × {1 / result['scale']:g} (linear in records); "
             f"{synced_objects(result):,} HubSpot objects; child wall {result['wall_s']:.0f} s")

    # 7. Dagster events per run
    for name in ("no_change", "hour", "nightly", "backfill"):
        phase = phases[name]
        planned = phase["events_by_type"].get("ASSET_MATERIALIZATION_PLANNED", 0)
        materialized = phase["events_by_type"].get("ASSET_MATERIALIZATION", 0)
        line(f"Dagster events, {name.replace('_', '-')} run",
             f"{phase['events']:,} ({planned:,} planned, {materialized:,} materializations)", "small, fixed",
             "-", f"instance.all_logs(run); window {phase['window'][0]} .. {phase['window'][1]}; "
                  "does not depend on scale")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == CHILD_FLAG:
        run_child(Path(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"small practice, short history (scale {QUICK['scale']}, "
                             f"{QUICK['history_days']} days)")
    parser.add_argument("--scale", type=float, help=f"fraction of the spec's practice (full {FULL['scale']})")
    parser.add_argument("--history-days", type=int,
                        help=f"history of the run whose ticks are measured (full {FULL['history_days']})")
    parser.add_argument("--rss-days", type=int, nargs="*",
                        help="further history lengths for the peak RSS (default 30 365 1825)")
    parser.add_argument("--cap-minutes", type=float,
                        help="skip history lengths that would not finish within this (full 35, quick 8)")
    parser.add_argument("--from-output", type=Path, nargs="+", metavar="FILE",
                        help="measure nothing: report on the '# N days: {...}' lines of earlier outputs "
                             "(lengths measured in separate processes, e.g. side by side)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    scale = args.scale if args.scale is not None else plan["scale"]
    main_days = args.history_days or plan["history_days"]
    rss_days = plan["rss_days"] if args.rss_days is None else args.rss_days
    cap_s = 60 * (args.cap_minutes if args.cap_minutes is not None else plan["cap_minutes"])
    if not 0 < scale <= 1:
        parser.error("--scale must be in (0, 1]")
    lengths = [main_days, *sorted(set(rss_days) - {main_days})]

    command = " ".join([".venv/bin/python -m bench.chain_scale", *argv])
    print(f"# {command}")
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
          flush=True)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    if args.from_output:
        for path in args.from_output:
            for text in path.read_text(encoding="utf-8").splitlines():
                head, _, payload = text.partition(" days: ")
                if text.startswith("# ") and head[2:].isdigit() and payload.startswith("{"):
                    results.append(json.loads(payload))
                    print(f"# from {path}: {head[2:]} days at scale {results[-1]['scale']:g}")
        lengths = []
        main_days = args.history_days or max(r["days"] for r in results)
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        for days in lengths:
            elapsed = time.monotonic() - started
            if results:
                # A run's cost grows with its partitions (history + the booking look-ahead) at least;
                # estimate from the longest length measured, and skip what would overrun the cap.
                last = max(results, key=lambda r: r["days"])
                estimate = last["wall_s"] * (days + LOOKAHEAD_DAYS) / (last["days"] + LOOKAHEAD_DAYS)
                if elapsed + estimate > cap_s:
                    skipped.append(f"{days} days (estimated {estimate / 60:.0f} min from {last['days']} "
                                   f"days' {last['wall_s']:.0f} s × partitions {days + LOOKAHEAD_DAYS}/"
                                   f"{last['days'] + LOOKAHEAD_DAYS}; {elapsed / 60:.0f} min used of the "
                                   f"cap {cap_s / 60:.0f} min)")
                    continue
            figures = measure(days, scale, Path(tmp), sys.stderr)
            print(f"# {days} days: {json.dumps(figures)}", flush=True)
            results.append(figures)
    problems = report(results, main_days, command)
    print()
    print(f"Total {time.monotonic() - started:.0f} s. Extrapolation: every 'extrapolated' figure scales the "
          f"measured one to 60,000 patients by the method in its row; nothing is extrapolated in history.")
    for skip in skipped:
        print(f"   SKIPPED peak RSS at {skip}")
    for problem in problems:
        print(f"   PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
