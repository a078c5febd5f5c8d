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
from typing import Any

import sqlalchemy as sa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from biss_pipeline.resources.warehouse import Warehouse, WarehouseResource
from biss_pipeline.warehouse import schema


def quarantine_check_asset_key(practice_id: str) -> AssetKey:
    """The practice's deals asset (same key as `biss_pipeline.assets.deals.deals_asset_key`)."""
    return AssetKey([practice_id, "deals"])


def quarantine_summary(warehouse: Warehouse, practice_id: str) -> dict[str, Any]:
    """Counts per (entity, stage, reason), and the range of partition dates affected."""
    table = schema.quarantine
    rows = warehouse.read_rows(
        sa.select(
            table.c.entity,
            table.c.stage,
            table.c.reason,
            sa.func.count().label("rows"),
            sa.func.min(table.c.partition_date).label("first_date"),
            sa.func.max(table.c.partition_date).label("last_date"),
            sa.func.count(sa.distinct(table.c.partition_date)).label("dates"),
        )
        .where(table.c.practice_id == practice_id)
        .group_by(table.c.entity, table.c.stage, table.c.reason)
        .order_by(table.c.entity, table.c.stage, table.c.reason)
    )
    by_entity: dict[str, int] = {}
    by_stage: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    groups = []
    for row in rows:
        count = int(row["rows"])
        by_entity[row["entity"]] = by_entity.get(row["entity"], 0) + count
        by_stage[row["stage"]] = by_stage.get(row["stage"], 0) + count
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + count
        groups.append(
            {
                "entity": row["entity"],
                "stage": row["stage"],
                "reason": row["reason"],
                "rows": count,
                "partition_dates": int(row["dates"]),
                "first_date": str(row["first_date"]),
                "last_date": str(row["last_date"]),
            }
        )
    firsts = [g["first_date"] for g in groups]
    lasts = [g["last_date"] for g in groups]
    return {
        "quarantined_rows": sum(by_entity.values()),
        "by_entity": by_entity,
        "by_stage": by_stage,
        "by_reason": by_reason,
        "by_entity_stage_reason": groups,
        "first_partition_date": min(firsts) if firsts else None,
        "last_partition_date": max(lasts) if lasts else None,
    }


def quarantine_result(summary: dict[str, Any]) -> AssetCheckResult:
    total = summary["quarantined_rows"]
    metadata = {k: v for k, v in summary.items() if v is not None}
    if not total:
        return AssetCheckResult(passed=True, description="no quarantined rows", metadata=metadata)
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{total} quarantined rows ({', '.join(f'{n} {e}' for e, n in summary['by_entity'].items())}); "
            "fix them in Ivoris or the mapping and re-run the affected windows"
        ),
        metadata=metadata,
    )


def build_quarantine_check(practice_id: str) -> AssetChecksDefinition:
    @asset_check(
        asset=quarantine_check_asset_key(practice_id),
        name="quarantine",
        blocking=False,
        description="WARN while the practice has quarantined raw or staging rows (counts only).",
    )
    def quarantine(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        summary = quarantine_summary(warehouse.get(), practice_id)
        context.log.info(
            "Quarantine %s: %d rows %s", practice_id, summary["quarantined_rows"], summary["by_entity"]
        )
        return quarantine_result(summary)

    quarantine.__name__ = f"quarantine_{practice_id}"
    return quarantine


def build_quarantine_checks(practice_ids: Sequence[str]) -> list[AssetChecksDefinition]:
    """One `quarantine` check per practice on `<practice_id>/deals`. Resource key: `warehouse`."""
    return [build_quarantine_check(practice_id) for practice_id in practice_ids]
