"""Portal readiness (SPEC §8) through Dagster against the strict emulator: a portal that is not ready
fails the setup asset with a message saying what to change, and `biss-pipeline hubspot doctor` lists
the same problem without writing. A portal with other association ids is read, not assumed."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import materialize

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.hubspot.portal import ALL_SCOPES, PortalConfig
from biss_pipeline.assets.hubspot import build_hubspot_assets
from biss_pipeline.cli import main
from biss_pipeline.domain.hubspot import SyncMapping
from biss_pipeline.domain.warehouse.store import Warehouse
from tests.sync.conftest import TOKEN, dagster_resources
from tests.sync.seed import Seed, write_requests
from tests.sync.test_assets import DEPS, PRACTICES


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)


NOT_READY: dict[str, tuple[dict[str, Any], list[str]]] = {
    "no appointments object": (
        {"appointments_enabled": False},
        ["appointments object", "not enabled", "activate the Appointments object"],
    ),
    "a scope missing": (
        {"scopes": {TOKEN: ALL_SCOPES - {"crm.objects.deals.write"}}},
        ["token scopes", "missing crm.objects.deals.write", "add the scopes crm.objects.deals.write"],
    ),
    "a status option missing": (
        {"appointment_status_options": ("SCHEDULED", "COMPLETED", "CANCELLED")},
        ["hs_appointment_status", "NO_SHOW not among the options", "appointment_statuses"],
    ),
    "no association type for a pair": (
        {"association_type_ids": {("deals", "appointments"): None, ("appointments", "deals"): None}},
        ["association deals→appointments", "no unlabeled HUBSPOT_DEFINED association type"],
    ),
}


def _failure_text(result: Any) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return str(failure.step_failure_data.error.to_string())


@pytest.mark.parametrize("case", sorted(NOT_READY))
def test_a_portal_that_is_not_ready_fails_the_setup_and_the_doctor_lists_it(
    case: str, sqlite_url: str, warehouse: Warehouse, emu: HubSpotEmulator,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    portal, expected = NOT_READY[case]
    emu.portal = PortalConfig.of(portal)
    Seed(patients=3).write(warehouse)
    assets = build_hubspot_assets(PRACTICES[:1], DEPS, sync_mapping=SyncMapping())

    result = materialize(assets, resources=dagster_resources(emu, sqlite_url), raise_on_error=False)

    assert not result.success
    message = _failure_text(result)
    assert "HubSpot portal setup failed" in message and "not ready" in message
    for fragment in expected:
        assert fragment in message
    assert write_requests(emu) == []  # nothing is written to a portal that is not ready
    assert TOKEN not in message

    monkeypatch.setenv("BISS_HUBSPOT_HOST", emu.base_url)
    log_mark = len(emu.request_log)
    code = main(["hubspot", "doctor"])
    report = capsys.readouterr().out

    assert code == 1
    problems = [line for line in report.splitlines() if line.startswith("[PROBLEM]")]
    assert problems and all(fragment in report for fragment in expected)
    assert "NOT READY" in report
    assert write_requests(emu, log_mark) == []


def test_a_ready_portal_gets_a_clean_report(emu: HubSpotEmulator, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BISS_HUBSPOT_HOST", emu.base_url)

    assert main(["hubspot", "doctor"]) == 0

    report = capsys.readouterr().out
    assert "[PROBLEM]" not in report and "ready for the sync" in report
    assert "association contacts→appointments: type id 907" in report
    assert "setup would create or change: create group" in report  # a fresh portal: the plan
    assert write_requests(emu) == []


def test_other_association_ids_are_read_and_used(
    sqlite_url: str, warehouse: Warehouse, emu: HubSpotEmulator
) -> None:
    emu.portal = PortalConfig(association_type_ids={
        ("contacts", "appointments"): 5907, ("appointments", "contacts"): 5906,
        ("deals", "appointments"): 5945, ("appointments", "deals"): 5944,
        ("contacts", "deals"): 5004, ("deals", "contacts"): 5003,
    })
    seed = Seed(patients=4).write(warehouse)
    assets = build_hubspot_assets(PRACTICES[:1], DEPS, sync_mapping=SyncMapping())

    result = materialize(assets, resources=dagster_resources(emu, sqlite_url))

    assert result.success
    setup = result.asset_materializations_for_node("hubspot__portal_setup")[0].metadata
    assert setup["details"].value["association_type_ids"] == {
        "association:contacts:deals": 5004,
        "association:deals:appointments": 5945,
        "association:contacts:appointments": 5907,
    }
    assert {t for _, _, t in emu.associations("contacts", "0-421")} == {5907}
    assert {t for _, _, t in emu.associations("deals", "0-421")} == {5945}
    assert {t for _, _, t in emu.associations("contacts", "deals")} == {5004}
    assert len(emu.associations("deals", "0-421")) == seed.counts["deals-appointments"]


def test_mapped_statuses_reach_hubspot_and_the_raw_status_is_kept(
    sqlite_url: str, warehouse: Warehouse, emu: HubSpotEmulator
) -> None:
    Seed(patients=6).write(warehouse)
    statuses = {"booked": "SCHEDULED", "confirmed": "SCHEDULED", "arrived": "SCHEDULED",
                "completed": "COMPLETED", "cancelled": "CANCELLED", "no_show": "NO_SHOW",
                "clarified": "RESCHEDULED"}
    mapping = SyncMapping(appointment_statuses=statuses)
    assets = build_hubspot_assets(PRACTICES[:1], DEPS, sync_mapping=mapping)

    result = materialize(assets, resources=dagster_resources(emu, sqlite_url))

    assert result.success
    appointments = [a["properties"] for a in emu.objects("0-421")]
    raw = {p["biss_ivoris_status"] for p in appointments}
    assert {"booked", "completed"} <= raw  # the seed has both
    for properties in appointments:
        assert properties["hs_appointment_status"] == statuses[properties["biss_ivoris_status"]]
