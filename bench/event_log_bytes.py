"""Event-log bytes of one intraday tick (issue 16, closing note): `bench.hourly_incremental`'s runs
(setup, the intraday tick a day later, the same tick with nothing changed), each run's event records
serialized as Dagster stores them (`serialize_value` of the EventLogEntry, the `event` column of the
SQLite/PostgreSQL event log), summed per run and per event type.

    BISS_DATA_DIR=/tmp/evb .venv/bin/python -m bench.event_log_bytes --size tiny

(`BISS_DATA_DIR` keeps the KPI report out of the checkout.) Arguments are hourly_incremental's.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from dagster._serdes import serialize_value

import bench.hourly_incremental as hourly

_execute = hourly.execute
FIGURES: list[str] = []


def _measured_execute(defs: Any, request: Any, job_name: str, instance: Any, *args: Any,
                      **kwargs: Any) -> Any:
    measured = _execute(defs, request, job_name, instance, *args, **kwargs)
    run = instance.get_runs(limit=1)[0]
    records = instance.get_records_for_run(run.run_id, limit=1_000_000).records
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for record in records:
        entry = record.event_log_entry
        kind = entry.dagster_event.event_type_value if entry.dagster_event else "LOG"
        sizes[kind] += len(serialize_value(entry).encode("utf-8"))
        counts[kind] += 1
    label = args[-1] if args else "run"
    window = f"{run.tags.get(hourly.RANGE_START_TAG)}..{run.tags.get(hourly.RANGE_END_TAG)}"
    top = ", ".join(f"{kind} {sizes[kind]:,} B / {counts[kind]}" for kind, _ in sizes.most_common(5))
    FIGURES.append(f"{label}: {job_name} {window}: {len(records)} events, {sum(sizes.values()):,} bytes "
                   f"({top})")
    return measured


def main(argv: list[str] | None = None) -> int:
    hourly.execute = _measured_execute
    code = hourly.main(argv)
    print("\nevent-log bytes per run:")
    for line in FIGURES:
        print(f"  {line}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
