"""Full-history backfill: three practices, up to a year, Ivoris → warehouse → HubSpot (issue "Benchmarks",
measure 4).

The parent process serves both emulators (Ivoris `bench` preset: 3 practices × 365 days, 1,036,503
document entries; HubSpot at Professional limits). For each history length it starts a fresh child
process that does what a data engineer does in the UI on a new installation:

1. runs `refresh_reference_data` (practices, chairs, appointment types);
2. launches one backfill over the window through the GraphQL mutation the UI uses
   (`launchPartitionBackfill`) selecting every asset of the three practices' pipeline jobs, and
   drives the backfill daemon's loop until it ends; runs execute in the child process.

Each length gets a fresh warehouse, Dagster instance and HubSpot portal. The child reports wall
times, runs launched, rows landed and its own peak RSS; the parent prints the table, including
the cost per 10,000 records at each length, so growth with history shows as a ratio.

    .venv/bin/python -m bench.full_history [--days 30 90 365] [--tier professional]
"""

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

CHILD_FLAG = "--child"
TOKEN = "bench-history-token"
PRACTICES = ("mb", "rb", "le")
# The bench preset's fixed "now" (biss_emulators.ivoris.sizes.DEFAULT_CLOCK): histories end here.
HISTORY_END = dt.date(2026, 6, 30)
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
READ_ONLY_POSTS = ("/search", "/batch/read", "/access-token-info")


def window(days: int) -> tuple[dt.date, dt.date]:
    return HISTORY_END - dt.timedelta(days=days - 1), HISTORY_END


def write_mapping(path: Path, ivoris_base_url: str, start: dt.date) -> None:
    from biss_emulators.ivoris.catalogue import SITE_DEFINITIONS
    from biss_pipeline.domain import paths as settings
    from biss_pipeline.domain.mapping.practices import load_mapping_tabs

    practices = [{"id": d.site_id, "name": d.name, "key_prefix": d.key_prefix,
                  "ivoris_base_url": f"{ivoris_base_url}/sites/{d.site_id}",
                  "api_key_env": f"BENCH_IVORIS_KEY_{d.site_id.upper()}",
                  "history_start": start.isoformat(), "active": True}
                 for d in SITE_DEFINITIONS if d.site_id in PRACTICES]
    tabs = load_mapping_tabs(settings.PROJECT_ROOT / "config" / "mapping.yaml")
    path.write_text(yaml.safe_dump({**tabs, "practices": practices}, allow_unicode=True), encoding="utf-8")


# --- child: one history length, fresh everything -------------------------------------------------

def run_child(days: int, out: Path) -> None:
    import logging

    from dagster._core.instance_for_test import instance_for_test

    from bench.backfill_runs import drive_backfill, launch_backfill_like_the_ui
    from biss_pipeline.definitions import build_definitions
    from biss_pipeline.domain import paths as settings
    from biss_pipeline.domain.warehouse import schema
    from biss_pipeline.resources.warehouse import WarehouseResource

    logging.getLogger("bench.backfill_runs").setLevel(logging.WARNING)
    start, end = window(days)
    definitions_file = settings.PROJECT_ROOT / "biss_pipeline" / "definitions.py"
    figures: dict[str, Any] = {"days": days, "start": start.isoformat(), "end": end.isoformat()}
    with instance_for_test(synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance:
        defs = build_definitions()
        started = time.monotonic()
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        reference = defs.resolve_job_def("refresh_reference_data").execute_in_process(
            instance=instance, run_config=quiet)
        figures["reference_s"] = round(time.monotonic() - started, 1)
        if not reference.success:
            raise RuntimeError("refresh_reference_data failed")

        asset_paths = sorted({tuple(key.path) for p in PRACTICES for key in
                              defs.resolve_job_def(f"pipeline_{p}").asset_layer.selected_asset_keys})
        partitions = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
        runs_before = instance.get_runs_count()
        started = time.monotonic()
        backfill_id = launch_backfill_like_the_ui(instance, definitions_file, "defs", partitions,
                                                  [list(p) for p in asset_paths])
        figures["daemon_iterations"] = drive_backfill(instance, definitions_file, "defs", backfill_id)
        figures["backfill_s"] = round(time.monotonic() - started, 1)
        backfill = instance.get_backfill(backfill_id)
        figures["backfill_status"] = backfill.status.value if backfill else "missing"
        runs = instance.get_runs()[: instance.get_runs_count() - runs_before]
        figures["runs"] = len(runs)
        figures["runs_failed"] = sum(1 for r in runs if r.status.value != "SUCCESS")
        figures["assets_selected"] = len(asset_paths)

    warehouse = WarehouseResource(url=os.environ["BISS_WAREHOUSE_URL"]).get()
    counts = {name: sum(warehouse.count_rows(getattr(schema, name), p) for p in PRACTICES)
              for name in ("raw_appointments", "raw_patients", "raw_document_entries",
                           "raw_repaired_document_entries", "deals", "quarantine")}
    figures["rows"] = counts
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.write_text(json.dumps(figures), encoding="utf-8")


# --- parent: emulators, one child per length, the table ------------------------------------------

def measure(days: int, ivoris: Any, hubspot: Any, tmp: Path) -> dict[str, Any]:
    start, _ = window(days)
    workdir = tmp / f"days-{days}"
    workdir.mkdir()
    mapping = workdir / "mapping.yaml"
    write_mapping(mapping, ivoris.base_url, start)
    out = workdir / "figures.json"
    env = {**os.environ,
           "BISS_MAPPING_FILE": str(mapping),
           "BISS_WAREHOUSE_URL": f"sqlite:///{workdir / 'warehouse.sqlite'}",
           "BISS_DATA_DIR": str(workdir),
           "BISS_HUBSPOT_HOST": hubspot.base_url,
           "HUBSPOT_ACCESS_TOKEN": TOKEN,
           **{f"BENCH_IVORIS_KEY_{s.site_id.upper()}": s.api_key for s in ivoris.sites}}
    hubspot.reset()  # a fresh portal and an empty request log
    ivoris_before = ivoris.stats()["requests"]
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-m", "bench.full_history", CHILD_FLAG, str(days), str(out)],
                           env=env, cwd=Path(__file__).resolve().parent.parent,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - started
    if child.returncode != 0:
        sys.stderr.write(child.stderr[-4000:])
        raise RuntimeError(f"child for {days} days failed with exit code {child.returncode}")
    figures = json.loads(out.read_text(encoding="utf-8"))
    figures["wall_s"] = round(wall, 1)
    ivoris_after = ivoris.stats()["requests"]
    figures["ivoris_requests"] = sum(ivoris_after.values()) - sum(ivoris_before.values())
    api = [r for r in hubspot.request_log if not r.path.startswith("/_emulator")]
    figures["hubspot_calls"] = len(api)
    figures["hubspot_writes"] = sum(1 for r in api if r.method in WRITE_METHODS
                                    and not any(r.path.endswith(s) for s in READ_ONLY_POSTS))
    figures["hubspot_objects"] = {kind: len(hubspot.objects(kind))
                                  for kind in ("contacts", "deals", "appointments")}
    first, last = window(days)
    figures["expected_entries"] = sum(len(ivoris.truth.document_entries(p, first, last)) for p in PRACTICES)
    return figures


def entries(figures: dict[str, Any]) -> int:
    return figures["rows"]["raw_document_entries"] + figures["rows"]["raw_repaired_document_entries"]


def records(figures: dict[str, Any]) -> int:
    rows = figures["rows"]
    return (rows["raw_appointments"] + rows["raw_patients"] + rows["raw_document_entries"]
            + rows["raw_repaired_document_entries"])


def print_table(results: list[dict[str, Any]]) -> None:
    header = (f"{'days':>5} {'entries':>10} {'records':>10} {'runs':>5} {'wall s':>8} {'backfill s':>10} "
              f"{'peak RSS MB':>11} {'s/10k rec':>9} {'vs shortest':>11} {'HubSpot objects':>16} "
              f"{'HS calls':>8}")
    print(header)
    base = None
    for f in results:
        per_10k = f["wall_s"] / (records(f) / 10_000)
        base = base or per_10k
        objects = sum(f["hubspot_objects"].values())
        print(f"{f['days']:>5} {entries(f):>10,} "
              f"{records(f):>10,} {f['runs']:>5} {f['wall_s']:>8.1f} {f['backfill_s']:>10.1f} "
              f"{f['peak_rss_mb']:>11.1f} {per_10k:>9.2f} {per_10k / base:>10.2f}× {objects:>16,} "
              f"{f['hubspot_calls']:>8,}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == CHILD_FLAG:
        run_child(int(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, nargs="+", default=[30, 90, 365],
                        help="history lengths to measure, each ending 2026-06-30 (default 30 90 365)")
    parser.add_argument("--tier", default="professional",
                        help="HubSpot rate-limit tier (default professional)")
    args = parser.parse_args(argv)
    if any(not 1 <= d <= 365 for d in args.days):
        parser.error("--days must be within 1..365 (the bench preset holds one year)")

    from biss_emulators.hubspot import HubSpotEmulator
    from biss_emulators.ivoris import IvorisEmulator

    print(f"# .venv/bin/python -m bench.full_history {' '.join(argv)}".rstrip())
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"# HubSpot emulator tier {args.tier}; Ivoris emulator preset 'bench' (seed 7), no faults; "
          "warehouse SQLite; runs execute in one child process per length")
    results = []
    failed = False
    with (tempfile.TemporaryDirectory(prefix="bench-history-") as tmp,
          IvorisEmulator(seed=7, size="bench") as ivoris,
          HubSpotEmulator(token=TOKEN, tier=args.tier, search_index_delay_s=0.0) as hubspot):
        for days in args.days:
            figures = measure(days, ivoris, hubspot, Path(tmp))
            results.append(figures)
            print(f"# {days} days: {json.dumps(figures)}", flush=True)
            landed = entries(figures)
            if landed != figures["expected_entries"] or figures["runs_failed"] or \
                    figures["backfill_status"] != "COMPLETED_SUCCESS":
                print(f"   PROBLEM at {days} days: {landed} entries landed of {figures['expected_entries']}, "
                      f"{figures['runs_failed']} failed run(s), backfill {figures['backfill_status']}")
                failed = True
    print()
    print_table(results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
