"""Data-quality verdicts on a practice's deals (SPEC §5 r2): the revenue counted for no deal, and the
appointments nobody updated in Ivoris (stale). Keys, counts and euros only, never patient data.

Both read what the deals step wrote (`uncounted_entries`, `deal_appointments.is_stale`), so they judge
exactly the deals in the warehouse, as of the deals run's as-of date.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.deals.rules import NOT_BILLABLE
from biss_pipeline.domain.staging.rules import newest_rows
from biss_pipeline.domain.verdicts import CheckOutcome, Severity
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

# Reasons that are no lost revenue: a line no rule calls billable never was revenue.
NOT_REVENUE_REASONS: frozenset[str] = frozenset({NOT_BILLABLE})
STALE_KEYS_LISTED = 200  # metadata stays small; the count is always exact


def _eur(cents: int) -> float:
    return round(cents / 100, 2)


def uncounted_summary(warehouse: Warehouse, practice_id: str) -> dict[str, Any]:
    """The practice's billable entries counted for no deal: euros and entries per reason and per
    (reason, detail), summed in the database."""
    table = schema.uncounted_entries
    rows = warehouse.read_rows(
        sa.select(table.c.reason, table.c.detail, sa.func.count().label("entries"),
                  sa.func.sum(table.c.amount_cents).label("cents"))
        .where(table.c.practice_id == practice_id, table.c.reason.not_in(sorted(NOT_REVENUE_REASONS)))
        .group_by(table.c.reason, table.c.detail)
        .order_by(table.c.reason, table.c.detail)
    )
    by_reason: dict[str, dict[str, Any]] = {}
    by_detail: dict[str, dict[str, Any]] = {}
    for row in rows:
        cents, count = int(row["cents"] or 0), int(row["entries"])
        reason = by_reason.setdefault(row["reason"], {"entries": 0, "cents": 0})
        reason["entries"] += count
        reason["cents"] += cents
        label = row["reason"] if row["detail"] is None else f"{row['reason']}/{row['detail']}"
        by_detail[label] = {"entries": count, "cents": cents}
    return {
        "entries": sum(r["entries"] for r in by_reason.values()),
        "cents": sum(r["cents"] for r in by_reason.values()),
        "by_reason": by_reason,
        "by_detail": by_detail,
    }


def uncounted_outcome(summary: dict[str, Any]) -> CheckOutcome:
    """WARN (the deals are right by the rules; the practice should look) while any billable euro is
    counted for no deal. Metadata in numbers: euros per reason, so the UI can plot them."""
    metadata: dict[str, Any] = {
        "uncounted_entries": summary["entries"],
        "uncounted_eur": _eur(summary["cents"]),
        **{f"eur_{reason}": _eur(v["cents"]) for reason, v in summary["by_reason"].items()},
        **{f"entries_{reason}": v["entries"] for reason, v in summary["by_reason"].items()},
        "eur_by_reason_and_detail": {label: _eur(v["cents"]) for label, v in summary["by_detail"].items()},
    }
    if not summary["entries"]:
        return CheckOutcome(True, Severity.WARN, "every billable entry counts for a deal", metadata)
    parts = ", ".join(f"{reason} {_eur(v['cents']):,.2f} EUR ({v['entries']})"
                      for reason, v in sorted(summary["by_reason"].items(), key=lambda kv: -kv[1]["cents"]))
    return CheckOutcome(
        passed=False,
        severity=Severity.WARN,
        description=f"{_eur(summary['cents']):,.2f} EUR in {summary['entries']} billable entries count for "
                    f"no deal: {parts}",
        metadata=metadata,
    )


def stale_summary(warehouse: Warehouse, practice_id: str) -> dict[str, Any]:
    """The practice's stale appointments as the deals step flagged them: count, the oldest, and the
    appointment keys (oldest first, at most `STALE_KEYS_LISTED`)."""
    members, appointments = schema.deal_appointments, schema.stg_appointments
    keys = [row["appointment_key"] for row in warehouse.read_rows(
        sa.select(members.c.appointment_key).where(members.c.practice_id == practice_id, members.c.is_stale))]
    current: list[dict[str, Any]] = []
    for start in range(0, len(keys), 500):  # bounded IN lists
        chunk = keys[start:start + 500]
        current += newest_rows(warehouse.read_rows(
            sa.select(appointments.c.appointment_key, appointments.c.start, appointments.c.status,
                      appointments.c.modified_at, appointments.c.partition_date)
            .where(appointments.c.practice_id == practice_id, appointments.c.appointment_key.in_(chunk))),
            "appointment_key")
    current.sort(key=lambda row: (row["start"], row["appointment_key"]))
    statuses: dict[str, int] = {}
    for row in current:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return {
        "stale_appointments": len(keys),
        "oldest_start": current[0]["start"].date().isoformat() if current else None,
        "oldest_appointment_key": current[0]["appointment_key"] if current else None,
        "by_status": statuses,
        "appointment_keys": [row["appointment_key"] for row in current[:STALE_KEYS_LISTED]],
    }


def stale_outcome(summary: dict[str, Any], stale_after_days: int | None = None) -> CheckOutcome:
    count = summary["stale_appointments"]
    metadata = {k: v for k, v in summary.items() if v is not None}
    if not count:
        return CheckOutcome(True, Severity.WARN, "no stale appointments", metadata)
    after = f" {stale_after_days} days" if stale_after_days else ""
    return CheckOutcome(
        passed=False,
        severity=Severity.WARN,
        description=f"{count} appointments still booked/confirmed/arrived{after} after their date (oldest "
                    f"{summary['oldest_start']}, {summary['oldest_appointment_key']}); update them in Ivoris",
        metadata=metadata,
    )
