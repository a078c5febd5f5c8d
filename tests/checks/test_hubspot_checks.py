"""The duplicate and reconciliation checks and the remediation job, against a real sync into the HubSpot
emulator over HTTP; the main flow runs through Dagster (assets, checks and the job in process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, Definitions, materialize
from hubspot.crm.objects import SimplePublicObjectInput

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.assets.hubspot import build_hubspot_assets
from biss_pipeline.checks.hubspot import build_hubspot_checks
from biss_pipeline.checks.quarantine import build_quarantine_checks
from biss_pipeline.domain.deals.rules import STAGE_LABELS, Stage
from biss_pipeline.domain.hubspot import sync_practice
from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.close_duplicates import RemediationError, remediate_practice
from biss_pipeline.domain.hubspot.model import SyncMapping
from biss_pipeline.domain.hubspot.remediation import REASON_PROPERTY
from biss_pipeline.domain.hubspot.verification import (
    Reconciliation,
    check_duplicates,
    check_reconciliation,
    ledger_deal_ids,
    load_practice_deals,
    search_practice_objects,
)
from biss_pipeline.domain.verdicts import CheckOutcome, Severity
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.jobs.remediation import JOB_NAME, build_remediation_job
from biss_pipeline.keys import HUBSPOT_POOL, sync_asset_key
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.checks.helpers import (
    add_old_automation_deal,
    contact_id_by_key,
    deal,
    deal_by_key,
    inject_same_key_duplicate,
    resources,
    sdk,
)
from tests.sync.conftest import make_client
from tests.sync.seed import Seed, set_deal_stage, write_requests

PID = "mb"


@dataclass(frozen=True)
class Practice:
    practice_id: str


DEPS = {PID: [AssetKey([PID, "deals"]), AssetKey([PID, "contact_rollups"])]}
# The sync's built-in defaults (pipeline "Behandlungspfad"), for assets, checks and remediation alike.
DEFAULT_MAPPING = SyncMapping()


def _lost_stage(emu: HubSpotEmulator) -> tuple[str, str]:
    pipeline = next(p for p in emu.state.pipelines["deals"].values() if p["label"] == "Behandlungspfad")
    stage = next(s for s in pipeline["stages"] if s["label"] == STAGE_LABELS[Stage.VERLOREN.value])
    return pipeline["id"], stage["id"]


def _sync_and_check(emu: HubSpotEmulator, sqlite_url: str) -> dict[str, Any]:
    """Materialize portal setup and the practice sync with its checks; the check evaluations by name."""
    assets = build_hubspot_assets([Practice(PID)], DEPS, sync_mapping=DEFAULT_MAPPING)
    checks = build_hubspot_checks([PID], sync_mapping=DEFAULT_MAPPING)
    result = materialize([*assets, *checks], resources=resources(emu, sqlite_url))
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"duplicate_deals", "ledger_reconciliation", "suppressed_patients"}
    assert {e.asset_key for e in evaluations.values()} == {sync_asset_key(PID)}
    return evaluations


def _remediate(emu: HubSpotEmulator, sqlite_url: str, **config: Any) -> dict[str, Any]:
    defs = Definitions(jobs=[build_remediation_job([PID], DEFAULT_MAPPING)],
                       resources=resources(emu, sqlite_url))
    run_config = {"ops": {"close_duplicate_deals": {"config": config}}} if config else None
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(run_config=run_config)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in output.event_specific_data.metadata.items()}


def _open_deals(seed: Seed) -> list[dict[str, Any]]:
    by_patient: dict[str, dict[str, Any]] = {}
    for row in seed.rows["deals"]:
        if row["is_open"]:
            by_patient.setdefault(row["patient_key"], row)
    return list(by_patient.values())


def test_duplicates_are_found_and_remediation_closes_them_once(
    emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse
) -> None:
    seed = Seed(patients=8).write(warehouse)
    clean = _sync_and_check(emu, sqlite_url)
    assert clean["duplicate_deals"].passed, clean["duplicate_deals"].metadata
    assert clean["ledger_reconciliation"].passed, clean["ledger_reconciliation"].metadata

    first, second = _open_deals(seed)[:2]
    original = deal_by_key(emu, first["deal_key"])["id"]
    other_original = deal_by_key(emu, second["deal_key"])["id"]
    contact = contact_id_by_key(emu, first["patient_key"])
    other_contact = contact_id_by_key(emu, second["patient_key"])
    copy = inject_same_key_duplicate(emu, first["deal_key"], contact)
    old = add_old_automation_deal(emu, other_contact)

    found = _sync_and_check(emu, sqlite_url)
    duplicates = found["duplicate_deals"]
    assert not duplicates.passed and duplicates.severity == AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in duplicates.metadata.items()}
    assert metadata["duplicate_keys"] == 1
    assert metadata["duplicate_keys_detail"] == {first["deal_key"]: sorted([original, copy], key=int)}
    assert metadata["multiple_open_deals_by_contact"] == {
        contact: sorted([original, copy], key=int),
        other_contact: sorted([other_original, old], key=int),
    }
    assert metadata["keyless_open_deals_detail"] == {old: [other_contact]}
    assert {copy, old, original, other_original} == set(metadata["duplicate_deal_ids"])
    assert "Kopie" not in str(metadata) and "Vorname" not in str(metadata)  # ids and keys only
    # the ledger's own objects are all there and unchanged: reconciliation passes (finding copies is the
    # duplicate check's job; it reaches them through the contacts, without search)
    assert found["ledger_reconciliation"].passed, found["ledger_reconciliation"].metadata

    # dry run (the default): nothing written, the report names both duplicates
    since = len(emu.request_log)
    dry = _remediate(emu, sqlite_url)
    assert write_requests(emu, since) == []
    assert dry["dry_run"] is True and dry["to_close"] == 2 and dry["closed"] == 0
    assert {(c["deal_id"], c["kind"], c["kept_deal_id"]) for c in dry[PID]["closures"]} == {
        (copy, "same_key", original),
        (old, "old_automation", other_original),
    }
    assert REASON_PROPERTY not in emu.state.properties["deals"]

    # for real: the copies move to the sync pipeline's closed-lost stage with a reason; the originals stay
    before = {i: dict(deal(emu, i)["properties"]) for i in (original, other_original)}
    done = _remediate(emu, sqlite_url, dry_run=False)
    assert done["dry_run"] is False and done["closed"] == 2
    assert set(done[PID]["closed_ids"]) == {copy, old}
    assert done[PID]["property_created"] is True
    pipeline_id, lost_id = _lost_stage(emu)
    for deal_id, kept in ((copy, original), (old, other_original)):
        properties = deal(emu, deal_id)["properties"]
        assert (properties["pipeline"], properties["dealstage"]) == (pipeline_id, lost_id)
        assert properties[REASON_PROPERTY].startswith(f"duplicate of deal {kept}:")
    assert {i: dict(deal(emu, i)["properties"]) for i in (original, other_original)} == before

    # the checks pass again, and the sync leaves the closed copies alone
    after = _sync_and_check(emu, sqlite_url)
    assert after["duplicate_deals"].passed, after["duplicate_deals"].metadata
    assert after["duplicate_deals"].metadata["remediated_deals"].value == 2
    assert after["ledger_reconciliation"].passed, after["ledger_reconciliation"].metadata

    # a second run finds nothing to do and writes nothing
    since = len(emu.request_log)
    again = _remediate(emu, sqlite_url, dry_run=False)
    assert write_requests(emu, since) == []
    assert again["to_close"] == 0 and again[PID]["already_remediated"] == 2


def test_old_automation_deal_next_to_a_closed_journey_is_flagged_but_not_closed(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    seed = Seed(patients=6).write(warehouse)
    sync_practice(make_client(emu), warehouse, PID)
    open_patients = {r["patient_key"] for r in seed.rows["deals"] if r["is_open"]}
    closed = next(r for r in seed.rows["deals"] if r["patient_key"] not in open_patients)
    old = add_old_automation_deal(emu, contact_id_by_key(emu, closed["patient_key"]))

    outcome, findings = check_duplicates(make_client(emu), warehouse, PID)

    assert not outcome.passed and outcome.severity == Severity.WARN
    assert list(findings.keyless_open) == [old]
    report = remediate_practice(make_client(emu), warehouse, PID, dry_run=False)
    assert report.plan.closures == ()
    assert report.plan.needs_review == {contact_id_by_key(emu, closed["patient_key"]): (old,)}
    assert deal(emu, old)["properties"]["dealstage"] == "appointmentscheduled"


def test_remediation_needs_the_sync_pipeline(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    with pytest.raises(RemediationError, match="portal_setup"):
        remediate_practice(make_client(emu), warehouse, PID)


def test_the_resource_dry_run_wins_over_the_job_config(
    emu: HubSpotEmulator, sqlite_url: str, warehouse: Warehouse
) -> None:
    seed = Seed(patients=4).write(warehouse)
    sync_practice(make_client(emu), warehouse, PID)
    row = _open_deals(seed)[0]
    copy = inject_same_key_duplicate(emu, row["deal_key"], contact_id_by_key(emu, row["patient_key"]))
    defs = Definitions(
        jobs=[build_remediation_job([PID], DEFAULT_MAPPING)],
        resources=resources(emu, sqlite_url, dry_run=True),
    )

    since = len(emu.request_log)
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(
        run_config={"ops": {"close_duplicate_deals": {"config": {"dry_run": False}}}}
    )

    assert result.success
    assert write_requests(emu, since) == []
    assert REASON_PROPERTY not in deal(emu, copy)["properties"]


def test_the_job_refuses_practices_it_was_not_built_for(emu: HubSpotEmulator, sqlite_url: str) -> None:
    defs = Definitions(jobs=[build_remediation_job([PID], DEFAULT_MAPPING)],
                       resources=resources(emu, sqlite_url))

    result = defs.resolve_job_def(JOB_NAME).execute_in_process(
        run_config={"ops": {"close_duplicate_deals": {"config": {"practice_ids": ["xx"]}}}},
        raise_on_error=False,
    )

    assert not result.success


def test_wiring_with_the_sync_assets(emu: HubSpotEmulator, sqlite_url: str) -> None:
    checks = build_hubspot_checks(["mb", "rb"], sync_mapping=DEFAULT_MAPPING)
    hubspot_checks = [c for c in checks if "suppressed_patients" not in {k.name for k in c.check_keys}]
    quarantine = build_quarantine_checks(["mb", "rb"])
    defs = Definitions(
        assets=build_hubspot_assets([Practice("mb"), Practice("rb")], {}, sync_mapping=DEFAULT_MAPPING),
        asset_checks=[*checks, *quarantine],
        jobs=[build_remediation_job(["mb", "rb"], DEFAULT_MAPPING)],
        resources=resources(emu, sqlite_url),
    )
    Definitions.validate_loadable(defs)

    keys = {key for check in checks for key in check.check_keys}
    assert keys == {
        AssetCheckKey(sync_asset_key(p), name)
        for p in ("mb", "rb")
        for name in ("duplicate_deals", "ledger_reconciliation", "suppressed_patients")
    }
    assert {c.node_def.pool for c in hubspot_checks} == {HUBSPOT_POOL}  # HubSpot's rate limit is per app
    assert {key for check in quarantine for key in check.check_keys} == {
        AssetCheckKey(AssetKey([p, "deals"]), "quarantine") for p in ("mb", "rb")
    }


# --------------------------------------------------------------------------------------------- reconciliation


@pytest.fixture
def synced(emu: HubSpotEmulator, warehouse: Warehouse) -> Seed:
    seed = Seed(patients=8).write(warehouse)
    report = sync_practice(make_client(emu), warehouse, PID)
    assert report.errors == 0
    return seed


def _reconcile(
    emu: HubSpotEmulator, warehouse: Warehouse, **options: Any
) -> tuple[CheckOutcome, Reconciliation]:
    return check_reconciliation(make_client(emu), warehouse, PID, **options)


def test_reconciliation_passes_after_a_clean_sync(
    emu: HubSpotEmulator, warehouse: Warehouse, synced: Seed
) -> None:
    outcome, report = _reconcile(emu, warehouse)

    assert outcome.passed, outcome.metadata
    counts = synced.counts
    for kind in ("contacts", "deals", "appointments"):
        assert outcome.metadata[f"{kind}_ledger_objects"] == counts[kind]
        assert outcome.metadata[f"{kind}_hubspot_objects"] == counts[kind]
        assert outcome.metadata[f"{kind}_compared"] == counts[kind]  # nightly scope: every object
    assert report.missing == report.drifted == 0


def test_an_object_archived_behind_the_ledgers_back_fails_the_check(
    emu: HubSpotEmulator, warehouse: Warehouse, synced: Seed
) -> None:
    key = synced.rows["deals"][0]["deal_key"]
    sdk(emu).crm.deals.basic_api.archive(deal_by_key(emu, key)["id"])
    patient = synced.rows["contact_rollups"][-1]["patient_key"]
    sdk(emu).crm.contacts.basic_api.archive(contact_id_by_key(emu, patient))

    outcome, _ = _reconcile(emu, warehouse)

    assert not outcome.passed and outcome.severity == Severity.ERROR
    assert outcome.metadata["deals_missing"] == 1 and outcome.metadata["contacts_missing"] == 1
    assert outcome.metadata["details"]["deals"]["missing_keys"] == [key]
    assert outcome.metadata["details"]["contacts"]["missing_keys"] == [patient]


def test_property_drift_warns_with_property_names_only(
    emu: HubSpotEmulator, warehouse: Warehouse, synced: Seed
) -> None:
    deal_key = synced.rows["deals"][1]["deal_key"]
    patient = synced.rows["contact_rollups"][4]["patient_key"]
    client = sdk(emu)
    client.crm.deals.basic_api.update(
        deal_by_key(emu, deal_key)["id"],
        SimplePublicObjectInput(properties={"dealname": "Von Hand umbenannt"}),
    )
    client.crm.contacts.basic_api.update(
        contact_id_by_key(emu, patient), SimplePublicObjectInput(properties={"firstname": "Handeintrag"})
    )

    outcome, _ = _reconcile(emu, warehouse)

    assert not outcome.passed and outcome.severity == Severity.WARN
    assert outcome.metadata["details"]["deals"]["drifted"] == {deal_key: ["dealname"]}
    assert outcome.metadata["details"]["contacts"]["drifted"] == {patient: ["firstname"]}
    assert "Handeintrag" not in str(outcome.metadata) and "umbenannt" not in str(outcome.metadata)


def test_the_intraday_scope_reads_the_runs_writes_and_a_rotating_slice(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    seed = Seed(patients=8).write(warehouse)
    sync_practice(make_client(emu), warehouse, PID, run_id="run-1")
    row = next(r for r in seed.rows["deals"] if r["stage"] == Stage.TERMIN_GEBUCHT.value)
    set_deal_stage(warehouse, row["deal_key"], Stage.ERSTBERATUNG.value)
    sync_practice(make_client(emu), warehouse, PID, run_id="run-2")  # writes that one deal

    outcome, report = _reconcile(emu, warehouse, run_id="run-2")

    assert outcome.passed and report.scope == "written"
    assert row["deal_key"] in report.kinds["deals"].asked_keys
    # a small practice: the rotating slice of 100 covers every object anyway
    total = sum(seed.counts[k] for k in ("contacts", "deals", "appointments"))
    assert report.read == report.ledger_objects == total


def test_fewer_objects_read_than_the_ledger_holds_does_not_pass(
    emu: HubSpotEmulator, warehouse: Warehouse, synced: Seed
) -> None:
    """A deal that vanished makes both checks fail: they did not see every object the ledger says
    exists (nothing they did read is wrong)."""
    key = synced.rows["deals"][2]["deal_key"]
    sdk(emu).crm.deals.basic_api.archive(deal_by_key(emu, key)["id"])

    outcome, _ = _reconcile(emu, warehouse)

    assert not outcome.passed and outcome.severity == Severity.ERROR
    assert outcome.metadata["deals_hubspot_objects"] == outcome.metadata["deals_ledger_objects"] - 1
    dup_outcome, _ = check_duplicates(make_client(emu), warehouse, PID)
    assert not dup_outcome.passed
    assert dup_outcome.metadata["ledger_deals_read"] == dup_outcome.metadata["ledger_deals"] - 1


def test_a_pending_change_is_not_drift(emu: HubSpotEmulator, warehouse: Warehouse, synced: Seed) -> None:
    row = next(r for r in synced.rows["deals"] if r["stage"] == Stage.TERMIN_GEBUCHT.value)
    set_deal_stage(warehouse, row["deal_key"], Stage.ERSTBERATUNG.value)  # not synced yet

    outcome, _ = _reconcile(emu, warehouse)

    assert outcome.passed, outcome.metadata
    assert outcome.metadata["deals_pending"] == 1


def test_search_lag_does_not_make_objects_missing(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    """Search may not have indexed a fresh write yet; a ledger row is only 'missing' after a read by id."""
    Seed(patients=5).write(warehouse)
    emu.search_index_delay_s = 3600.0
    sync_practice(make_client(emu), warehouse, PID)
    client: HubSpotClient = make_client(emu)
    assert search_practice_objects(client, "deals", PID, ["ivoris_deal_key"]) == []

    outcome, _ = _reconcile(emu, warehouse)

    assert outcome.passed, outcome.metadata
    # the duplicate check does not depend on the index either: it reads every deal right away
    duplicates, findings = check_duplicates(make_client(emu), warehouse, PID)
    assert duplicates.passed and findings.deals_read == len(ledger_deal_ids(warehouse, PID)) > 0


def test_reading_more_deals_than_one_batch(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    seed = Seed(patients=160).write(warehouse)  # > 200 deals: several batch reads of 100
    sync_practice(make_client(emu), warehouse, PID)
    deals = load_practice_deals(make_client(emu), ledger_deal_ids(warehouse, PID))

    assert len(deals) == len(seed.rows["deals"]) > 200
    assert {d.key for d in deals} == {r["deal_key"] for r in seed.rows["deals"]}
    assert all(d.contact_ids for d in deals)


def test_reconciliation_on_both_warehouse_backends(emu: HubSpotEmulator, warehouse_url: str) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    seed = Seed(patients=4).write(warehouse)
    sync_practice(make_client(emu), warehouse, PID)
    assert _reconcile(emu, warehouse)[0].passed
    key = seed.rows["deals"][-1]["deal_key"]
    sdk(emu).crm.deals.basic_api.archive(deal_by_key(emu, key)["id"])

    outcome, _ = _reconcile(emu, warehouse)

    assert outcome.severity == Severity.ERROR
    assert outcome.metadata["details"]["deals"]["missing_keys"] == [key]
