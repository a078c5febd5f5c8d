"""How many runs does a backfill launched from the Dagster UI become?

Launches backfills through the GraphQL mutation the UI uses (`launchPartitionBackfill`) and
drives the backfill daemon's loop until the backfill is done, with runs executed in-process,
then counts the runs. Compares the per-practice daily layout with a date × practice
multi-partitioned layout (bench/partitioning_variants.py).

    .venv/bin/python -m bench.backfill_runs [--days 365]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterInstance
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.instance_for_test import instance_for_test
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import PythonFileTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

VARIANTS = Path(__file__).resolve().parent / "partitioning_variants.py"
log = logging.getLogger("bench.backfill_runs")


def launch_backfill_like_the_ui(instance: DagsterInstance, python_file: Path, attribute: str,
                                partition_names: list[str], asset_paths: list[list[str]]) -> str:
    with define_out_of_process_context(str(python_file), attribute, instance) as context:
        result = execute_dagster_graphql(context, LAUNCH_PARTITION_BACKFILL_MUTATION, variables={
            "backfillParams": {
                "partitionNames": partition_names,
                "assetSelection": [{"path": path} for path in asset_paths],
                "title": "bench backfill",
            }
        })
    answer = result.data["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {answer}")
    return answer["backfillId"]


def drive_backfill(instance: DagsterInstance, python_file: Path, attribute: str, backfill_id: str,
                   max_iterations: int = 2_000) -> int:
    """Run the daemon's backfill iterations until the backfill finishes; return iterations used."""
    target = PythonFileTarget(python_file=str(python_file), attribute=attribute,
                              working_directory=str(python_file.parent.parent), location_name=None)
    with create_test_daemon_workspace_context(target, instance) as workspace:
        for iteration in range(1, max_iterations + 1):
            list(execute_backfill_iteration(workspace, log))
            backfill = instance.get_backfill(backfill_id)
            if backfill is not None and backfill.status != BulkActionStatus.REQUESTED:
                return iteration
    raise RuntimeError(f"backfill {backfill_id} still running after {max_iterations} iterations")


def measure(python_file: Path, attribute: str, partition_names: list[str],
            asset_paths: list[list[str]]) -> dict[str, Any]:
    with instance_for_test(synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance:
        started = time.monotonic()
        backfill_id = launch_backfill_like_the_ui(instance, python_file, attribute, partition_names,
                                                  asset_paths)
        iterations = drive_backfill(instance, python_file, attribute, backfill_id)
        backfill = instance.get_backfill(backfill_id)
        return {
            "runs": instance.get_runs_count(),
            "status": backfill.status.value if backfill else "missing",
            "daemon_iterations": iterations,
            "seconds": round(time.monotonic() - started, 1),
        }


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set variables for the code server and run subprocesses, and restore them afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure_project_definitions(days: int, start: dt.date, practice: str = "mb") -> dict[str, Any]:
    """The real code location, runs really executed: raw extraction from the Ivoris emulator."""
    import tempfile

    from biss_emulators.ivoris import IvorisEmulator
    from biss_pipeline.domain import paths as settings
    from biss_pipeline.domain.mapping.practices import load_mapping_tabs
    from biss_pipeline.domain.warehouse import schema
    from biss_pipeline.domain.warehouse.store import dispose_engine
    from biss_pipeline.resources.warehouse import WarehouseResource

    definitions_file = settings.PROJECT_ROOT / "biss_pipeline" / "definitions.py"
    with tempfile.TemporaryDirectory() as tmp, IvorisEmulator(seed=7, size="tiny") as emulator:
        mapping = Path(tmp) / "mapping.yaml"
        practices = [{"id": s.site_id, "name": s.name, "key_prefix": s.key_prefix,
                      "ivoris_base_url": emulator.site_url(s.site_id),
                      "api_key_env": f"BENCH_IVORIS_KEY_{s.site_id.upper()}",
                      "history_start": start.isoformat(), "active": True} for s in emulator.sites]
        tabs = load_mapping_tabs(settings.PROJECT_ROOT / "config" / "mapping.yaml")
        mapping.write_text(yaml.safe_dump({**tabs, "practices": practices}, allow_unicode=True),
                           encoding="utf-8")
        warehouse_url = f"sqlite:///{tmp}/warehouse.sqlite"
        keys = {f"BENCH_IVORIS_KEY_{s.site_id.upper()}": s.api_key for s in emulator.sites}
        with environment(BISS_MAPPING_FILE=str(mapping), BISS_WAREHOUSE_URL=warehouse_url, **keys):
            figures = measure(definitions_file, "defs", dates(days, start),
                              [[practice, n] for n in ("raw_appointments", "raw_patients",
                                                       "raw_document_entries")])
        warehouse = WarehouseResource(url=warehouse_url).get()
        figures["raw_appointments"] = warehouse.count_rows(schema.raw_appointments, practice)
        figures["raw_document_entries"] = warehouse.count_rows(schema.raw_document_entries, practice)
        figures["expected_appointments"] = len(emulator.truth.appointments(
            practice, start, start + dt.timedelta(days=days - 1)))
        dispose_engine(warehouse_url)
        return figures


def dates(days: int, start: dt.date = dt.date(2025, 1, 1)) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--project", action="store_true",
                        help="measure the project's own definitions (runs execute against the emulator)")
    args = parser.parse_args()
    if args.project:
        start = dt.date(2025, 7, 1)
        figures = measure_project_definitions(args.days, start)
        print(f"project definitions, mb, {args.days} days from {start}: {figures['runs']} run(s), "
              f"{figures['status']}, {figures['seconds']}s", file=sys.stderr)
        return
    names = ("raw_appointments", "raw_patients", "raw_document_entries")
    practices = ("mb", "rb", "le")
    rows = [
        ("per-practice daily", "one practice", "per_practice", dates(args.days),
         [["mb", n] for n in names]),
        ("per-practice daily", "three practices", "per_practice", dates(args.days),
         [[p, n] for p in practices for n in names]),
        ("date x practice multi", "one practice", "multi_partitioned",
         [f"{d}|mb" for d in dates(args.days)], [["all", n] for n in names]),
        ("date x practice multi", "three practices", "multi_partitioned",
         [f"{d}|{p}" for d in dates(args.days) for p in practices], [["all", n] for n in names]),
    ]
    # Runs executed in-process print their event logs on stdout; the table goes to stderr.
    report = sys.stderr
    print(f"backfill of {args.days} days, 3 raw assets per practice, single_run backfill policy, "
          "launched via launchPartitionBackfill", file=report)
    print(f"{'layout':24} {'selection':16} {'runs':>6} {'status':>18} {'iterations':>10} {'seconds':>8}",
          file=report)
    for layout, selection, attribute, partitions, paths in rows:
        figures = measure(VARIANTS, attribute, partitions, paths)
        print(f"{layout:24} {selection:16} {figures['runs']:>6} {figures['status']:>18} "
              f"{figures['daemon_iterations']:>10} {figures['seconds']:>8}", file=report)


if __name__ == "__main__":
    main()
