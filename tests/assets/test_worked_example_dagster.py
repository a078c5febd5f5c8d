"""SPEC §5 rev. 2, the worked example, steps 1–7 through Dagster: raw rows as the extraction writes
them → the staging asset → the deals asset (and its checks), on SQLite and PostgreSQL.

The example's A1..A4 are Ivoris ids 1..4 (keys `MB_1`..`MB_4`) of patient 553, with the shipped
mapping's types: 1 Erstberatung (`lead`), 4 Füllungstherapie (`treatment`), 2 Kontrolluntersuchung
(`followup`). The year is 2024, as in the pure tests (`tests/logic/test_worked_example.py`). Each step
is its own state of Ivoris; the as-of date is set in the deals run's config, where a step needs one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import AssetCheckKey, RunConfig, materialize

from biss_pipeline.assets.deals import DealsConfig, build_practice_deal_assets
from biss_pipeline.assets.staging import build_practice_staging_assets
from biss_pipeline.checks.deals import build_deal_quality_checks
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.keys import practice_asset_key
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource

PRACTICE = PracticeConfig(practice_id="mb", name="Zahnarztpraxis Magdeburg", key_prefix="MB_",
                          ivoris_base_url="http://127.0.0.1:9/sites/mb", api_key_env="TEST_IVORIS_KEY_MB",
                          history_start=dt.date(2024, 1, 1), active=True)
MAPPING_FILE = PROJECT_ROOT / "config" / "mapping.yaml"
TYPE = {"lead": "1", "treatment": "4", "followup": "2"}
WINDOW = (dt.date(2024, 2, 1), dt.date(2024, 6, 30))


@dataclass(frozen=True)
class Visit:
    ivoris_id: int
    role: str
    on: str  # MM-DD of 2024
    status: str


@dataclass
class Step:
    visits: list[Visit]
    entries: list[tuple[int, int | None, str, str]] = field(default_factory=list)  # id, appt, day, amount
    as_of: str | None = None


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(f"2024-{text}")


def seed_raw(warehouse: Warehouse, step: Step) -> None:
    """What the raw assets write for the step's Ivoris state (text columns, partitioned by day)."""
    modified = "2024-01-15T08:00:00Z"
    appointments = [
        {"practice_id": "mb", "partition_date": _day(v.on), "appointment_key": f"MB_{v.ivoris_id}",
         "ivoris_id": str(v.ivoris_id), "patient_id": "553", "chair_id": "1", "type_id": TYPE[v.role],
         "start": f"2024-{v.on}T09:00:00", "end": f"2024-{v.on}T09:30:00", "status": v.status,
         "modified_at": modified}
        for v in step.visits
    ]
    patients = [
        {"practice_id": "mb", "partition_date": _day(v.on), "patient_key": "MB_553", "ivoris_id": "553",
         "first_name": "Erika", "last_name": "Muster", "birth_date": "1980-05-05", "email": None,
         "phone": None, "insurance": "GKV", "modified_at": modified, "reason": "appointment"}
        for v in step.visits
    ]
    entries = [
        {"practice_id": "mb", "partition_date": _day(on), "entry_key": f"MB_{entry_id}",
         "ivoris_id": str(entry_id), "patient_id": "553",
         "appointment_id": None if appointment is None else str(appointment), "entry_date": f"2024-{on}",
         "entry_type": "goz", "code": "2060", "description": "Füllung", "amount": amount,
         "modified_at": modified}
        for entry_id, appointment, on, amount in step.entries
    ]
    types = [{"type_key": f"MB_{i}", "practice_id": "mb", "ivoris_id": str(i), "code": None, "name": None,
              "duration_min": None} for i in range(1, 15)]
    warehouse.replace_practice_rows(schema.appointment_types, "mb", types)
    for table, rows in ((schema.raw_appointments, appointments), (schema.raw_patients, patients),
                        (schema.raw_document_entries, entries)):
        warehouse.replace_partitions(table, "mb", *WINDOW, rows)


def run_step(url: str, step: Step) -> dict[str, Any]:
    """Seed, then stage the window and compute the deals through Dagster; the stored deals and checks."""
    warehouse = WarehouseResource(url=url).get()
    seed_raw(warehouse, step)
    resources = {"warehouse": WarehouseResource(url=url), "mapping": MappingResource(path=str(MAPPING_FILE))}
    staged = materialize(
        build_practice_staging_assets(PRACTICE), resources=resources,
        tags={"dagster/asset_partition_range_start": WINDOW[0].isoformat(),
              "dagster/asset_partition_range_end": WINDOW[1].isoformat()})
    assert staged.success
    deals_asset = build_practice_deal_assets(PRACTICE, upstream=[])
    result = materialize(
        [*deals_asset, *build_deal_quality_checks("mb")], resources=resources,
        run_config=RunConfig(ops={"mb_deals": DealsConfig(
            as_of=_day(step.as_of).isoformat() if step.as_of else None)}))
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"uncounted_revenue", "stale_appointments"}
    assert {AssetCheckKey(practice_asset_key("mb", "deals"), name) for name in checks}
    deals = {row["deal_key"]: row for row in warehouse.read_rows(sa.select(schema.deals))}
    members = warehouse.read_rows(sa.select(schema.deal_appointments))
    uncounted = warehouse.read_rows(sa.select(schema.uncounted_entries))
    return {"deals": deals, "members": {m["appointment_key"]: m for m in members},
            "uncounted": uncounted, "checks": checks}


STEP_3 = [Visit(1, "lead", "03-01", "completed"), Visit(2, "treatment", "03-10", "completed")]
A2_ENTRY = (9001, 2, "03-10", "480.00")


def test_step_1_a_booked_lead_opens_mb_1_in_termin_gebucht(warehouse_url: str) -> None:
    out = run_step(warehouse_url, Step([Visit(1, "lead", "03-01", "booked")], as_of="02-20"))
    assert {k: d["stage"] for k, d in out["deals"].items()} == {"MB_1": "termin_gebucht"}
    assert out["checks"]["stale_appointments"].passed


def test_step_2_a1_completed_gives_erstberatung(warehouse_url: str) -> None:
    out = run_step(warehouse_url, Step([Visit(1, "lead", "03-01", "completed")], as_of="03-01"))
    deal = out["deals"]["MB_1"]
    assert (deal["stage"], deal["lead_completed"]) == ("erstberatung", True)


def test_step_3_billed_treatment_gives_in_behandlung(warehouse_url: str) -> None:
    out = run_step(warehouse_url, Step(STEP_3, [A2_ENTRY], as_of="03-10"))
    deal = out["deals"]["MB_1"]
    assert (deal["stage"], deal["behandlungsstart"], deal["amount_cents"]) == (
        "in_behandlung", _day("03-10"), 48000)
    assert out["checks"]["uncounted_revenue"].passed


def test_step_4_a2_set_back_reports_the_480_as_uncounted(warehouse_url: str) -> None:
    visits = [STEP_3[0], Visit(2, "treatment", "03-10", "booked")]
    out = run_step(warehouse_url, Step(visits, [A2_ENTRY], as_of="03-11"))
    deal = out["deals"]["MB_1"]
    assert (deal["stage"], deal["behandlungsstart"], deal["amount_cents"]) == ("erstberatung", None, 0)
    assert [(u["entry_key"], u["amount_cents"], u["reason"], u["detail"]) for u in out["uncounted"]] == [
        ("MB_9001", 48000, "appointment_not_completed", "booked")]
    check = out["checks"]["uncounted_revenue"]
    assert not check.passed and check.metadata["uncounted_eur"].value == 480.0


@pytest.mark.parametrize(("a3_on", "expected"), [
    ("03-20", {"MB_1": ("termin_gebucht", 1)}),  # within rebook_days of A1: MB_1 reopens
    ("05-15", {"MB_1": ("verloren", 0), "MB_3": ("termin_gebucht", 0)}),  # beyond: A3 opens MB_3
])
def test_step_5_a1_cancelled_then_rebooked(warehouse_url: str, a3_on: str,
                                           expected: dict[str, tuple[str, int]]) -> None:
    lost = run_step(warehouse_url, Step([Visit(1, "lead", "03-01", "cancelled")], as_of="03-02"))
    assert (lost["deals"]["MB_1"]["stage"], lost["deals"]["MB_1"]["lost_reason"]) == ("verloren", "cancelled")
    out = run_step(warehouse_url, Step([Visit(1, "lead", "03-01", "cancelled"),
                                        Visit(3, "lead", a3_on, "booked")], as_of="03-02"))
    assert {k: (d["stage"], d["reopened_count"]) for k, d in out["deals"].items()} == expected


def test_step_6_nothing_for_120_days_is_lost_inactive(warehouse_url: str) -> None:
    visits = [Visit(1, "lead", "03-01", "completed")]
    assert run_step(warehouse_url, Step(visits, as_of="06-28"))["deals"]["MB_1"]["stage"] == "erstberatung"
    deal = run_step(warehouse_url, Step(visits, as_of="06-29"))["deals"]["MB_1"]  # 03-01 + 120 days
    assert (deal["stage"], deal["lost_reason"], deal["closed_date"]) == (
        "verloren", "inactive", _day("06-29"))


def test_step_7_a4_left_booked_is_stale_and_the_deal_still_closes(warehouse_url: str) -> None:
    visits = [*STEP_3, Visit(4, "followup", "03-17", "booked")]
    out = run_step(warehouse_url, Step(visits, [A2_ENTRY], as_of="03-21"))
    assert out["members"]["MB_4"]["is_stale"]
    stale = out["checks"]["stale_appointments"]
    assert not stale.passed
    assert stale.metadata["stale_appointments"].value == 1
    assert stale.metadata["oldest_appointment_key"].value == "MB_4"
    out = run_step(warehouse_url, Step(visits, [A2_ENTRY], as_of="05-10"))
    deal = out["deals"]["MB_1"]
    assert (deal["stage"], deal["closed_date"]) == ("abgeschlossen", _day("05-09"))  # 60 days after A2
    assert out["checks"]["stale_appointments"].metadata["appointment_keys"].value == ["MB_4"]
