"""The pipeline's own logs reach the run's event log (what a person reads in the UI): retries with
readable delays and per-chunk progress, through Dagster's managed Python loggers as every shipped
instance config sets them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.ivoris import FaultConfig, IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.paths import PROJECT_ROOT
from tests.assets.test_ivoris_raw import RANGE_END, RANGE_START, range_tags


def shipped(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_every_shipped_instance_config_manages_the_pipeline_loggers() -> None:
    dev = shipped(PROJECT_ROOT / "dagster.yaml")["python_logs"]
    prod = shipped(PROJECT_ROOT / "dagster.prod.yaml")["python_logs"]
    helm = shipped(PROJECT_ROOT / "deploy" / "helm" / "values.yaml")["pythonLogs"]
    assert dev == prod == {"managed_python_loggers": ["biss_pipeline"], "python_log_level": "INFO"}
    assert helm == {"managedPythonLoggers": ["biss_pipeline"], "pythonLogLevel": "INFO"}


def test_retries_and_chunk_progress_show_in_the_run_log(
        warehouse_url: str, mapping_file: Path, ivoris: IvorisEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", warehouse_url)
    ivoris.faults = FaultConfig(random_504_rate=0.3, seed=3)
    defs = build_definitions(mapping_file)
    python_logs = shipped(PROJECT_ROOT / "dagster.yaml")["python_logs"]
    with instance_for_test(overrides={"python_logs": python_logs}) as instance:
        assert defs.resolve_job_def("refresh_reference_data").execute_in_process(instance=instance).success
        result = defs.resolve_job_def("extract_mb").execute_in_process(
            instance=instance, tags=range_tags(RANGE_START, RANGE_END))
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)
                    if entry.dagster_event is None]
    retries = [m for m in messages if "HTTP 504, retry" in m]
    chunks = [m for m in messages if "raw_appointments chunk" in m]
    assert retries, "no Ivoris retry reached the run log"
    assert all(m.split(" in ")[-1].rstrip("s").replace(".", "", 1).isdigit() for m in retries)
    days = (RANGE_END - RANGE_START).days + 1
    assert len(chunks) == -(-days // 7)  # chunk_days 7: one line per chunk, "chunk n/N: first..last"
    assert chunks[0].startswith(f"mb raw_appointments chunk 1/{len(chunks)}: {RANGE_START.isoformat()}..")
