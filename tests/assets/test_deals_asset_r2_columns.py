"""The columns SPEC §5 rev. 2 added (deals.reopened_count, deal_appointments.is_stale) reach the warehouse
through the deals asset with the values the pure logic computed, not the migration's defaults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from biss_pipeline.domain.deals.entry_rules import classify_entries
from biss_pipeline.domain.deals.refresh import load_current_inputs, refresh_deals
from biss_pipeline.domain.deals.rules import compute_deals, stale_appointments
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_deals_asset import RULES, stage_everything
from tests.assets.test_ivoris_raw import RANGE_END, extract

# Late enough that bookings of the extracted window nobody updated are stale.
AS_OF = RANGE_END + dt.timedelta(days=10)


def stored(warehouse: Warehouse, table: sa.Table, columns: list[str]) -> pd.DataFrame:
    rows = warehouse.read_rows(sa.select(*(table.c[name] for name in columns)))
    return pd.DataFrame(rows, columns=columns).sort_values(columns[0], ignore_index=True)


def test_reopened_count_and_is_stale_are_stored(
    sqlite_url: str, mapping_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.instance_for_test import instance_for_test

    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    warehouse = WarehouseResource(url=sqlite_url).get()
    with instance_for_test() as instance:
        extract(mapping_file, instance)
    stage_everything(warehouse)
    refresh_deals(warehouse, "mb", RULES, as_of=AS_OF)

    appointments, entries = load_current_inputs(warehouse, "mb", RULES.deal_roles)
    mapped = appointments.loc[appointments["deal_role"].notna()]
    expected = compute_deals(mapped, classify_entries(entries, RULES.entry_rules), RULES.settings, AS_OF)
    members = stored(warehouse, schema.deal_appointments, ["appointment_key", "is_stale"])
    deals = stored(warehouse, schema.deals, ["deal_key", "reopened_count"])
    want_members = expected.deal_appointments[["appointment_key", "is_stale"]].sort_values(
        "appointment_key", ignore_index=True
    )
    want_deals = expected.deals[["deal_key", "reopened_count"]].sort_values("deal_key", ignore_index=True)
    assert members.astype({"appointment_key": str, "is_stale": bool}).equals(
        want_members.astype({"appointment_key": str, "is_stale": bool})
    )
    assert deals.astype({"deal_key": str, "reopened_count": int}).equals(
        want_deals.astype({"deal_key": str, "reopened_count": int})
    )
    # The emulator leaves some bookings untouched and reschedules some, so the flags are not all default.
    stale = stale_appointments(mapped, RULES.settings, AS_OF)
    if stale.empty or not (deals["reopened_count"] > 0).any():
        pytest.fail("the emulator data has no stale appointment or no reopened deal; the test proves nothing")
    assert sorted(members.loc[members["is_stale"].astype(bool), "appointment_key"]) == sorted(
        stale["appointment_key"]
    )
