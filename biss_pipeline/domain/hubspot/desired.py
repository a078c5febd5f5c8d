"""The desired HubSpot state of one practice, read from the warehouse.

Scope (choices, the SPEC is silent):
- Contacts: every patient with contact roll-ups, a deal or a deal appointment — patients the CRM has a
  reason to know. Patients that are only in staging (modified in Ivoris, never seen at an appointment)
  stay in the warehouse (data minimisation, SPEC §7).
- Appointments: the ones that belong to a deal (`deal_appointments`); `ignore`-type appointments are
  irrelevant for the CRM by the mapping sheet's definition and belong to no deal.
- Current version of a staging row: `newest_by_key` (the one rule staging, deals and KPIs use too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from biss_pipeline.domain.hubspot.model import (
    APPOINTMENTS,
    CONTACT_APPOINTMENT,
    CONTACT_DEAL,
    CONTACTS,
    DEAL_APPOINTMENT,
    DEALS,
    SyncMapping,
)
from biss_pipeline.domain.hubspot.payloads import (
    DesiredRecord,
    appointment_record,
    contact_records,
    deal_record,
)
from biss_pipeline.domain.staging.rules import newest_by_key
from biss_pipeline.domain.warehouse import schema

if TYPE_CHECKING:
    from biss_pipeline.domain.warehouse.store import Warehouse

Row = dict[str, Any]


@dataclass
class WarehouseSnapshot:
    practice_id: str
    patients: dict[str, Row] = field(default_factory=dict)
    rollups: dict[str, Row] = field(default_factory=dict)
    deals: dict[str, Row] = field(default_factory=dict)
    revenue: dict[str, list[Row]] = field(default_factory=dict)
    deal_appointments: list[Row] = field(default_factory=list)
    appointments: dict[str, Row] = field(default_factory=dict)
    type_names: dict[str, str] = field(default_factory=dict)
    chair_names: dict[str, str] = field(default_factory=dict)

    @property
    def buckets(self) -> list[str]:
        return sorted({str(r["revenue_bucket"]) for rows in self.revenue.values() for r in rows})

    @property
    def categories(self) -> list[str]:
        return sorted({str(r["treatment_category"]) for rows in self.revenue.values() for r in rows})


def read_snapshot(warehouse: Warehouse, practice_id: str) -> WarehouseSnapshot:
    def rows(table: sa.Table) -> list[Row]:
        return warehouse.read_rows(sa.select(table).where(table.c.practice_id == practice_id))

    snapshot = WarehouseSnapshot(practice_id)
    snapshot.rollups = {r["patient_key"]: r for r in rows(schema.contact_rollups)}
    snapshot.deals = {r["deal_key"]: r for r in rows(schema.deals)}
    revenue: dict[str, list[Row]] = defaultdict(list)
    for r in rows(schema.deal_revenue):
        revenue[r["deal_key"]].append(r)
    snapshot.revenue = dict(revenue)
    snapshot.deal_appointments = sorted(rows(schema.deal_appointments), key=lambda r: r["appointment_key"])
    wanted_appointments = {r["appointment_key"] for r in snapshot.deal_appointments}
    snapshot.appointments = {
        key: row
        for key, row in newest_by_key(rows(schema.stg_appointments), "appointment_key").items()
        if key in wanted_appointments
    }
    snapshot.patients = newest_by_key(rows(schema.stg_patients), "patient_key")
    snapshot.type_names = {r["type_key"]: r["name"] for r in rows(schema.appointment_types) if r["name"]}
    snapshot.chair_names = {r["chair_key"]: r["name"] for r in rows(schema.chairs) if r["name"]}
    return snapshot


@dataclass
class DesiredState:
    records: dict[str, dict[str, DesiredRecord]]  # object kind name → key → record
    pairs: dict[str, set[tuple[str, str]]]  # association kind name → (from key, to key)


def _merged(configured: Iterable[str], seen: Iterable[str]) -> list[str]:
    return sorted({*configured, *seen})


def desired_state(
    snapshot: WarehouseSnapshot,
    mapping: SyncMapping,
    pipeline_id: str,
    stage_ids: Mapping[str, str],
    suppressed: Collection[str] = (),
) -> DesiredState:
    """`suppressed`: patient keys whose contact was deleted in HubSpot (SPEC §8). Nothing of them is
    wanted there: not the contact, nor its deals, appointments or associations."""
    practice_id = snapshot.practice_id
    blocked = set(suppressed)
    if blocked:
        snapshot = WarehouseSnapshot(
            practice_id,
            patients=snapshot.patients,
            rollups={k: v for k, v in snapshot.rollups.items() if k not in blocked},
            deals={k: v for k, v in snapshot.deals.items() if v["patient_key"] not in blocked},
            revenue=snapshot.revenue,
            deal_appointments=[r for r in snapshot.deal_appointments if r["patient_key"] not in blocked],
            appointments=snapshot.appointments,
            type_names=snapshot.type_names,
            chair_names=snapshot.chair_names,
        )
        wanted = {r["appointment_key"] for r in snapshot.deal_appointments}
        snapshot.appointments = {k: v for k, v in snapshot.appointments.items() if k in wanted}
    contact_keys = {
        *snapshot.rollups,
        *(d["patient_key"] for d in snapshot.deals.values()),
        *(r["patient_key"] for r in snapshot.deal_appointments),
    }
    contacts = contact_records(
        practice_id, contact_keys, snapshot.patients, snapshot.rollups, mapping.allowed_contact_fields
    )
    buckets = _merged(mapping.revenue_buckets, snapshot.buckets)
    categories = _merged(mapping.treatment_categories, snapshot.categories)
    deals = {
        key: deal_record(
            deal,
            snapshot.revenue.get(key, []),
            practice_id=practice_id,
            pipeline=mapping.pipeline,
            pipeline_id=pipeline_id,
            stage_ids=stage_ids,
            buckets=buckets,
            categories=categories,
            name_prefix=mapping.deal_name_prefix,
        )
        for key, deal in sorted(snapshot.deals.items())
    }
    appointments: dict[str, DesiredRecord] = {}
    for key, row in sorted(snapshot.appointments.items()):
        type_key = str(row.get("type_key") or "")
        chair_key = str(row.get("chair_key") or "")
        type_label = (
            mapping.appointment_type_labels.get(type_key) or snapshot.type_names.get(type_key) or type_key
        )
        appointments[key] = appointment_record(
            row,
            practice_id=practice_id,
            type_label=type_label,
            chair_label=snapshot.chair_names.get(chair_key, chair_key),
            statuses=mapping.appointment_statuses,
        )
    pairs: dict[str, set[tuple[str, str]]] = {
        kind.name: set() for kind in (CONTACT_DEAL, DEAL_APPOINTMENT, CONTACT_APPOINTMENT)
    }
    for key, deal in deals.items():
        pairs[CONTACT_DEAL.name].add((str(snapshot.deals[key]["patient_key"]), deal.key))
    for row in snapshot.deal_appointments:
        appointment_key = row["appointment_key"]
        if appointment_key not in appointments:
            continue
        if row["deal_key"] in deals:
            pairs[DEAL_APPOINTMENT.name].add((row["deal_key"], appointment_key))
        pairs[CONTACT_APPOINTMENT.name].add((row["patient_key"], appointment_key))
    return DesiredState(
        records={CONTACTS.name: contacts, DEALS.name: deals, APPOINTMENTS.name: appointments},
        pairs=pairs,
    )
