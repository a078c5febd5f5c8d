"""`make demo`: the whole pipeline on the embedded defaults, with no credentials and no servers.

Starts the Ivoris emulator where the shipped mapping expects it (unless one already answers
there), runs the Dagster jobs for a demo window against a persistent Dagster instance (so
`make dev` shows the runs afterwards) and the SQLite warehouse, and prints what landed.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from contextlib import ExitStack
from urllib.parse import urlsplit

import httpx

from biss_pipeline.settings import PROJECT_ROOT, data_dir, mapping_file

DEMO_SEED = 7
# The run's full event log is in the Dagster UI; the terminal shows progress lines only.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The emulator's demo data runs from April to the end of June 2026 with bookings six weeks
# ahead; the window covers the last four weeks of history and two weeks of bookings.
DEMO_WINDOW = (dt.date(2026, 6, 3), dt.date(2026, 7, 14))


def _say(message: str) -> None:
    print(message, flush=True)


def _ivoris_answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/practices", timeout=2.0).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def _start_ivoris(stack: ExitStack, practices: list) -> None:
    from biss_emulators.ivoris import IvorisEmulator

    first = urlsplit(practices[0].ivoris_base_url)
    if _ivoris_answers(practices[0].ivoris_base_url):
        _say(f"  Ivoris: using the server already answering at {first.scheme}://{first.netloc}")
        return
    emulator = IvorisEmulator(seed=DEMO_SEED, size="demo", host=first.hostname or "127.0.0.1",
                              port=first.port).start()
    stack.callback(emulator.stop)
    for site in emulator.sites:
        os.environ.setdefault(f"IVORIS_API_KEY_{site.site_id.upper()}", site.api_key)
    _say(f"  Ivoris emulator (demo size, seed {DEMO_SEED}) on {emulator.base_url}")


def run_demo() -> int:
    os.chdir(PROJECT_ROOT)  # dagster.yaml keeps its storage relative to the repository root
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    data_dir()

    from dagster import DagsterInstance

    from biss_pipeline.config.practices import load_practices
    from biss_pipeline.definitions import build_definitions, extraction_job_name, warehouse_resource
    from biss_pipeline.warehouse import schema

    started = time.monotonic()
    practices = [p for p in load_practices(mapping_file()) if p.active]
    _say(f"BISS pipeline demo: {len(practices)} practices, window "
         f"{DEMO_WINDOW[0].isoformat()} .. {DEMO_WINDOW[1].isoformat()}")
    with ExitStack() as stack:
        _say("[1/3] starting emulators")
        _start_ivoris(stack, practices)
        defs = build_definitions()
        instance = stack.enter_context(DagsterInstance.get())

        _say("[2/3] reference data (practices, chairs, appointment types)")
        if not defs.resolve_job_def("refresh_reference_data").execute_in_process(
                instance=instance, run_config=QUIET_RUN_CONFIG).success:
            _say("reference data failed; see the run in the Dagster UI")
            return 1

        _say("[3/3] raw extraction, one run per practice for the whole window")
        tags = {"dagster/asset_partition_range_start": DEMO_WINDOW[0].isoformat(),
                "dagster/asset_partition_range_end": DEMO_WINDOW[1].isoformat()}
        for practice in practices:
            step_started = time.monotonic()
            result = defs.resolve_job_def(extraction_job_name(practice)).execute_in_process(
                instance=instance, tags=tags, run_config=QUIET_RUN_CONFIG, raise_on_error=False)
            state = "ok" if result.success else "FAILED"
            _say(f"  {practice.practice_id}: {state} in {time.monotonic() - step_started:.1f}s "
                 f"(run {result.run_id[:8]})")
            if not result.success:
                return 1

        warehouse = warehouse_resource().get()
        _say("")
        _say(f"Warehouse {warehouse_resource().resolved_url()}")
        _say(f"  {'table':24} " + " ".join(f"{p.practice_id:>8}" for p in practices) + f" {'total':>9}")
        for table in (schema.practices, schema.chairs, schema.appointment_types, schema.raw_appointments,
                      schema.raw_patients, schema.raw_document_entries, schema.quarantine):
            counts = [warehouse.count_rows(table, p.practice_id) for p in practices]
            _say(f"  {table.name:24} " + " ".join(f"{c:>8}" for c in counts) + f" {sum(counts):>9}")
        _say(f"done in {time.monotonic() - started:.1f}s; `make dev` opens the Dagster UI on these runs")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
