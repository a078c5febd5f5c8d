"""Drift behind the ledger's back (SPEC §8), repaired through Dagster against the HubSpot emulator.

Each case: a clean sync, then a change made in HubSpot through its public API (as a person or another
integration would), then the nightly run (tag `sync=nightly`): the portal must end in the state SPEC §8
prescribes, compared by Ivoris key, every property value and every association, and a second run after
the repair must write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from dagster import AssetKey, ExecuteInProcessResult, materialize
from hubspot.crm.objects import SimplePublicObjectInput

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.assets.hubspot import build_hubspot_assets
from biss_pipeline.checks.hubspot import build_hubspot_checks
from biss_pipeline.cli import main as cli_main
from biss_pipeline.domain.hubspot import SyncMapping
from biss_pipeline.domain.hubspot.ledger import Ledger
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.keys import SYNC_KIND_TAG
from biss_pipeline.resources.mapping import MappingResource
from tests.checks.helpers import contact_id_by_key, deal_by_key, sdk
from tests.sync.conftest import TOKEN, dagster_resources
from tests.sync.seed import Seed, ledger_rows, portal_state, write_requests

PID = "mb"
# the shipped mapping file, which the CLI commands read too (the mapping source of production)
MAPPING = SyncMapping.from_mapping(MappingResource().load())
NIGHTLY = {SYNC_KIND_TAG: "nightly"}


@dataclass(frozen=True)
class Practice:
    practice_id: str


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)


def _run(emu: HubSpotEmulator, sqlite_url: str, tags: dict[str, str] | None = None,
         raise_on_error: bool = True) -> ExecuteInProcessResult:
    assets = build_hubspot_assets([Practice(PID)], {PID: [AssetKey([PID, "deals"])]}, sync_mapping=MAPPING)
    checks = build_hubspot_checks([PID], sync_mapping=MAPPING)
    return materialize([*assets, *checks], resources=dagster_resources(emu, sqlite_url), tags=tags,
                       raise_on_error=raise_on_error)


def _sync_metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node("hubspot__mb__sync")
    return {k: v.value for k, v in event.metadata.items()}


def _checks(result: ExecuteInProcessResult) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _synced(emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse) -> tuple[Seed, dict[str, Any]]:
    seed = Seed(patients=10).write(warehouse)
    first = _run(emu, sqlite_url)
    assert first.success and _sync_metadata(first)["errors"] == 0
    return seed, portal_state(emu)


def _assert_quiet_second_run(emu: HubSpotEmulator, sqlite_url: str) -> None:
    since = len(emu.request_log)
    again = _run(emu, sqlite_url, NIGHTLY)
    assert again.success
    assert write_requests(emu, since) == []
    assert _sync_metadata(again)["write_calls"] == 0
    checks = _checks(again)
    assert checks["ledger_reconciliation"].passed, checks["ledger_reconciliation"].metadata
    assert checks["duplicate_deals"].passed, checks["duplicate_deals"].metadata


def _log(warehouse: Warehouse) -> list[tuple[str, str, str]]:
    return [(r["action"], r["object_type"], r["record_key"]) for r in Ledger(warehouse).read_log(PID)]


def test_edited_values_are_set_back(emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse) -> None:
    seed, baseline = _synced(emu, sqlite_url, warehouse)
    deal_key = seed.rows["deals"][0]["deal_key"]
    patient = seed.rows["contact_rollups"][3]["patient_key"]
    current = deal_by_key(emu, deal_key)["properties"]
    other_stage = next(s["id"] for s in emu.state.pipelines["deals"][current["pipeline"]]["stages"]
                       if s["id"] != current["dealstage"])
    client = sdk(emu)
    client.crm.deals.basic_api.update(deal_by_key(emu, deal_key)["id"], SimplePublicObjectInput(
        properties={"dealstage": other_stage, "amount": "1.00"}))
    client.crm.contacts.basic_api.update(contact_id_by_key(emu, patient), SimplePublicObjectInput(
        properties={"biss_num_deals": "99", "city": "owned by HubSpot users"}))

    intraday = _run(emu, sqlite_url)  # intraday: verifies what it writes; no drift repair, no write
    assert _sync_metadata(intraday)["write_calls"] == 0
    repair = _run(emu, sqlite_url, NIGHTLY)

    assert repair.success
    metadata = _sync_metadata(repair)
    assert (metadata["deals_drifted"], metadata["contacts_drifted"]) == (1, 1)
    state = portal_state(emu)
    assert state["contacts"][patient].pop("city") == "owned by HubSpot users"  # not pipeline-owned
    assert state == baseline
    assert sorted(_log(warehouse)) == [("set_back", "contacts", patient), ("set_back", "deals", deal_key)]
    reasons = {r["record_key"]: r["reason"] for r in Ledger(warehouse).read_log(PID)}
    assert reasons[deal_key] == "edited in HubSpot: amount,dealstage"  # names, never values
    _assert_quiet_second_run(emu, sqlite_url)


@pytest.mark.parametrize("kind", ["deals", "appointments"])
def test_a_deleted_deal_or_appointment_is_recreated_with_its_associations(
    emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse, kind: str
) -> None:
    seed, baseline = _synced(emu, sqlite_url, warehouse)
    id_property = {"deals": "ivoris_deal_key", "appointments": "ivoris_appointment_id"}[kind]
    key = (seed.rows["deals"][1]["deal_key"] if kind == "deals"
           else seed.rows["deal_appointments"][2]["appointment_key"])
    victim = next(o["id"] for o in emu.objects(kind) if o["properties"][id_property] == key)
    sdk(emu).crm.objects.basic_api.archive(kind, victim)
    assert key not in portal_state(emu)[kind]

    repair = _run(emu, sqlite_url, NIGHTLY)

    assert repair.success
    metadata = _sync_metadata(repair)
    assert (metadata[f"{kind}_missing"], metadata[f"{kind}_recreated"]) == (1, 1)
    assert portal_state(emu) == baseline  # same keys, values and associations, under a new id
    assert ledger_rows(warehouse)[(kind, key)]["hubspot_id"] != victim
    assert _log(warehouse) == [("recreate", kind, key)]
    _assert_quiet_second_run(emu, sqlite_url)


def test_a_deleted_contact_suppresses_its_patient_until_the_command_lifts_it(
    emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed, baseline = _synced(emu, sqlite_url, warehouse)
    patient = seed.rows["deals"][0]["patient_key"]
    sdk(emu).crm.contacts.basic_api.archive(contact_id_by_key(emu, patient))
    # the patient's data changes in Ivoris meanwhile: still nothing of it may be sent
    deal_key = seed.rows["deals"][0]["deal_key"]
    with warehouse.transaction() as connection:
        from biss_pipeline.domain.warehouse import schema

        connection.execute(schema.deals.update().where(schema.deals.c.deal_key == deal_key)
                           .values(amount_cents=123456))
    since = len(emu.request_log)

    repair = _run(emu, sqlite_url, NIGHTLY)

    assert repair.success
    metadata = _sync_metadata(repair)
    assert (metadata["contacts_missing"], metadata["contacts_suppressed"]) == (1, 1)
    assert metadata["suppressed_patients"] == 1
    state = portal_state(emu)
    assert patient not in state["contacts"]
    expected = {**baseline, "contacts": {k: v for k, v in baseline["contacts"].items() if k != patient}}
    for pairs in ("contacts-deals", "contacts-appointments"):
        expected[pairs] = [p for p in baseline[pairs] if p[0] != patient]
    assert state == expected  # its deal kept the old amount: nothing of the patient was sent
    assert not [r for r in write_requests(emu, since) if "/deals/" in r.path]  # its changed deal: not sent
    assert ledger_rows(warehouse)[("contacts", patient)]["status"] == "suppressed"
    assert _log(warehouse) == [("suppress", "contacts", patient)]
    suppressed = _checks(repair)["suppressed_patients"]
    assert not suppressed.passed and suppressed.metadata["patient_keys"].value == [patient]
    _assert_quiet_second_run(emu, sqlite_url)

    # the documented command lifts it; the next run creates the contact and its associations again
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    assert cli_main(["hubspot", "suppressed", "--practice", PID]) == 0
    assert patient in capsys.readouterr().out
    assert cli_main(["hubspot", "unsuppress", "--practice", PID, "--patient", patient]) == 0
    lifted = _run(emu, sqlite_url)
    assert lifted.success and _checks(lifted)["suppressed_patients"].passed
    state = portal_state(emu)
    assert patient in state["contacts"]
    assert {p for p in state["contacts-deals"] if p[0] == patient} == {
        p for p in baseline["contacts-deals"] if p[0] == patient}
    assert state["deals"][deal_key]["amount"] == "1234.56"
    _assert_quiet_second_run(emu, sqlite_url)


def test_a_portal_reset_stops_the_sync_and_the_rebuild_command_restores_it(
    emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed, baseline = _synced(emu, sqlite_url, warehouse)
    emu.reset()  # every object, custom property and the pipeline gone
    assert emu.objects("contacts") == []

    for tags in (None, NIGHTLY):  # intraday and nightly alike
        stopped = _run(emu, sqlite_url, tags, raise_on_error=False)
        assert not stopped.success
        failure = next(e for e in stopped.all_events if e.event_type_value == "STEP_FAILURE")
        message = str(failure.event_specific_data.error_display_string)
        assert "biss-pipeline hubspot rebuild-ledger --practice mb" in message
        assert emu.objects("contacts") == emu.objects("deals") == []  # nothing re-sent blindly
    assert Ledger(warehouse).suppressed(PID) == []  # nobody suppressed over a reset

    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    monkeypatch.setenv("BISS_HUBSPOT_HOST", emu.base_url)
    assert cli_main(["hubspot", "rebuild-ledger", "--practice", PID]) == 0
    out = capsys.readouterr().out
    assert f"deals: 0 found as recorded, 0 found under a new id, {seed.counts['deals']} missing" in out

    assert portal_state(emu) == baseline
    actions = {a for a, _, _ in _log(warehouse)}
    assert actions == {"rebuild_missing"}
    _assert_quiet_second_run(emu, sqlite_url)


class NumericKeySeed(Seed):
    """Patient keys as Ivoris has them, prefix + plain id (`MB_7`, `MB_34`): text order ≠ id order."""

    def patient_key(self, i: int) -> str:
        return f"{self.prefix}{i}"


def _email(emu: HubSpotEmulator, key: str) -> str | None:
    contact = next(c for c in emu.objects("contacts") if c["properties"]["ivoris_patient_id"] == key)
    return contact["properties"].get("email") or None


def test_a_shared_email_moves_to_the_lowest_id_and_the_old_owner_is_cleared(
    emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse
) -> None:
    from biss_pipeline.domain.warehouse import schema
    from tests.sync.seed import update_rows

    family = "familie.schmidt@example.org"
    NumericKeySeed(patients=40, shared_email=False).write(warehouse)
    patients = schema.stg_patients.c.patient_key
    update_rows(warehouse, schema.stg_patients, patients == "MB_34", email=family)

    # t1: only MB_34 has the family address: it carries it
    assert _run(emu, sqlite_url).success
    assert (_email(emu, "MB_34"), _email(emu, "MB_7")) == (family, "patient7@example.org")

    # t2: MB_7 (a lower id, though "MB_34" < "MB_7" as text) gets the same address in Ivoris
    update_rows(warehouse, schema.stg_patients, patients == "MB_7", email=family.upper())
    moved = _run(emu, sqlite_url)

    assert moved.success and _sync_metadata(moved)["errors"] == 0
    assert (_email(emu, "MB_7"), _email(emu, "MB_34")) == (family, None)  # cleared, not left behind
    ledger = ledger_rows(warehouse)
    assert (ledger[("contacts", "MB_7")]["status"], ledger[("contacts", "MB_7")]["flags"]) == ("synced", None)
    assert ledger[("contacts", "MB_34")]["flags"] == "email_withheld_shared"
    # the ledger agrees with HubSpot: the nightly full read finds no drift, and nothing more is written
    _assert_quiet_second_run(emu, sqlite_url)
    # a later family member with a higher id does not take the address over
    update_rows(warehouse, schema.stg_patients, patients == "MB_12", email=family)
    assert _run(emu, sqlite_url).success
    assert (_email(emu, "MB_7"), _email(emu, "MB_12"), _email(emu, "MB_34")) == (family, None, None)
    _assert_quiet_second_run(emu, sqlite_url)
