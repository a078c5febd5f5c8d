"""Two partitioning layouts of the raw layer, with no-op bodies, for counting backfill runs.

Same graph shape as the real raw assets (appointments -> patients, plus document entries),
three practices, single-run backfill policy. Only the partitioning differs, so the run counts
that `bench/backfill_runs.py` measures are Dagster's behaviour, not our code's.
"""

from dagster import (
    AssetKey,
    BackfillPolicy,
    DailyPartitionsDefinition,
    Definitions,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
)

PRACTICES = ("mb", "rb", "le")
START = "2025-01-01"
daily = DailyPartitionsDefinition(start_date=START, end_date="2026-01-01")


def _layer(partitions, prefix: list[str]) -> list:
    @asset(key=AssetKey([*prefix, "raw_appointments"]), partitions_def=partitions,
           backfill_policy=BackfillPolicy.single_run())
    def appointments() -> None: ...

    @asset(key=AssetKey([*prefix, "raw_patients"]), partitions_def=partitions,
           backfill_policy=BackfillPolicy.single_run(), deps=[AssetKey([*prefix, "raw_appointments"])])
    def patients() -> None: ...

    @asset(key=AssetKey([*prefix, "raw_document_entries"]), partitions_def=partitions,
           backfill_policy=BackfillPolicy.single_run())
    def entries() -> None: ...

    return [appointments, patients, entries]


per_practice = Definitions(assets=[a for p in PRACTICES for a in _layer(daily, [p])])

multi_partitioned = Definitions(assets=_layer(
    MultiPartitionsDefinition({"date": daily, "practice": StaticPartitionsDefinition(list(PRACTICES))}),
    ["all"],
))
