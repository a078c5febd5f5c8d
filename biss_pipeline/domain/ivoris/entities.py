"""The Ivoris entities the pipeline extracts, each declared once: its route and the date that places a
record in a partition, its contract fields and raw columns, its raw and staging tables, and its
staging rules. The raw assets, staging, job selections and checks are built from these declarations,
so a new Ivoris route needs a declaration here, its tables, its staging rules and the emulator.

Raw sources: most entities arrive through one date-filtered route. Document entries have a second
path (the per-patient route, for the entries the date route skips, SPEC §1); patients are read by id
for the days whose appointments reference them, plus a `modifiedSince` listing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.ivoris.extract import ExtractedRows, patient_rows, window_rows
from biss_pipeline.domain.ivoris.extraction import (
    ChunkReader,
    ExtractionContext,
    read_patients,
    read_repaired_document_entries,
)
from biss_pipeline.domain.mapping.config import MappingConfig, check_types_mapped
from biss_pipeline.domain.staging.rules import (
    StagedRows,
    stage_appointments,
    stage_document_entries,
    stage_patients,
)
from biss_pipeline.domain.warehouse import schema

Row = dict[str, Any]


@dataclass(frozen=True)
class StagingInputs:
    """What a staging rule may use besides the raw rows of its window."""

    key_prefix: str
    window_end: dt.date
    patient_keys: frozenset[str]  # patients with a good staged version (this window or earlier)
    type_keys: frozenset[str]  # the practice's Ivoris appointment types
    # patients Ivoris delivered whose versions are all quarantined: their records are held back
    held_patient_keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RawSource:
    """One way Ivoris delivers an entity: a route read window by window into a raw table."""

    name: str  # the raw table's and asset's name
    table: sa.Table
    quarantine_entity: str  # the `entity` of its raw-stage quarantine rows, which it replaces
    description: str  # after "<practice name>: "
    reads: tuple[str, ...] = ()  # other raw sources it reads from the warehouse (its upstream)
    # None: the entity's date-filtered route, placed by the entity's date field
    open_reader: Callable[[ExtractionContext], ChunkReader] | None = None


@dataclass(frozen=True, eq=False)  # identity: entities key dicts
class IvorisEntity:
    name: str  # as in quarantine rows and logs
    key_column: str  # prefix + Ivoris id, e.g. MB_10423
    route: str  # the `IvorisRoutes` field of its main route
    date_field: str  # the contract field whose day is the record's partition
    fields: Mapping[str, str]  # raw column → contract field, kept as the text Ivoris sent
    sources: tuple[RawSource, ...]
    staging_name: str
    staging_table: sa.Table
    stage: Callable[[list[Row], StagingInputs], StagedRows]
    staging_description: str
    # a check of the mapping against the window's raw rows; raises ConfigError for a gap in the sheet
    check_config: Callable[[list[Row], MappingConfig, StagingInputs], None] | None = None
    # reference data its staging reads (asset names: `appointment_types`), declared as dependencies
    reference_names: tuple[str, ...] = ()

    @property
    def raw_names(self) -> tuple[str, ...]:
        return tuple(source.name for source in self.sources)

    def rows(self, practice_id: str, key_prefix: str, records: Any, date_from: dt.date,
             date_to: dt.date) -> ExtractedRows:
        """Raw rows of records placed by the entity's date field."""
        return window_rows(practice_id, key_prefix, self.name, self.key_column, self.date_field,
                           self.fields, records, date_from, date_to)

    def reader(self, source: RawSource) -> Callable[[ExtractionContext], ChunkReader]:
        if source.open_reader is not None:
            return source.open_reader

        def open_window_reader(context: ExtractionContext) -> ChunkReader:
            def read(first: dt.date, last: dt.date) -> ExtractedRows:
                records = context.client.records_in_window(self.route, first, last)
                return self.rows(context.practice_id, context.key_prefix, records, first, last)
            return read

        return open_window_reader


class ReferenceDataMissingError(RuntimeError):
    """Appointments to stage, but no appointment types in the warehouse: every one would be
    quarantined as "unknown appointment type" and the run would be green on nothing."""


def _check_types(rows: list[Row], mapping: MappingConfig, inputs: StagingInputs) -> None:
    if rows and not inputs.type_keys:
        raise ReferenceDataMissingError(
            f"{len(rows)} appointments to stage but the warehouse has no appointment types for prefix "
            f"{inputs.key_prefix!r}: run refresh_reference_data (the practice pipeline does it itself "
            "before extracting when the types are missing)")
    check_types_mapped(mapping, {f"{inputs.key_prefix}{row['type_id']}" for row in rows} & inputs.type_keys)


PATIENT_FIELDS = MappingProxyType({
    "first_name": "firstName", "last_name": "lastName", "birth_date": "birthDate", "email": "email",
    "phone": "phone", "insurance": "insurance", "modified_at": "modifiedAt",
})


def _patient_reader(context: ExtractionContext) -> ChunkReader:
    return read_patients(context, lambda records, reasons, first, last: patient_rows(
        context.practice_id, context.key_prefix, PATIENT_FIELDS, records, reasons, first, last))


PATIENT = IvorisEntity(
    name="patient", key_column="patient_key", route="patients", date_field="modifiedAt",
    fields=PATIENT_FIELDS,
    sources=(RawSource(
        "raw_patients", schema.raw_patients, "patient",
        "patients referenced by the window's appointments plus those modified in it.",
        reads=("raw_appointments",), open_reader=_patient_reader),),
    staging_name="stg_patients", staging_table=schema.stg_patients,
    stage=lambda rows, inputs: stage_patients(rows, as_of=inputs.window_end),
    staging_description="patients, typed and validated (newest version wins).",
)

APPOINTMENT = IvorisEntity(
    name="appointment", key_column="appointment_key", route="appointments", date_field="start",
    fields=MappingProxyType({
        "patient_id": "patientId", "chair_id": "chairId", "type_id": "typeId", "start": "start",
        "end": "end", "status": "status", "modified_at": "modifiedAt",
    }),
    sources=(RawSource("raw_appointments", schema.raw_appointments, "appointment",
                       "appointments as Ivoris returns them, by appointment day."),),
    staging_name="stg_appointments", staging_table=schema.stg_appointments,
    stage=lambda rows, inputs: stage_appointments(rows, inputs.key_prefix, set(inputs.patient_keys),
                                                  set(inputs.type_keys),
                                                  held_patient_keys=inputs.held_patient_keys),
    staging_description="appointments, typed and validated.",
    # A type Ivoris uses but the sheet lacks is a gap to fix in the mapping, not bad data: it fails
    # the run with the tab and type named.
    check_config=lambda rows, mapping, inputs: _check_types(rows, mapping, inputs),
    reference_names=("appointment_types",),
)

DOCUMENT_ENTRY = IvorisEntity(
    name="document_entry", key_column="entry_key", route="document_entries", date_field="date",
    fields=MappingProxyType({
        "patient_id": "patientId", "appointment_id": "appointmentId", "entry_date": "date",
        "entry_type": "type", "code": "code", "description": "description", "amount": "amount",
        "modified_at": "modifiedAt",
    }),
    sources=(
        RawSource("raw_document_entries", schema.raw_document_entries, "document_entry",
                  "billing lines (document entries) by entry date, from the date-filtered route."),
        RawSource("raw_repaired_document_entries", schema.raw_repaired_document_entries,
                  "document_entry_repair",
                  "billing lines the date-filtered route missed, re-fetched through the per-patient "
                  "route for every patient with a completed appointment.",
                  reads=("raw_appointments", "raw_document_entries"),
                  open_reader=lambda context: read_repaired_document_entries(context, _entries())),
    ),
    staging_name="stg_document_entries", staging_table=schema.stg_document_entries,
    stage=lambda rows, inputs: stage_document_entries(
        rows, inputs.key_prefix, held_patient_keys=inputs.held_patient_keys - inputs.patient_keys),
    staging_description="billing lines with exact amounts in cents.",
)

def _entries() -> IvorisEntity:
    return DOCUMENT_ENTRY  # the repair source builds rows like the entity it belongs to


# Staging order: an appointment is checked against the patients staged for its window.
ENTITIES: tuple[IvorisEntity, ...] = (PATIENT, APPOINTMENT, DOCUMENT_ENTRY)
RAW_SOURCES: tuple[RawSource, ...] = tuple(s for entity in ENTITIES for s in entity.sources)


def entity_named(name: str) -> IvorisEntity:
    return next(entity for entity in ENTITIES if entity.name == name)
