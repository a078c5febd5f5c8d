"""A small practice in the warehouse (staging, deals, roll-ups), written straight into the tables, and
helpers to compare the emulator's portal with it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.deals.rules import STAGE_LABELS, Stage
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

BASE_DAY = dt.date(2026, 3, 2)
MODIFIED = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
STAGES = [s.value for s in Stage]
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
VOLATILE = {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_createdate"}


@dataclass
class Seed:
    practice_id: str = "mb"
    prefix: str = "MB_"
    patients: int = 12
    shared_email: bool = True  # patients 1 and 2 share an address (a family)
    invalid_email: bool = False  # patient 3's address fails the syntax check
    moved_appointment: bool = True  # one appointment also sits, older, in another partition
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def patient_key(self, i: int) -> str:
        return f"{self.prefix}P{i:04d}"

    def build(self) -> Seed:
        p, pid = self.prefix, self.practice_id
        rows: dict[str, list[dict[str, Any]]] = {
            name: []
            for name in (
                "chairs",
                "appointment_types",
                "stg_patients",
                "stg_appointments",
                "deals",
                "deal_appointments",
                "deal_revenue",
                "contact_rollups",
            )
        }
        rows["chairs"] = [
            {
                "chair_key": f"{p}C{c}",
                "practice_id": pid,
                "ivoris_id": str(c),
                "name": f"Behandlungsraum {c}",
                "dentist": "Dr. Zahn",
            }
            for c in range(3)
        ]
        rows["appointment_types"] = [
            {
                "type_key": f"{p}T1",
                "practice_id": pid,
                "ivoris_id": "1",
                "code": "EB",
                "name": "Erstberatung",
                "duration_min": "30",
            },
            {
                "type_key": f"{p}T2",
                "practice_id": pid,
                "ivoris_id": "2",
                "code": "BH",
                "name": "Behandlung",
                "duration_min": "60",
            },
        ]
        for i in range(self.patients):
            key = self.patient_key(i)
            email = f"patient{i}@example.org"
            if self.shared_email and i in (1, 2):
                email = "Familie.Schmidt@example.org" if i == 1 else "familie.schmidt@example.org "
            if self.invalid_email and i == 3:
                email = "kein-at-zeichen.example.org"
            day = BASE_DAY + dt.timedelta(days=i % 20)
            rows["stg_patients"].append(
                {
                    "practice_id": pid,
                    "partition_date": day,
                    "patient_key": key,
                    "first_name": f"Vorname{i}",
                    "last_name": f"Nachname{i}",
                    "birth_date": dt.date(1980, 1, 1) + dt.timedelta(days=97 * i),
                    "email": email,
                    "phone": f"+49 391 {100000 + i}",
                    "insurance": "GKV" if i % 2 else "PKV",
                    "modified_at": MODIFIED,
                }
            )
            if i == 0:  # an older version of the same patient in an earlier partition
                rows["stg_patients"].append(
                    {
                        **rows["stg_patients"][-1],
                        "partition_date": day - dt.timedelta(days=1),
                        "first_name": "Altname",
                        "modified_at": MODIFIED - dt.timedelta(days=3),
                    }
                )
            n_deals = 2 if i % 3 == 0 else 1
            open_deals, lifetime = 0, 0
            dates: list[dt.date] = []
            for d in range(n_deals):
                stage = STAGES[(i + d) % 5] if d == n_deals - 1 else Stage.VERLOREN.value
                appointment_keys = [f"{p}A{i:04d}{d}{a}" for a in range(2)]
                deal_key = appointment_keys[0]
                amount = 0
                if stage in (Stage.IN_BEHANDLUNG.value, Stage.ABGESCHLOSSEN.value):
                    for bucket, category, cents in (("goz", "Füllung", 48000), ("bema", "Prophylaxe", 2550)):
                        rows["deal_revenue"].append(
                            {
                                "deal_key": deal_key,
                                "practice_id": pid,
                                "patient_key": key,
                                "revenue_bucket": bucket,
                                "treatment_category": category,
                                "amount_cents": cents,
                            }
                        )
                        amount += cents
                first = BASE_DAY + dt.timedelta(days=i + 40 * d)
                for a, appointment_key in enumerate(appointment_keys):
                    start = dt.datetime.combine(first + dt.timedelta(days=7 * a), dt.time(8 + i % 8, 30))
                    dates.append(start.date())
                    status = "completed" if a == 0 or stage != Stage.TERMIN_GEBUCHT.value else "booked"
                    row = {
                        "practice_id": pid,
                        "partition_date": start.date(),
                        "appointment_key": appointment_key,
                        "patient_key": key,
                        "chair_key": f"{p}C{(i + a) % 3}",
                        "type_key": f"{p}T{1 + a}",
                        "start": start,
                        "end": start + dt.timedelta(minutes=45),
                        "status": status,
                        "modified_at": MODIFIED,
                    }
                    rows["stg_appointments"].append(row)
                    if self.moved_appointment and i == 1 and a == 1:
                        rows["stg_appointments"].append(
                            {
                                **row,
                                "partition_date": start.date() - dt.timedelta(days=2),
                                "start": start - dt.timedelta(days=2),
                                "end": start - dt.timedelta(days=2, minutes=-45),
                                "modified_at": MODIFIED - dt.timedelta(days=1),
                            }
                        )
                    rows["deal_appointments"].append(
                        {
                            "deal_key": deal_key,
                            "practice_id": pid,
                            "patient_key": key,
                            "appointment_key": appointment_key,
                        }
                    )
                is_open = Stage(stage).is_open
                open_deals += int(is_open)
                lifetime += amount
                rows["deals"].append(
                    {
                        "deal_key": deal_key,
                        "practice_id": pid,
                        "patient_key": key,
                        "stage": stage,
                        "stage_label": STAGE_LABELS[stage],
                        "stage_number": Stage(stage).number,
                        "is_open": is_open,
                        "opened_by_appointment_key": deal_key,
                        "driving_appointment_key": appointment_keys[-1],
                        "first_appointment_date": first,
                        "last_appointment_date": first + dt.timedelta(days=7),
                        "behandlungsstart": first if stage in ("in_behandlung", "abgeschlossen") else None,
                        "closed_date": first + dt.timedelta(days=67) if not is_open else None,
                        "amount_cents": amount,
                        "treatment_category": "Füllung" if amount else None,
                        "lost_reason": "cancelled" if stage == "verloren" else None,
                        "num_appointments": len(appointment_keys),
                    }
                )
            rows["contact_rollups"].append(
                {
                    "practice_id": pid,
                    "patient_key": key,
                    "num_deals": n_deals,
                    "num_open_deals": open_deals,
                    "last_appointment_date": max(dates),
                    "next_appointment_date": None,
                    "lifetime_revenue_cents": lifetime,
                }
            )
        self.rows = rows
        return self

    @property
    def counts(self) -> dict[str, int]:
        return {
            "contacts": len(self.rows["contact_rollups"]),
            "deals": len(self.rows["deals"]),
            "appointments": len(self.rows["deal_appointments"]),
            "contacts-deals": len(self.rows["deals"]),
            "deals-appointments": len(self.rows["deal_appointments"]),
            "contacts-appointments": len(self.rows["deal_appointments"]),
        }

    def write(self, warehouse: Warehouse) -> Seed:
        if not self.rows:
            self.build()
        with warehouse.transaction() as connection:
            for name, table_rows in self.rows.items():
                table = schema.metadata.tables[name]
                connection.execute(table.delete().where(table.c.practice_id == self.practice_id))
                if table_rows:
                    connection.execute(table.insert(), table_rows)
        return self


def set_deal_stage(warehouse: Warehouse, deal_key: str, stage: str) -> None:
    with warehouse.transaction() as connection:
        connection.execute(
            schema.deals.update()
            .where(schema.deals.c.deal_key == deal_key)
            .values(
                stage=stage,
                stage_label=STAGE_LABELS[stage],
                stage_number=Stage(stage).number,
                is_open=Stage(stage).is_open,
            )
        )


def update_rows(warehouse: Warehouse, table: sa.Table, where: sa.ColumnElement[bool], **values: Any) -> None:
    with warehouse.transaction() as connection:
        connection.execute(table.update().where(where).values(**values))


def ledger_rows(warehouse: Warehouse) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["object_type"], r["record_key"]): r for r in warehouse.read_rows(sa.select(schema.hubspot_ledger))
    }


def write_requests(emu: HubSpotEmulator, since: int = 0) -> list[Any]:
    """Write calls the emulator received (every POST/PATCH/PUT/DELETE except search, batch reads and
    the token-info read of the portal setup)."""
    return [
        r
        for r in emu.request_log[since:]
        if r.method in WRITE_METHODS and not r.path.endswith(("/search", "/batch/read", "/access-token-info"))
    ]


def portal_state(emu: HubSpotEmulator) -> dict[str, Any]:
    """The portal by business keys (no HubSpot ids, no timestamps); fails on duplicate keys."""
    pipelines = emu.state.pipelines["deals"]
    stage_labels = {s["id"]: s["label"] for pl in pipelines.values() for s in pl["stages"]}
    pipeline_labels = {pid: pl["label"] for pid, pl in pipelines.items()}
    state: dict[str, Any] = {}
    key_by_id: dict[str, dict[str, str]] = {}
    for name, id_property in (
        ("contacts", "ivoris_patient_id"),
        ("deals", "ivoris_deal_key"),
        ("appointments", "ivoris_appointment_id"),
    ):
        objects = emu.objects(name)
        keys = Counter(o["properties"].get(id_property) for o in objects)
        duplicates = {k: n for k, n in keys.items() if n > 1}
        assert not duplicates, f"duplicate {name}: {duplicates}"
        by_key = {}
        for obj in objects:
            props = {k: v for k, v in obj["properties"].items() if k not in VOLATILE and v not in (None, "")}
            if "dealstage" in props:
                props["dealstage"] = stage_labels[props["dealstage"]]
            if "pipeline" in props:
                props["pipeline"] = pipeline_labels[props["pipeline"]]
            by_key[props[id_property]] = props
        key_by_id[name] = {o["id"]: o["properties"][id_property] for o in objects}
        state[name] = by_key
    for source, target in (("contacts", "deals"), ("deals", "appointments"), ("contacts", "appointments")):
        state[f"{source}-{target}"] = sorted(
            (key_by_id[source][f], key_by_id[target][t]) for f, t, _ in emu.associations(source, target)
        )
    state["pipelines"] = sorted(
        (pl["label"], tuple(s["label"] for s in pl["stages"] if not s.get("archived")))
        for pl in pipelines.values()
        if not pl.get("archived")
    )
    return state
