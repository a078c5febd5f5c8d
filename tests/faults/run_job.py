"""Run one job of the fault suite's definitions in this process, as a deployment's run worker would:
`execute_in_process` on the persistent Dagster instance of `$DAGSTER_HOME`.

    python -m tests.faults.run_job MAPPING_FILE JOB [--window] [--batch-size N] [--barrier DIR --parties N]

The warehouse (`BISS_WAREHOUSE_URL`), HubSpot (`HUBSPOT_ACCESS_TOKEN`, `BISS_HUBSPOT_HOST`) and the
Ivoris keys come from the environment, as in production. With `--barrier`, the process signs in to
that directory after the (slow) imports and starts its run once `--parties` processes have signed in,
so several processes start their runs together. The last stdout line is JSON: success, run id, and
the sync's write calls and call statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dagster import DagsterInstance

from tests.faults.conftest import fault_definitions, run_job, sync_metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mapping_file", type=Path)
    parser.add_argument("job")
    parser.add_argument("--window", action="store_true", help="tag the run with the suite's window")
    parser.add_argument("--batch-size", type=int, default=None, help="HubSpot inputs per batch")
    parser.add_argument("--barrier", type=Path, default=None, help="directory to meet the other runs in")
    parser.add_argument("--parties", type=int, default=2, help="processes meeting at the barrier")
    args = parser.parse_args(argv)

    defs = fault_definitions(args.mapping_file, hubspot_batch_size=args.batch_size)
    defs.resolve_job_def(args.job)  # build the job before waiting, so the start is the run's
    with DagsterInstance.get() as instance:
        if args.barrier is not None:
            (args.barrier / f"ready-{os.getpid()}").touch()
            deadline = time.monotonic() + 120
            while len(list(args.barrier.glob("ready-*"))) < args.parties and time.monotonic() < deadline:
                time.sleep(0.005)
        print(json.dumps({"event": "started", "at": time.time()}), flush=True)
        result = run_job(defs, args.job, instance, window=args.window, raise_on_error=False)
        outcome: dict[str, Any] = {"success": result.success, "run_id": result.run_id}
        if result.success:
            metadata = sync_metadata(result)
            outcome.update(write_calls=metadata.get("write_calls"), calls=metadata.get("calls"))
    print(json.dumps(outcome, default=str), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
