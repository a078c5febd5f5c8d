"""Staging a window of one practice: raw rows → typed, validated rows plus quarantine, entity by
entity as declared in `biss_pipeline.domain.ivoris.entities`.

Idempotent: a window's staging rows and its staging quarantine rows are replaced together, in chunks
of `STAGING_CHUNK_DAYS` (staging reads the warehouse, not Ivoris, so it takes bigger steps than
extraction).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.ivoris.client import iter_date_chunks
from biss_pipeline.domain.ivoris.entities import ENTITIES, PATIENT, IvorisEntity, StagingInputs
from biss_pipeline.domain.mapping.config import MappingConfig
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.staging.rules import StagedRows
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

STAGING_CHUNK_DAYS = 31


def _raw(warehouse: Warehouse, table: sa.Table, practice_id: str, date_from: dt.date,
         date_to: dt.date) -> list[dict[str, Any]]:
    return warehouse.read_rows(sa.select(table).where(
        table.c.practice_id == practice_id,
        table.c.partition_date >= date_from, table.c.partition_date <= date_to))


def _write(warehouse: Warehouse, practice_id: str, date_from: dt.date, date_to: dt.date,
           staged: dict[IvorisEntity, StagedRows]) -> None:
    quarantine = schema.quarantine
    with warehouse.transaction() as connection:
        for entity, result in staged.items():
            warehouse.replace_partitions(entity.staging_table, practice_id, date_from, date_to, result.rows,
                                         connection)
            # the same rejected key can arrive through both entry routes: one quarantine row
            unique = list({tuple(sorted(q.items())): q for q in result.quarantined}.values())
            warehouse.replace_partitions(
                quarantine, practice_id, date_from, date_to, unique, connection,
                extra_filter=sa.and_(quarantine.c.entity == entity.name, quarantine.c.stage == "staging"))


def known_type_keys(warehouse: Warehouse, practice_id: str) -> frozenset[str]:
    table = schema.appointment_types
    return frozenset(row["type_key"] for row in warehouse.read_rows(
        sa.select(table.c.type_key).where(table.c.practice_id == practice_id)))


def stage_window(warehouse: Warehouse, mapping: MappingConfig, practice: PracticeConfig,
                 selected: Collection[IvorisEntity], date_from: dt.date,
                 date_to: dt.date) -> dict[IvorisEntity, Counter[str]]:
    """Stage the selected entities for the window; per entity, `rows` staged and the count per
    quarantine reason. A mapping gap (an appointment type the sheet lacks) raises `ConfigError`."""
    pid = practice.practice_id
    types = known_type_keys(warehouse, pid)
    counts: dict[IvorisEntity, Counter[str]] = {e: Counter() for e in ENTITIES if e in selected}
    for chunk_from, chunk_to in iter_date_chunks(date_from, date_to, STAGING_CHUNK_DAYS):
        raw = {entity: [row for name in entity.raw_names
                        for row in _raw(warehouse, schema.metadata.tables[name], pid, chunk_from, chunk_to)]
               for entity in counts}
        if PATIENT not in raw:
            raw_patients = _raw(warehouse, schema.raw_patients, pid, chunk_from, chunk_to)
        else:
            raw_patients = raw[PATIENT]
        inputs = StagingInputs(practice.key_prefix, date_to,
                               frozenset(row["patient_key"] for row in raw_patients), types)
        staged: dict[IvorisEntity, StagedRows] = {}
        for entity, rows in raw.items():
            if entity.check_config is not None:
                entity.check_config(rows, mapping, inputs)
            staged[entity] = entity.stage(rows, inputs)
        _write(warehouse, pid, chunk_from, chunk_to, staged)
        for entity, result in staged.items():
            counts[entity]["rows"] += len(result.rows)
            counts[entity].update(q["reason"] for q in result.quarantined)
    return counts
