"""What the checks say about an extraction: paged answers that did not add up (SPEC §3 rev. 2), a
window without a single appointment, and a window whose appointments are mostly quarantined. Plain
functions over the warehouse; the wiring (`checks/ivoris.py`) turns their verdicts into asset checks.
Counts, routes, windows and reasons only, never record content."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import sqlalchemy as sa

from biss_pipeline.domain.verdicts import CheckOutcome, Severity
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

LISTED = 20  # anomalies named in the metadata; the table has them all


def paging_outcome(warehouse: Warehouse, practice_id: str, run_id: str) -> CheckOutcome:
    """WARN when this run kept a paged answer it could not make consistent (the records served are
    kept; the window stays listed until a later run reads it whole)."""
    table = schema.ivoris_anomalies
    rows = warehouse.read_rows(sa.select(table).where(
        table.c.practice_id == practice_id, table.c.run_id == run_id).order_by(table.c.id))
    open_rows = [r for r in rows if not r["resolved"]]
    metadata = {
        "unresolved": len(open_rows), "resolved_by_narrowing": len(rows) - len(open_rows),
        "by_route": dict(Counter(r["route"] for r in open_rows)),
        "anomalies": [f"{r['asset']} {r['route']} {r['request_window']}: {r['problem']}"
                      for r in open_rows[:LISTED]],
    }
    if not open_rows:
        return CheckOutcome(True, Severity.WARN, "every paged answer added up"
                            + (f" after narrowing ({len(rows)} re-read)" if rows else ""), metadata)
    windows = sorted({r["request_window"] for r in open_rows})
    return CheckOutcome(False, Severity.WARN,
                        f"{len(open_rows)} paged answers of {practice_id} did not add up even narrowed "
                        f"(windows {windows[0]} … {windows[-1]}); what Ivoris served was kept", metadata)


def working_days(date_from: dt.date, date_to: dt.date) -> int:
    return sum(1 for n in range((date_to - date_from).days + 1)
               if (date_from + dt.timedelta(days=n)).weekday() < 5)


def volume_outcome(warehouse: Warehouse, practice_id: str, date_from: dt.date,
                   date_to: dt.date) -> CheckOutcome:
    """WARN when a window with working days has no appointment at all (raw, quarantined included):
    a practice's calendar is never empty for a week, a wrong route or filter is."""
    raw, quarantine = schema.raw_appointments, schema.quarantine
    count = warehouse.read_rows(sa.select(sa.func.count().label("n")).select_from(raw).where(
        raw.c.practice_id == practice_id, raw.c.partition_date >= date_from,
        raw.c.partition_date <= date_to))[0]["n"]
    held = warehouse.read_rows(sa.select(sa.func.count().label("n")).select_from(quarantine).where(
        quarantine.c.practice_id == practice_id, quarantine.c.entity == "appointment",
        quarantine.c.stage == "raw", quarantine.c.partition_date >= date_from,
        quarantine.c.partition_date <= date_to))[0]["n"]
    days = working_days(date_from, date_to)
    window = f"{date_from.isoformat()} .. {date_to.isoformat()}"
    metadata = {"window": window, "working_days": days, "appointments": int(count),
                "quarantined_at_raw": int(held)}
    if count or held or not days:
        return CheckOutcome(True, Severity.WARN, f"{count} appointments in {window}", metadata)
    return CheckOutcome(False, Severity.WARN,
                        f"0 appointments from Ivoris for {window}, which has {days} working days: "
                        "check the practice's route and server", metadata)


def quarantine_share_outcome(warehouse: Warehouse, practice_id: str, date_from: dt.date,
                             date_to: dt.date, max_share: Decimal) -> CheckOutcome:
    """ERROR when more than `max_share` of the window's appointments is quarantined: that is a broken
    mapping or missing reference data, not a few bad records, and nothing should reach HubSpot."""
    staged, quarantine = schema.stg_appointments, schema.quarantine
    good = warehouse.read_rows(sa.select(sa.func.count().label("n")).select_from(staged).where(
        staged.c.practice_id == practice_id, staged.c.partition_date >= date_from,
        staged.c.partition_date <= date_to))[0]["n"]
    held = warehouse.read_rows(sa.select(quarantine.c.record_key, quarantine.c.reason).where(
        quarantine.c.practice_id == practice_id, quarantine.c.entity == "appointment",
        quarantine.c.partition_date >= date_from, quarantine.c.partition_date <= date_to))
    keys = {r["record_key"] for r in held}
    reasons = Counter(r["reason"] for r in held)
    total = int(good) + len(keys)
    share = Decimal(len(keys)) / total if total else Decimal(0)
    window = f"{date_from.isoformat()} .. {date_to.isoformat()}"
    metadata = {"window": window, "appointments": total, "quarantined": len(keys),
                "quarantined_share": float(round(share, 4)), "max_share": float(max_share),
                "reasons": dict(reasons.most_common())}
    if share <= max_share:
        return CheckOutcome(True, Severity.ERROR, f"{len(keys)} of {total} appointments quarantined",
                            metadata)
    top, top_count = reasons.most_common(1)[0]
    return CheckOutcome(False, Severity.ERROR,
                        f"{len(keys)} of {total} appointments of {window} quarantined ({share:.0%} > "
                        f"{max_share:.0%}), mostly {top!r} ({top_count}); nothing goes to HubSpot until "
                        "it is fixed (the mapping, or refresh_reference_data)", metadata)
