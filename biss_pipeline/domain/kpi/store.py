"""KPI tables in the warehouse: reading the inputs practice by practice, replacing the stored tables,
reading them back (SPEC §6; the measures are defined in `biss_pipeline.domain.kpi.metrics`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd
import sqlalchemy as sa

from biss_pipeline.domain.deals.rules import NOT_BILLABLE
from biss_pipeline.domain.kpi import metrics as kpi
from biss_pipeline.domain.kpi.metrics import KpiTables
from biss_pipeline.domain.staging.as_of import chain_as_of
from biss_pipeline.domain.staging.rules import newest_rows
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

KPI_TABLES: Mapping[str, sa.Table] = {
    "appointments": schema.kpi_appointments,
    "deals": schema.kpi_deals,
    "revenue": schema.kpi_revenue,
    "uncounted": schema.kpi_uncounted,
}
INSERT_CHUNK = 5_000


def _frame(warehouse: Warehouse, statement: sa.Select, columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(warehouse.read_rows(statement), columns=list(columns))


def _practices_in(warehouse: Warehouse, tables: Sequence[sa.Table]) -> list[str]:
    found: set[str] = set()
    for table in tables:
        rows = warehouse.read_rows(sa.select(table.c.practice_id).distinct())
        found |= {row["practice_id"] for row in rows}
    return sorted(found)


def practice_ids(warehouse: Warehouse) -> list[str]:
    """Every practice with appointments, deals or billing lines in the warehouse."""
    return _practices_in(warehouse, (schema.stg_appointments, schema.deals, schema.deal_entries))


def _daily_revenue(practice_id: str) -> sa.Select:
    """Billing lines summed per day and category in the database: days × categories rows instead of
    millions of lines. SUM over BIGINT is exact on both backends (PostgreSQL returns a NUMERIC)."""
    entries = schema.deal_entries
    return (
        sa.select(
            entries.c.practice_id,
            entries.c.entry_date,
            entries.c.treatment_category,
            sa.func.sum(entries.c.amount_cents).label("amount_cents"),
            sa.func.count().label("entries"),
        )
        .where(entries.c.practice_id == practice_id)
        .group_by(entries.c.practice_id, entries.c.entry_date, entries.c.treatment_category)
    )


def _daily_uncounted(practice_id: str) -> sa.Select:
    """Billable entries counted for no deal, summed per day and reason in the database."""
    table = schema.uncounted_entries
    return (
        sa.select(table.c.practice_id, table.c.entry_date, table.c.reason,
                  sa.func.sum(table.c.amount_cents).label("amount_cents"), sa.func.count().label("entries"))
        .where(table.c.practice_id == practice_id, table.c.reason != NOT_BILLABLE)
        .group_by(table.c.practice_id, table.c.entry_date, table.c.reason)
    )


def practice_kpis(warehouse: Warehouse, practice_id: str, grains: Sequence[str] = kpi.GRAINS) -> KpiTables:
    """One practice's KPIs; reading practice by practice keeps memory bounded by the largest practice."""
    appointments = schema.stg_appointments
    # No patient key is read: the KPIs need none.
    rows = warehouse.read_rows(
        sa.select(
            appointments.c.practice_id,
            appointments.c.partition_date,
            appointments.c.appointment_key,
            appointments.c.start,
            appointments.c.status,
            appointments.c.modified_at,
        ).where(appointments.c.practice_id == practice_id)
    )
    current = pd.DataFrame(
        newest_rows(rows, "appointment_key"),
        columns=["practice_id", "partition_date", "appointment_key", "start", "status", "modified_at"],
    )
    deals, members = schema.deals, schema.deal_appointments
    return kpi.compute_kpis(
        appointments=current,
        deals=_frame(
            warehouse,
            sa.select(*(deals.c[c] for c in (*kpi.DEAL_INPUT, *kpi.DEAL_R2_INPUT))).where(
                deals.c.practice_id == practice_id),
            (*kpi.DEAL_INPUT, *kpi.DEAL_R2_INPUT),
        ),
        deal_appointments=_frame(
            warehouse,
            sa.select(*(members.c[c] for c in kpi.DEAL_APPOINTMENT_INPUT)).where(
                members.c.practice_id == practice_id
            ),
            kpi.DEAL_APPOINTMENT_INPUT,
        ),
        deal_entries=_frame(warehouse, _daily_revenue(practice_id), (*kpi.ENTRY_INPUT, "entries")),
        grains=grains,
        uncounted=_frame(warehouse, _daily_uncounted(practice_id), (*kpi.UNCOUNTED_INPUT, "entries")),
    )


def write_kpis(warehouse: Warehouse, tables: KpiTables) -> dict[str, int]:
    """Replace all KPI tables in one transaction; returns the row count per table."""
    frames = {"appointments": tables.appointments, "deals": tables.deals, "revenue": tables.revenue,
              "uncounted": tables.uncounted}
    counts = {}
    with warehouse.transaction() as connection:
        for name, table in KPI_TABLES.items():
            connection.execute(table.delete())
            rows = kpi.records(frames[name])
            for start in range(0, len(rows), INSERT_CHUNK):
                connection.execute(table.insert(), rows[start : start + INSERT_CHUNK])
            counts[name] = len(rows)
    return counts


def read_kpis(
    warehouse: Warehouse, grain: str | None = None, period_start: dt.date | None = None
) -> KpiTables:
    """The stored KPI tables (optionally one grain, one period) in the deterministic order."""

    def read(table: sa.Table, columns: Sequence[str]) -> pd.DataFrame:
        statement = sa.select(table)
        if grain is not None:
            statement = statement.where(table.c.grain == grain)
        if period_start is not None:
            statement = statement.where(table.c.period_start == period_start)
        return _frame(warehouse, statement, columns)

    part = KpiTables(
        appointments=read(schema.kpi_appointments, kpi.APPOINTMENT_KPI_COLUMNS),
        deals=read(schema.kpi_deals, kpi.DEAL_KPI_COLUMNS),
        revenue=read(schema.kpi_revenue, kpi.REVENUE_KPI_COLUMNS),
        uncounted=read(schema.kpi_uncounted, kpi.UNCOUNTED_KPI_COLUMNS),
    )
    return kpi.concat_tables([part])


def kpi_headline(warehouse: Warehouse, as_of: dt.date | None = None) -> list[str]:
    """Lines for a CLI: last full week per practice, from the stored KPI tables."""
    as_of = as_of or chain_as_of(warehouse)
    practices = _practices_in(warehouse, list(KPI_TABLES.values()))
    if as_of is None or not practices:
        return ["No KPI data yet: run the kpi assets after a sync."]
    monday, _ = kpi.last_full_week(as_of)
    week = read_kpis(warehouse, grain="week", period_start=monday)
    return [
        f"KPIs as of {as_of.isoformat()}",
        *kpi.headline_lines(kpi.week_headlines(week, as_of, practices)),
    ]


