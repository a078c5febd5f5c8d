"""The practice's quarantine at a glance: counts by entity, stage and reason, and the partition
dates affected (the windows to re-run); never record content."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.verdicts import CheckOutcome, Severity
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse


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


def quarantine_outcome(summary: dict[str, Any]) -> CheckOutcome:
    total = summary["quarantined_rows"]
    metadata = {k: v for k, v in summary.items() if v is not None}
    if not total:
        return CheckOutcome(True, Severity.WARN, "no quarantined rows", metadata)
    return CheckOutcome(
        passed=False,
        severity=Severity.WARN,
        description=(
            f"{total} quarantined rows ({', '.join(f'{n} {e}' for e, n in summary['by_entity'].items())}); "
            "fix them in Ivoris or the mapping and re-run the affected windows"
        ),
        metadata=metadata,
    )
