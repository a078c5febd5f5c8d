"""HubSpot follows SPEC §5 r2 (issue 12): `biss_lost_reason` carries `inactive`, and a deal reopened by a
rebooking moves back to its open stage on the next sync. The deals come from the worked example through
the staging and deals assets; the sync runs against the HubSpot emulator through the official SDK."""

from __future__ import annotations

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.hubspot import sync_practice
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_worked_example_dagster import Step, Visit, run_step
from tests.sync.conftest import make_client
from tests.sync.seed import portal_state


def deal_in_hubspot(emu: HubSpotEmulator, key: str) -> dict:
    return portal_state(emu)["deals"][key]


def test_an_inactive_loss_reaches_hubspot_with_its_reason(emu: HubSpotEmulator, warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    visits = [Visit(1, "lead", "03-01", "completed")]
    run_step(warehouse_url, Step(visits, as_of="03-02"))
    assert sync_practice(make_client(emu), warehouse, "mb").errors == 0
    assert deal_in_hubspot(emu, "MB_1")["dealstage"] == "Erstberatung"
    assert "biss_lost_reason" not in deal_in_hubspot(emu, "MB_1")

    run_step(warehouse_url, Step(visits, as_of="06-29"))  # 120 days after A1: lost, inactive
    assert sync_practice(make_client(emu), warehouse, "mb").errors == 0
    deal = deal_in_hubspot(emu, "MB_1")
    assert (deal["dealstage"], deal["biss_lost_reason"]) == ("Verloren", "inactive")


def test_a_reopened_deal_moves_back_to_its_open_stage(emu: HubSpotEmulator, warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    cancelled = Visit(1, "lead", "03-01", "cancelled")
    run_step(warehouse_url, Step([cancelled], as_of="03-02"))
    assert sync_practice(make_client(emu), warehouse, "mb").errors == 0
    deal = deal_in_hubspot(emu, "MB_1")
    assert (deal["dealstage"], deal["biss_lost_reason"]) == ("Verloren", "cancelled")

    # A3 booked within rebook_days of A1: the same journey, MB_1 reopens with A3; no second deal
    run_step(warehouse_url, Step([cancelled, Visit(3, "lead", "03-20", "booked")], as_of="03-02"))
    assert sync_practice(make_client(emu), warehouse, "mb").errors == 0
    state = portal_state(emu)
    assert set(state["deals"]) == {"MB_1"}
    assert state["deals"]["MB_1"]["dealstage"] == "Termin gebucht"
    assert "biss_lost_reason" not in state["deals"]["MB_1"]  # cleared, not left at "cancelled"
    assert ("MB_1", "MB_3") in state["deals-appointments"]
