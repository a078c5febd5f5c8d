"""The definitions' graph as a snapshot (asset keys, groups, parents, kinds, owners, checks, jobs and
what they select, schedules, sensors, resources), so an unintended change to what the UI shows fails
CI. After an intended change, rewrite it with `BISS_UPDATE_SNAPSHOT=1 .venv/bin/pytest
tests/test_definitions_snapshot.py` and commit the diff with the change that caused it."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from dagster import Definitions

from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.paths import PROJECT_ROOT

SNAPSHOT = PROJECT_ROOT / "tests" / "snapshots" / "definitions.json"
MAPPING = PROJECT_ROOT / "config" / "mapping.yaml"


def definitions_snapshot(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "parents": sorted(parent.to_user_string() for parent in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "partitioned": node.partitions_def is not None,
            "pools": sorted(node.pools or ()),
        }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue  # Dagster's implicit asset job
        selected = job.asset_layer.executable_asset_keys if job.asset_layer else set()
        jobs[job.name] = sorted(k.to_user_string() for k in selected)
    return {
        "assets": assets,
        "checks": sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys),
        "jobs": jobs,
        "schedules": {s.name: [s.job_name, s.cron_schedule] for s in sorted(defs.schedules or [],
                                                                           key=lambda s: s.name)},
        "sensors": sorted(s.name for s in defs.sensors or []),
        "resources": sorted(defs.resources or {}),
    }


def test_the_definitions_match_the_snapshot() -> None:
    current = definitions_snapshot(build_definitions(MAPPING))
    text = json.dumps(current, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("BISS_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert json.loads(SNAPSHOT.read_text(encoding="utf-8")) == current, (
        "the definitions changed; if intended, rewrite the snapshot (see the module docstring)")


def test_dg_lists_the_code_location_from_the_repository_root() -> None:
    dg = PROJECT_ROOT / ".venv" / "bin" / "dg"
    listing = subprocess.run([str(dg), "list", "defs", "--json"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=300, check=False)
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert "hubspot/mb/sync" in listing.stdout and "pipeline_mb" in listing.stdout
