"""Recovery time after an Ivoris outage and after a HubSpot outage (issue 16, closing note): from the
moment the system answers again to HubSpot matching a fault-free run, with the catch-up sensors at
their shipped 30 s interval, under the real daemon.

Setup: the emulators (Ivoris `tiny` chain, seed 7; a fresh HubSpot portal), a temporary DAGSTER_HOME
holding the shipped dagster.yaml (storage moved into the temp dir), `dagster-daemon run` over a
workspace loading `bench/recovery_definitions.py` (the project's definitions with short client retry
budgets, so a run during an outage fails in about a minute), and the sensors `mb_catch_up` and
`rb_catch_up` switched on. The reference is a fault-free in-process run of the same window on
emulators of its own.

1. HubSpot outage (every call answers 502): `pipeline_mb` is launched and fails in its sync; then
   HubSpot answers again (t = 0). Measured: until the catch-up run is requested, and until mb's
   records, associations and pipeline in HubSpot equal the reference's.
2. Ivoris outage of site rb (503): `pipeline_rb` fails in extraction; then rb answers (t = 0).
   Measured the same way for rb.

    .venv/bin/python -m bench.recovery_time          # about 10 minutes on 2 shared cores
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.keys import CATCH_UP_TAG

warnings.filterwarnings("ignore")

BIN = Path(sys.executable).parent
TOKEN = "recovery-bench-token"
WINDOW = ("2026-06-29", "2026-07-05")
RANGE = {"dagster/asset_partition_range_start": WINDOW[0], "dagster/asset_partition_range_end": WINDOW[1]}
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
PREFIXES = {"mb": "MB_", "rb": "RB_"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_mapping(ivoris: IvorisEmulator, path: Path) -> Path:
    tabs = load_yaml(PROJECT_ROOT / "config" / "mapping.yaml")
    tabs["practices"] = [
        {"id": s.site_id, "name": s.name, "key_prefix": s.key_prefix,
         "ivoris_base_url": ivoris.site_url(s.site_id),
         "api_key_env": f"BENCH_IVORIS_KEY_{s.site_id.upper()}", "history_start": "2026-01-01",
         "active": True}
        for s in ivoris.sites]
    path.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for site in ivoris.sites:
        os.environ[f"BENCH_IVORIS_KEY_{site.site_id.upper()}"] = site.api_key
    return path


def practice_portal(emu: HubSpotEmulator, practice: str) -> dict[str, Any]:
    """The portal restricted to one practice's keys (ids and timestamps left out, as the fault suite
    compares portals)."""
    from tests.faults.conftest import portal_snapshot

    prefix = PREFIXES[practice]
    snapshot = portal_snapshot(emu)
    restricted: dict[str, Any] = {"pipelines": snapshot["pipelines"]}
    for section, value in snapshot.items():
        if isinstance(value, dict) and section not in ("duplicates", "unkeyed"):
            restricted[section] = {k: v for k, v in value.items() if str(k).startswith(prefix)}
        elif isinstance(value, list) and section != "pipelines":
            restricted[section] = [pair for pair in value if str(pair[0]).startswith(prefix)]
    restricted["duplicates"] = {n: {k: c for k, c in d.items() if str(k).startswith(prefix)}
                                for n, d in snapshot["duplicates"].items()}
    return restricted


def reference_portals(directory: Path) -> dict[str, dict[str, Any]]:
    """A fault-free run of mb and rb over WINDOW, in-process, on emulators of its own."""
    ivoris = IvorisEmulator(seed=7, size="tiny").start()
    hubspot = HubSpotEmulator(token=TOKEN, search_index_delay_s=0.2).start()
    try:
        os.environ.update(HUBSPOT_ACCESS_TOKEN=TOKEN, BISS_HUBSPOT_HOST=hubspot.base_url,
                          BISS_WAREHOUSE_URL=f"sqlite:///{directory / 'reference.sqlite'}",
                          BISS_DATA_DIR=str(directory / "reference_data"))
        defs = build_definitions(write_mapping(ivoris, directory / "reference_mapping.yaml"))
        with DagsterInstance.ephemeral() as instance:
            assert defs.resolve_job_def("refresh_reference_data").execute_in_process(
                instance=instance, run_config=QUIET).success
            for practice in PREFIXES:
                assert defs.resolve_job_def(f"pipeline_{practice}").execute_in_process(
                    instance=instance, tags=RANGE, run_config=QUIET).success
        return {practice: practice_portal(hubspot, practice) for practice in PREFIXES}
    finally:
        hubspot.stop()
        ivoris.stop()


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def cli(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([str(BIN / "dagster"), *args], env=env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed: {done.stdout[-1500:]}{done.stderr[-3000:]}")


def launch(job: str, env: dict[str, str], workspace: Path) -> str:
    run_id = str(uuid.uuid4())
    cli("job", "launch", "-w", str(workspace), "-j", job, "--run-id", run_id, "--tags", json.dumps(RANGE),
        "--config-json", json.dumps(QUIET), env=env)
    return run_id


def catch_up_requested(instance: DagsterInstance, practice: str, after: float) -> bool:
    runs = instance.get_run_records(RunsFilter(job_name=f"pipeline_{practice}", tags={CATCH_UP_TAG: "true"}))
    return any(r.create_timestamp.timestamp() >= after for r in runs)


def scenario(name: str, practice: str, instance: DagsterInstance, env: dict[str, str], workspace: Path,
             reference: dict[str, Any], hubspot: HubSpotEmulator, start: Callable[[], None],
             end: Callable[[], None]) -> dict[str, float]:
    start()
    run_id = launch(f"pipeline_{practice}", env, workspace)
    began = time.monotonic()
    def run_failed() -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.status == DagsterRunStatus.FAILURE

    wait_for(f"{name}: the run to fail", run_failed, timeout_s=600)
    failed_after = time.monotonic() - began
    end()
    answered_wall, answered = time.time(), time.monotonic()
    wait_for(f"{name}: the catch-up run", lambda: catch_up_requested(instance, practice, answered_wall - 1),
             timeout_s=300)
    requested = time.monotonic() - answered
    wait_for(f"{name}: HubSpot to match the reference",
             lambda: practice_portal(hubspot, practice) == reference, timeout_s=600, interval_s=1.0)
    matched = time.monotonic() - answered

    # HubSpot matches while the run still finishes its sync (ledger) and the KPIs: wait for its end, so
    # stopping the daemon does not interrupt it, and say how it ended.
    def catch_up_finished() -> DagsterRunStatus | None:
        runs = instance.get_runs(RunsFilter(job_name=f"pipeline_{practice}", tags={CATCH_UP_TAG: "true"}),
                                 limit=1)
        return runs[0].status if runs and runs[0].is_finished else None

    status = wait_for(f"{name}: the catch-up run to finish", catch_up_finished, timeout_s=600)
    finished = time.monotonic() - answered
    print(f"{name}: run failed {failed_after:.0f} s after launch; after the system answered: catch-up run "
          f"requested {requested:.1f} s, HubSpot matched the fault-free run {matched:.1f} s, the catch-up "
          f"run ended {finished:.1f} s ({status.value})", flush=True)
    return {"requested_s": requested, "matched_s": matched, "run_finished_s": finished}


def main() -> int:
    directory = Path(tempfile.mkdtemp(prefix="biss_recovery_"))
    print(f"dagster bench: recovery time, {platform.node()}, {os.cpu_count()} CPUs, temp {directory}",
          flush=True)
    t0 = time.monotonic()
    reference = reference_portals(directory)
    print(f"reference (fault-free, in-process): {time.monotonic() - t0:.0f} s, mb deals "
          f"{len(reference['mb']['deals'])}, rb deals {len(reference['rb']['deals'])}", flush=True)

    from tests.test_run_monitoring import dev_home

    ivoris = IvorisEmulator(seed=7, size="tiny").start()
    hubspot = HubSpotEmulator(token=TOKEN, search_index_delay_s=0.2).start()
    daemon = None
    try:
        mapping = write_mapping(ivoris, directory / "mapping.yaml")
        home = dev_home(directory, shorten=False)
        env = {**os.environ, "BISS_MAPPING_FILE": str(mapping), "HUBSPOT_ACCESS_TOKEN": TOKEN,
               "BISS_HUBSPOT_HOST": hubspot.base_url,
               "BISS_WAREHOUSE_URL": f"sqlite:///{directory / 'w.sqlite'}",
               "BISS_DATA_DIR": str(directory / "data"), "DAGSTER_HOME": str(home)}
        os.environ.update(env)
        workspace = directory / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {
            "module_name": "bench.recovery_definitions", "working_directory": str(PROJECT_ROOT),
            "location_name": "biss_pipeline"}}]}), encoding="utf-8")
        with DagsterInstance.get() as instance:
            assert build_definitions(mapping).resolve_job_def("refresh_reference_data").execute_in_process(
                instance=instance, run_config=QUIET).success
            log = (directory / "daemon.log").open("wb")
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                                      cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            for practice in PREFIXES:
                cli("sensor", "start", f"{practice}_catch_up", "-w", str(workspace), env=env)

            def hubspot_down() -> None:
                hubspot.faults.random_502_rate = 1.0

            def hubspot_up() -> None:
                hubspot.faults.random_502_rate = 0.0

            results = {
                "hubspot": scenario("HubSpot outage (mb)", "mb", instance, env, workspace, reference["mb"],
                                    hubspot, hubspot_down, hubspot_up),
                "ivoris": scenario("Ivoris outage (rb)", "rb", instance, env, workspace, reference["rb"],
                                   hubspot, lambda: ivoris.set_outage("rb"),
                                   lambda: ivoris.clear_outage("rb")),
            }
        print(f"total {time.monotonic() - t0:.0f} s; {json.dumps(results)}", flush=True)
    finally:
        if daemon is not None:
            import signal
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
        hubspot.stop()
        ivoris.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
