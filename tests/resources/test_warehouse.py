"""The warehouse on both backends: migrations produce the model's schema, partition writes
replace exactly their partition, atomically."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import MIGRATIONS_DIR, current_revision
from biss_pipeline.resources.warehouse import WarehouseResource

DAY1, DAY2, DAY3 = dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)


def appointment(day: dt.date, ivoris_id: int, status: str = "booked", practice: str = "mb") -> dict:
    return {"practice_id": practice, "partition_date": day, "appointment_key": f"MB_{ivoris_id}",
            "ivoris_id": str(ivoris_id), "patient_id": "1", "chair_id": "1", "type_id": "1",
            "start": f"{day}T09:00:00", "end": f"{day}T09:30:00", "status": status,
            "modified_at": "2026-03-01T10:00:00Z"}


def all_rows(warehouse, table: sa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in warehouse.read_rows(sa.select(table)))


def test_migrations_build_exactly_the_model_schema(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    with warehouse.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    assert differences == []
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert current_revision(warehouse.engine) == ScriptDirectory.from_config(config).get_current_head()


def test_migrating_twice_is_a_no_op(warehouse_url: str) -> None:
    from biss_pipeline.domain.warehouse.store import migrate

    warehouse = WarehouseResource(url=warehouse_url).get()
    warehouse.replace_partitions(schema.raw_appointments, "mb", DAY1, DAY1, [appointment(DAY1, 1)])
    migrate(warehouse.engine)
    assert warehouse.count_rows(schema.raw_appointments) == 1


def test_replacing_a_partition_touches_only_that_partition(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    table = schema.raw_appointments
    warehouse.replace_partitions(table, "mb", DAY1, DAY3,
                                 [appointment(DAY1, 1), appointment(DAY2, 2), appointment(DAY3, 3)])
    warehouse.replace_partitions(table, "rb", DAY2, DAY2, [appointment(DAY2, 2, practice="rb")])

    warehouse.replace_partitions(table, "mb", DAY2, DAY2,
                                 [appointment(DAY2, 2, "completed"), appointment(DAY2, 4)])
    after_first = all_rows(warehouse, table)
    warehouse.replace_partitions(table, "mb", DAY2, DAY2,
                                 [appointment(DAY2, 2, "completed"), appointment(DAY2, 4)])

    assert all_rows(warehouse, table) == after_first
    keys = {(r["practice_id"], r["appointment_key"], r["status"])
            for r in warehouse.read_rows(sa.select(table))}
    assert keys == {("mb", "MB_1", "booked"), ("mb", "MB_2", "completed"), ("mb", "MB_3", "booked"),
                    ("mb", "MB_4", "booked"), ("rb", "MB_2", "booked")}


def test_a_failed_replace_keeps_the_previous_rows(warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    table = schema.raw_appointments
    warehouse.replace_partitions(table, "mb", DAY1, DAY1, [appointment(DAY1, 1)])
    before = all_rows(warehouse, table)
    with pytest.raises(sa.exc.IntegrityError):
        # the same key twice violates the primary key after the delete already ran
        warehouse.replace_partitions(table, "mb", DAY1, DAY1, [appointment(DAY1, 5), appointment(DAY1, 5)])
    assert all_rows(warehouse, table) == before


def test_rows_outside_the_window_are_refused(sqlite_url: str) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    with pytest.raises(ValueError, match="outside"):
        warehouse.replace_partitions(schema.raw_appointments, "mb", DAY1, DAY1, [appointment(DAY2, 1)])
