"""The as-of date of time-based rules (SPEC §5 "Time"): the practice-local day of the newest Ivoris
modification staged for the practice, never the wall clock, so re-running the same inputs gives the
same answer. Deals and KPIs both take it from here (a run may set it instead)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa

from biss_pipeline.domain.calendar import local_day
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

# The tables whose `modified_at` is an Ivoris modification time of something deals depend on.
MODIFICATION_TABLES = (schema.stg_appointments, schema.stg_document_entries)


def _newest(warehouse: Warehouse, practice_ids: Iterable[str] | None) -> dt.datetime | None:
    stamps = []
    for table in MODIFICATION_TABLES:
        statement = sa.select(sa.func.max(table.c.modified_at).label("newest"))
        if practice_ids is not None:
            statement = statement.where(table.c.practice_id.in_(list(practice_ids)))
        [row] = warehouse.read_rows(statement)
        stamp = row["newest"]
        if isinstance(stamp, str):  # SQLite may hand back text
            stamp = dt.datetime.fromisoformat(stamp)
        if stamp is not None:
            stamps.append(stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC))
    return max(stamps, default=None)


def practice_as_of(warehouse: Warehouse, practice_id: str) -> dt.date | None:
    """None while nothing is staged for the practice."""
    newest = _newest(warehouse, [practice_id])
    return local_day(newest) if newest else None


def chain_as_of(warehouse: Warehouse) -> dt.date | None:
    """The newest of the practices' as-of days (the chain-wide KPI report's reference day)."""
    newest = _newest(warehouse, None)
    return local_day(newest) if newest else None
