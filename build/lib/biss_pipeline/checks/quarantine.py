"""Asset check `quarantine` on each practice's deals asset (`<practice_id>/deals`).

Why the deals asset: the quarantine table collects rows from the raw layer (`stage = raw`) and from
staging (`stage = staging`) across every partition of the practice. The deals asset is the
practice's first unpartitioned asset downstream of both, so the check runs once per pipeline run and
judges the practice's whole quarantine rather than one partition window.

WARN (never ERROR) when the practice has quarantine rows: the rest of the data went through, and each
row waits for a fix in Ivoris or in the mapping and a re-run of its window. Metadata: counts by
entity, stage and reason, and the partition dates affected (the windows to re-run) — never record
content; reasons come from the staging/extraction vocabulary, which holds no personal data.
"""

# No `from __future__ import annotations`: Dagster reads the check function's resource annotations.

from collections.abc import Sequence

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, asset_check

from biss_pipeline.checks import check_result
from biss_pipeline.domain.staging.quarantine import quarantine_outcome, quarantine_summary
from biss_pipeline.keys import practice_asset_key
from biss_pipeline.resources.warehouse import WarehouseResource


def build_quarantine_check(practice_id: str) -> AssetChecksDefinition:
    @asset_check(
        asset=practice_asset_key(practice_id, "deals"),
        name="quarantine",
        blocking=False,
        description="WARN while the practice has quarantined raw or staging rows (counts only).",
    )
    def quarantine(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        summary = quarantine_summary(warehouse.get(), practice_id)
        context.log.info(
            "Quarantine %s: %d rows %s", practice_id, summary["quarantined_rows"], summary["by_entity"]
        )
        return check_result(quarantine_outcome(summary))

    return quarantine


def build_quarantine_checks(practice_ids: Sequence[str]) -> list[AssetChecksDefinition]:
    """One `quarantine` check per practice on `<practice_id>/deals`. Resource key: `warehouse`."""
    return [build_quarantine_check(practice_id) for practice_id in practice_ids]
