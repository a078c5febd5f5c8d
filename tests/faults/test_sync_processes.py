"""The sync job in real processes, on a PostgreSQL warehouse: a run killed with SIGKILL in the middle
of its writes, then re-run; and two runs started at the same moment. Both end with exactly the
fault-free reference portal, one object per Ivoris key and a consistent ledger.

The processes run `tests/faults/run_job.py` (`execute_in_process` on a persistent Dagster instance in
a temporary DAGSTER_HOME), with the warehouse URL and HubSpot's address and token in their
environment, as a deployment's run worker has them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.paths import PROJECT_ROOT
from tests.faults.conftest import (
    SYNC_JOB,
    Reference,
    assert_matches_reference,
    copy_warehouse,
    fault_definitions,
    ledger,
    run_job,
    sync_metadata,
)

pytestmark = [pytest.mark.faults, pytest.mark.postgres]


def dagster_home(tmp_path: Path, name: str = "dagster_home") -> Path:
    """A persistent instance (SQLite storage in the directory), created before any run uses it."""
    home = tmp_path / name
    home.mkdir()
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs()
    return home


def start_run(reference: Reference, home: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.faults.run_job", str(reference.mapping_file), SYNC_JOB, *args],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def outcome(log: Path) -> dict[str, Any]:
    """The run's JSON lines: `started` (when its run began) merged with the final outcome."""
    text = log.read_text(errors="replace")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert len(lines) == 2, text[-3000:]
    return {**lines[0], **lines[1]}


def landed_upserts(emu: HubSpotEmulator) -> int:
    return sum(1 for r in emu.requests(method="POST", path_contains="/batch/upsert") if r.status == 200)


def test_a_sync_killed_mid_run_is_resumed_by_the_next_run(
        reference: Reference, postgres_url: str, hubspot: HubSpotEmulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    copy_warehouse(reference.warehouse_url, postgres_url)
    monkeypatch.setenv("BISS_WAREHOUSE_URL", postgres_url)
    home = dagster_home(tmp_path)
    hubspot.faults.latency_s = 0.15  # slow enough to be caught in the middle
    log = tmp_path / "killed-run.log"

    process = start_run(reference, home, log, "--batch-size", "3")
    try:
        deadline = time.monotonic() + 180
        while landed_upserts(hubspot) < 12 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the sync finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.5)  # a request in flight at the kill may still commit in HubSpot: let it land

    killed_at = landed_upserts(hubspot)
    half_done = ledger(postgres_url)
    objects = sum(len(hubspot.objects(name)) for name in ("contacts", "deals", "appointments"))
    assert 0 < len(half_done) < sum(reference.counts[n] for n in ("contacts", "deals", "appointments"))
    assert 0 < objects < sum(reference.counts[n] for n in ("contacts", "deals", "appointments"))
    with DagsterInstance.from_config(str(home)) as instance:
        killed = instance.get_runs()
        assert [run.status for run in killed] == [DagsterRunStatus.STARTED]  # it never got to finish

        hubspot.faults.clear()
        log_mark = len(hubspot.request_log)
        result = run_job(fault_definitions(reference.mapping_file), SYNC_JOB, instance, window=False)
    assert result.success
    metadata = sync_metadata(result)
    # resumed: what HubSpot had confirmed before the kill was not sent again
    assert metadata["contacts_unchanged"] > 0 and metadata["contacts_create"] < reference.counts["contacts"]
    resent = sum(1 for r in hubspot.request_log[log_mark:] if r.path.endswith("/batch/upsert"))
    compared = assert_matches_reference(hubspot, postgres_url, reference.mapping_file, reference)
    print(f"\nSIGKILL: killed after {killed_at} upserts landed ({objects} objects in HubSpot, "
          f"{len(half_done)} ledger rows); re-run: {resent} upserts, contacts unchanged "
          f"{metadata['contacts_unchanged']}, hubspot_updated (sent again, already there) "
          f"{sum(metadata[f'{n}_hubspot_updated'] for n in ('contacts', 'deals', 'appointments'))}; "
          f"compared {compared}")


def test_two_sync_runs_started_together_leave_one_object_per_key(
        reference: Reference, postgres_url: str, hubspot: HubSpotEmulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Production keeps HubSpot writers apart with the `hubspot` pool (limit 1, dagster.yaml); this
    instance has no pool limit, so both runs race through portal setup and sync on purpose."""
    copy_warehouse(reference.warehouse_url, postgres_url)
    monkeypatch.setenv("BISS_WAREHOUSE_URL", postgres_url)
    home = dagster_home(tmp_path)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    hubspot.faults.latency_s = 0.02  # a little slower than loopback, so the runs overlap for longer

    logs = [tmp_path / f"run-{n}.log" for n in (1, 2)]
    processes = [start_run(reference, home, log, "--batch-size", "10", "--barrier", str(barrier))
                 for log in logs]
    try:
        codes = [p.wait(timeout=240) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    outcomes = [outcome(log) for log in logs]
    assert codes == [0, 0] and all(o["success"] for o in outcomes), outcomes

    # both runs began together and did real work at the same time: each one sent upserts
    assert abs(outcomes[0]["at"] - outcomes[1]["at"]) < 1.0, outcomes
    assert all(o["write_calls"] > 0 for o in outcomes), outcomes
    with DagsterInstance.from_config(str(home)) as instance:
        assert [run.status for run in instance.get_runs()] == [DagsterRunStatus.SUCCESS] * 2
    pipeline_creates = [r.status for r in hubspot.requests(method="POST")
                        if r.path == "/crm/v3/pipelines/deals"]
    compared = assert_matches_reference(hubspot, postgres_url, reference.mapping_file, reference)
    apart = abs(outcomes[0]["at"] - outcomes[1]["at"])
    print(f"\nconcurrent runs: pipeline creates answered {pipeline_creates}, started {apart:.3f}s apart, "
          f"write calls {[o['write_calls'] for o in outcomes]}, "
          f"retries {[o['calls']['retries'] for o in outcomes]}; compared {compared}")
