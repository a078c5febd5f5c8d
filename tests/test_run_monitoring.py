"""A run worker that dies must not keep its pool slot (docs/deployment.md, "Run monitoring").

The cheap tests keep the `run_monitoring` block of every instance config we ship equal and
meaningful: dev (`dagster.yaml`), prod (`dagster.prod.yaml`) and the Helm values, whose chart writes
the same block from `dagsterDaemon.runMonitoring`.

The slow test does it for real: a temporary DAGSTER_HOME holding the shipped `dagster.yaml` (storage
moved into the temp dir, the monitoring intervals shortened), `dagster-daemon run` as a subprocess,
the Ivoris and HubSpot emulators, one practice's pipeline submitted to the queued run coordinator
(`dagster job launch`), its run worker SIGKILLed while it holds the `hubspot` slot in the middle of
the sync, then another practice's pipeline, which can only get through portal setup and sync once
that slot is free again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.paths import PROJECT_ROOT

DEV_YAML = PROJECT_ROOT / "dagster.yaml"
PROD_YAML = PROJECT_ROOT / "dagster.prod.yaml"
HELM_VALUES = PROJECT_ROOT / "deploy" / "helm" / "values.yaml"
BIN = Path(sys.executable).parent
HUBSPOT_POOL = "hubspot"
KILLED, NEXT = "mb", "rb"  # two practices of the emulator's `tiny` chain
WINDOW = ("2026-06-22", "2026-07-05")
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Short intervals for the test instance only; the shipped values are checked separately below.
TEST_POLL_S, TEST_FREE_AFTER_S = 1, 2
# dagster.yaml key -> the chart's key under dagsterDaemon.runMonitoring
HELM_KEYS = {"enabled": "enabled", "start_timeout_seconds": "startTimeoutSeconds",
             "cancel_timeout_seconds": "cancelTimeoutSeconds",
             "max_resume_run_attempts": "maxResumeRunAttempts",
             "poll_interval_seconds": "pollIntervalSeconds",
             "free_slots_after_run_end_seconds": "freeSlotsAfterRunEndSeconds"}

T = TypeVar("T")


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


# --- the shipped settings (cheap) ---------------------------------------------------------------


def test_dev_prod_and_helm_configure_the_same_run_monitoring() -> None:
    dev, prod = load_yaml(DEV_YAML)["run_monitoring"], load_yaml(PROD_YAML)["run_monitoring"]
    assert dev == prod
    # Every key spelled out, so no file leans on a default that differs between them (the chart's
    # own default for freeSlotsAfterRunEndSeconds is 0: slots of a dead run are never freed).
    assert set(dev) == set(HELM_KEYS)
    helm_daemon = load_yaml(HELM_VALUES)["dagsterDaemon"]
    assert helm_daemon["enabled"] is True  # the chart writes run_monitoring only with the daemon on
    helm = helm_daemon["runMonitoring"]
    assert set(helm) == set(HELM_KEYS.values())
    assert {key: helm[HELM_KEYS[key]] for key in dev} == dev


def test_the_shipped_monitoring_frees_slots_and_cannot_be_refused_at_load() -> None:
    settings = load_yaml(DEV_YAML)["run_monitoring"]
    assert settings["enabled"] is True
    assert settings["free_slots_after_run_end_seconds"] > 0  # 0 or absent: never freed
    assert 0 < settings["poll_interval_seconds"] <= settings["free_slots_after_run_end_seconds"]
    assert settings["start_timeout_seconds"] > 0 and settings["cancel_timeout_seconds"] > 0
    # The default run launcher cannot resume runs: Dagster refuses an instance that asks it to.
    assert settings["max_resume_run_attempts"] == 0


def test_the_shipped_dev_instance_runs_the_monitoring_daemon(tmp_path: Path) -> None:
    home = dev_home(tmp_path, shorten=False)
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert "MONITORING" in instance.get_required_daemon_types()
        assert instance.run_monitoring_settings == load_yaml(DEV_YAML)["run_monitoring"]
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


# --- a run worker killed for real ---------------------------------------------------------------


def dev_home(tmp_path: Path, *, shorten: bool = True) -> Path:
    """A DAGSTER_HOME holding the shipped dagster.yaml with its storage moved into `tmp_path` (and,
    with `shorten`, the monitoring intervals of this test)."""
    config = load_yaml(DEV_YAML)
    storage = tmp_path / "dagster_storage"
    config["storage"]["sqlite"]["base_dir"] = str(storage)
    config["local_artifact_storage"]["config"]["base_dir"] = str(storage)
    config["compute_logs"]["config"]["base_dir"] = str(storage / "compute_logs")
    if shorten:
        config["run_monitoring"].update(poll_interval_seconds=TEST_POLL_S,
                                        free_slots_after_run_end_seconds=TEST_FREE_AFTER_S)
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return home


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, *,
             daemon: subprocess.Popen[bytes] | None = None, interval_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if daemon is not None and daemon.poll() is not None:
            pytest.fail(f"the daemon exited ({daemon.returncode}) while waiting for {what}")
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def run_worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid the run worker reports in its first engine event ("Started process for run")."""
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records:
        match = re.search(r"Started process for run \(pid: (\d+)\)", record.event_log_entry.message)
        if match:
            return int(match.group(1))
    return None


def hubspot_holders(instance: DagsterInstance) -> set[str]:
    return instance.event_log_storage.get_concurrency_info(HUBSPOT_POOL).active_run_ids


def landed_upserts(emu: HubSpotEmulator) -> int:
    return sum(1 for r in emu.requests(method="POST", path_contains="/batch/upsert") if r.status == 200)


@pytest.fixture
def daemon_env(mapping_file: Path, hubspot: HubSpotEmulator, tmp_path: Path) -> dict[str, str]:
    """What the daemon, its code server and the run workers see: the emulators (the `hubspot` and
    `mapping_file` fixtures have set HubSpot's address and token and the Ivoris keys in os.environ),
    a SQLite warehouse and a data directory of this test."""
    return {**os.environ,
            "BISS_MAPPING_FILE": str(mapping_file),
            "BISS_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.sqlite'}",
            "BISS_DATA_DIR": str(tmp_path / "data"),
            "DAGSTER_HOME": str(dev_home(tmp_path))}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The shipped workspace.yaml, with its working directory made absolute."""
    config = load_yaml(PROJECT_ROOT / "workspace.yaml")
    for entry in config["load_from"]:
        entry["python_module"]["working_directory"] = str(PROJECT_ROOT)
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def launch(job: str, run_id: str, env: dict[str, str], workspace: Path) -> None:
    """Submit a run the way `dagster job launch` does: to the instance's (queued) run coordinator."""
    tags = {"dagster/asset_partition_range_start": WINDOW[0],
            "dagster/asset_partition_range_end": WINDOW[1]}
    completed = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", job, "--run-id", run_id,
         "--tags", json.dumps(tags), "--config-json", json.dumps(QUIET)],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]


@pytest.mark.slow
def test_a_killed_run_worker_gives_its_hubspot_slot_back_and_the_next_practice_syncs(
        daemon_env: dict[str, str], workspace: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        mapping_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(daemon_env["DAGSTER_HOME"])
    for name in ("BISS_MAPPING_FILE", "BISS_WAREHOUSE_URL", "BISS_DATA_DIR", "DAGSTER_HOME"):
        monkeypatch.setenv(name, daemon_env[name])
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.event_log_storage.supports_global_concurrency_limits
        reference = build_definitions(mapping_file).resolve_job_def("refresh_reference_data")
        assert reference.execute_in_process(instance=instance, run_config=QUIET).success

    # Slow HubSpot down (every call), so the sync is still under way when it is killed.
    hubspot.faults.latency_s = 0.5
    log = tmp_path / "daemon.log"
    with (log.open("wb") as out,
          DagsterInstance.from_config(str(home)) as instance):
        process = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                                   cwd=tmp_path, env=daemon_env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            timings = kill_and_recover(instance, process, hubspot, daemon_env, workspace)
        finally:
            stop_process_group(process)
    print("\nrun monitoring (poll {}s, free slots after {}s): kill → run failed {:.1f}s, "
          "→ hubspot slot freed {:.1f}s, → next practice's run finished {:.1f}s "
          "(its sync sent {} upserts)".format(TEST_POLL_S, TEST_FREE_AFTER_S, *timings))


def kill_and_recover(instance: DagsterInstance, daemon: subprocess.Popen[bytes], hubspot: HubSpotEmulator,
                     env: dict[str, str], workspace: Path) -> tuple[float, float, float, int]:
    killed_run, next_run = str(uuid.uuid4()), str(uuid.uuid4())
    launch(f"pipeline_{KILLED}", killed_run, env, workspace)
    assert instance.get_run_by_id(killed_run).status in (  # type: ignore[union-attr]
        DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)

    # Mid-sync: the run holds the hubspot slot and HubSpot has taken some of its upserts.
    wait_for("the first run to hold the hubspot slot in the middle of its sync",
             lambda: killed_run in hubspot_holders(instance) and landed_upserts(hubspot) > 0,
             timeout_s=300, daemon=daemon)
    pid = wait_for("the run worker's pid", lambda: run_worker_pid(instance, killed_run), timeout_s=10)
    assert instance.get_run_by_id(killed_run).status == DagsterRunStatus.STARTED  # type: ignore[union-attr]
    assert killed_run in hubspot_holders(instance), "the sync gave the slot back before the kill"
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    failed = wait_for("the killed run to be marked failed",
                      lambda: instance.get_run_by_id(killed_run).status == DagsterRunStatus.FAILURE,  # type: ignore[union-attr]
                      timeout_s=60, daemon=daemon)
    failed_at = time.monotonic()
    assert failed
    # Nothing but the monitoring daemon gives the slot back: it is still claimed after the failure.
    assert killed_run in hubspot_holders(instance), "the slot was freed before the run was failed"
    wait_for("the monitoring daemon to free the hubspot slot",
             lambda: killed_run not in hubspot_holders(instance), timeout_s=60, daemon=daemon)
    freed_at = time.monotonic()
    assert freed_at - failed_at >= TEST_FREE_AFTER_S * 0.75, "freed sooner than the configured delay"

    hubspot.faults.latency_s = 0.0
    upserts_before = landed_upserts(hubspot)
    launch(f"pipeline_{NEXT}", next_run, env, workspace)
    final = wait_for("the next practice's run to finish",
                     lambda: (lambda r: r.status if r.is_finished else None)(
                         instance.get_run_by_id(next_run)), timeout_s=400, daemon=daemon, interval_s=0.5)
    done_at = time.monotonic()
    assert final == DagsterRunStatus.SUCCESS, daemon_log_tail(env)
    next_deals = [d for d in hubspot.objects("deals")
                  if d["properties"].get("ivoris_deal_key", "").startswith(f"{NEXT.upper()}_")]
    assert next_deals, "the next practice's run succeeded without syncing any deal"
    assert not hubspot_holders(instance)
    return (failed_at - killed_at, freed_at - killed_at, done_at - killed_at,
            landed_upserts(hubspot) - upserts_before)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the daemon's own process group (the daemon, the code server it
    started, a run worker left over): only processes this test started."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a code server outliving the daemon


def daemon_log_tail(env: dict[str, str]) -> str:
    log = Path(env["DAGSTER_HOME"]).parent / "daemon.log"
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no daemon log)"
