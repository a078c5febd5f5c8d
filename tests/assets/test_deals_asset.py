"""Raw → staging → deals over the emulator, without Dagster: incremental equals full rebuild."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.domain.deals.entry_rules import EntryRule
from biss_pipeline.domain.deals.refresh import DealRules, refresh_deals
from biss_pipeline.domain.deals.rules import DealSettings
from biss_pipeline.domain.staging.rules import stage_appointments, stage_document_entries, stage_patients
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_ivoris_raw import RANGE_END, RANGE_START, extract

ROLES = {1: "lead", 10: "lead", 13: "lead", 2: "followup", 11: "followup", 14: "ignore"}
RULES = DealRules(
    deal_roles={f"MB_{i}": ROLES.get(i, "treatment") for i in range(1, 15)},
    entry_rules=[EntryRule("text", "*", False, "none", "Sonstiges"),
                 EntryRule("pabg", "*", True, "pabg", "Sonstiges"),
                 EntryRule("goz", "*", True, "goz", "Füllung"),
                 EntryRule("bema", "*", True, "bema", "Prophylaxe"),
                 EntryRule("mat", "*", True, "material", "Sonstiges"),
                 EntryRule("lab", "*", True, "labor", "Prothetik")],
    settings=DealSettings(close_after_days=21),
    mapping_hash="test-mapping",
)
DEAL_TABLES = (schema.deals, schema.deal_appointments, schema.deal_revenue, schema.deal_entries,
               schema.uncounted_entries, schema.contact_rollups)


def stage_everything(warehouse) -> None:
    """Stage all raw rows of mb in one go (what the staging asset does per window)."""
    raw = {t.name: warehouse.read_rows(sa.select(t).where(t.c.practice_id == "mb"))
           for t in (schema.raw_patients, schema.raw_appointments, schema.raw_document_entries)}
    types = {r["type_key"] for r in warehouse.read_rows(sa.select(schema.appointment_types))}
    staged = {
        schema.stg_patients: stage_patients(raw["raw_patients"], as_of=RANGE_END),
        schema.stg_appointments: stage_appointments(
            raw["raw_appointments"], "MB_", {r["patient_key"] for r in raw["raw_patients"]}, types),
        schema.stg_document_entries: stage_document_entries(raw["raw_document_entries"], "MB_"),
    }
    for table, result in staged.items():
        warehouse.replace_partitions(table, "mb", dt.date(2020, 1, 1), dt.date(2030, 1, 1), result.rows)


def snapshot(warehouse) -> dict[str, list[tuple]]:
    return {t.name: sorted(tuple(map(str, r.values())) for r in warehouse.read_rows(sa.select(t)))
            for t in DEAL_TABLES}


@pytest.fixture
def warehouse_env(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", warehouse_url)
    return warehouse_url


def test_incremental_refresh_equals_a_full_rebuild(warehouse_env: str, mapping_file, ivoris: IvorisEmulator,
                                                   tmp_path) -> None:
    from dagster._core.instance_for_test import instance_for_test

    warehouse = WarehouseResource(url=warehouse_env).get()
    with instance_for_test() as instance:
        extract(mapping_file, instance)
        stage_everything(warehouse)
        first = refresh_deals(warehouse, "mb", RULES)
        assert first["mode"] == "full rebuild (first run)"
        assert first["deals"] > 0

        unchanged = refresh_deals(warehouse, "mb", RULES)
        assert unchanged["mode"] == "incremental" and unchanged["patients_recomputed"] == 0

        # Ivoris moves on two days: new bookings, completions, cancellations.
        ivoris.advance_clock(dt.timedelta(days=2))
        extract(mapping_file, instance, start=RANGE_START, end=RANGE_END)
        stage_everything(warehouse)
        incremental = refresh_deals(warehouse, "mb", RULES)
        after_incremental = snapshot(warehouse)
        full = refresh_deals(warehouse, "mb", RULES, full_rebuild=True)

    assert incremental["mode"] == "incremental"
    assert 0 < incremental["patients_recomputed"] < incremental["patients_total"]
    assert full["mode"] == "full rebuild (requested)"
    assert snapshot(warehouse) == after_incremental


def test_a_mapping_change_rebuilds_everything(sqlite_url: str, mapping_file, monkeypatch) -> None:
    from dagster._core.instance_for_test import instance_for_test

    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    warehouse = WarehouseResource(url=sqlite_url).get()
    with instance_for_test() as instance:
        extract(mapping_file, instance)
    stage_everything(warehouse)
    refresh_deals(warehouse, "mb", RULES)
    changed = DealRules(RULES.deal_roles, RULES.entry_rules, DealSettings(close_after_days=90), "other-hash")
    figures = refresh_deals(warehouse, "mb", changed)
    assert figures["mode"] == "full rebuild (mapping changed)"
    assert figures["patients_recomputed"] == figures["patients_total"]
    amounts = warehouse.read_rows(sa.select(sa.func.sum(schema.deals.c.amount_cents)))
    revenue = warehouse.read_rows(sa.select(sa.func.sum(schema.deal_revenue.c.amount_cents)))
    assert amounts == revenue  # per-bucket revenue adds up to deal amounts exactly
