"""The sync engine end to end: a seeded warehouse, the HubSpot emulator over HTTP, the official SDK."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import sqlalchemy as sa
from hubspot import HubSpot
from hubspot.crm.objects import SimplePublicObjectInputForCreate

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.hubspot import (
    SyncAborted,
    SyncEngine,
    SyncMapping,
    ensure_portal,
    portal_spec,
    sync_practice,
)
from biss_pipeline.domain.hubspot.client import RetrySettings
from biss_pipeline.domain.hubspot.ledger import Ledger
from biss_pipeline.domain.hubspot.payloads import FLAG_EMAIL_CONFLICT, FLAG_EMAIL_INVALID, FLAG_EMAIL_SHARED
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.emulators.conftest_hubspot import add_unique_property
from tests.sync.conftest import TOKEN, make_client
from tests.sync.seed import Seed, ledger_rows, portal_state, set_deal_stage, update_rows, write_requests

# --------------------------------------------------------------------------------------------- helpers


def _reference_state(seed: Seed, emu: HubSpotEmulator, sqlite_path: str) -> dict:
    """The portal a fault-free first sync of `seed` produces (on a fresh warehouse); resets the emulator."""
    warehouse = WarehouseResource(url=f"sqlite:///{sqlite_path}").get()
    Seed(**{k: getattr(seed, k) for k in ("practice_id", "prefix", "patients")}).write(warehouse)
    report = sync_practice(make_client(emu), warehouse, seed.practice_id)
    assert report.errors == 0
    state = portal_state(emu)
    emu.reset()
    return state


def _assert_matches_warehouse(emu: HubSpotEmulator, seed: Seed) -> dict:
    state = portal_state(emu)
    assert {name: len(state[name]) for name in seed.counts} == seed.counts
    assert set(state["contacts"]) == {r["patient_key"] for r in seed.rows["contact_rollups"]}
    assert set(state["deals"]) == {r["deal_key"] for r in seed.rows["deals"]}
    assert set(state["appointments"]) == {r["appointment_key"] for r in seed.rows["deal_appointments"]}
    assert set(state["contacts-deals"]) == {(r["patient_key"], r["deal_key"]) for r in seed.rows["deals"]}
    assert set(state["deals-appointments"]) == {
        (r["deal_key"], r["appointment_key"]) for r in seed.rows["deal_appointments"]
    }
    return state


# --------------------------------------------------------------------------------------------- first / second


def test_first_sync_creates_everything_and_second_sync_writes_nothing(
    emu: HubSpotEmulator, warehouse_url: str
) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    seed = Seed(patients=130).write(warehouse)  # > 100 contacts: two contact batches

    first = sync_practice(make_client(emu), warehouse, "mb")

    assert first.errors == 0
    state = _assert_matches_warehouse(emu, seed)
    first_writes = write_requests(emu)
    upserts = [r for r in first_writes if r.path.endswith("/batch/upsert")]
    assert all(r.batch_size <= 100 for r in upserts)
    assert not [r for r in first_writes if r.path.endswith("/batch/create") and "/objects/" in r.path]
    assert first.calls["write_calls"] == len(first_writes)
    assert first.objects["contacts"].create == 130
    assert first.objects["contacts"].hubspot_new == 130
    # deals: pipeline stage and money as HubSpot expects them
    deal = state["deals"]["MB_A000200"]
    assert (deal["pipeline"], deal["dealstage"]) == ("Behandlungspfad", "In Behandlung")
    assert (deal["amount"], deal["biss_revenue_bucket_goz"], deal["biss_revenue_category_fuellung"]) == (
        "505.50",
        "480.00",
        "480.00",
    )
    assert deal["biss_behandlungsstart"] == "2026-03-04"
    assert "closedate" not in deal  # open deal
    ledger = ledger_rows(warehouse)
    assert {row["status"] for row in ledger.values()} == {"synced", "flagged"}
    assert len(ledger) == sum(seed.counts.values())
    hubspot_ids = {o["properties"]["ivoris_patient_id"]: o["id"] for o in emu.objects("contacts")}
    assert all(ledger[("contacts", key)]["hubspot_id"] == hid for key, hid in hubspot_ids.items())

    log_mark = len(emu.request_log)
    second = sync_practice(make_client(emu), warehouse, "mb")

    assert write_requests(emu, log_mark) == []
    assert second.calls["write_calls"] == 0
    assert second.objects["contacts"].unchanged == 130
    assert all(
        a.unchanged == seed.counts[name.removeprefix("association:").replace(":", "-")]
        for name, a in second.associations.items()
    )
    assert portal_state(emu) == state
    print(f"write calls: first sync {len(first_writes)}, second sync 0")


def test_a_changed_deal_stage_updates_exactly_that_deal(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    seed = Seed().write(warehouse)
    sync_practice(make_client(emu), warehouse, "mb")
    before = portal_state(emu)
    set_deal_stage(warehouse, "MB_A000200", "erstberatung")
    log_mark = len(emu.request_log)

    report = sync_practice(make_client(emu), warehouse, "mb")

    writes = write_requests(emu, log_mark)
    assert [(r.path, r.batch_size) for r in writes] == [("/crm/v3/objects/deals/batch/upsert", 1)]
    assert report.objects["deals"].update == 1
    after = portal_state(emu)
    assert after["deals"]["MB_A000200"]["dealstage"] == "Erstberatung"
    after["deals"]["MB_A000200"]["dealstage"] = "In Behandlung"
    assert after == before
    assert seed.counts["deals"] == len(after["deals"])


def test_a_stage_set_back_clears_closedate_and_behandlungsstart(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    Seed().write(warehouse)
    sync_practice(make_client(emu), warehouse, "mb")
    assert "closedate" in portal_state(emu)["deals"]["MB_A000300"]  # verloren
    set_deal_stage(warehouse, "MB_A000300", "termin_gebucht")
    update_rows(warehouse, schema.deals, schema.deals.c.deal_key == "MB_A000200", behandlungsstart=None)
    set_deal_stage(warehouse, "MB_A000200", "erstberatung")

    sync_practice(make_client(emu), warehouse, "mb")

    deals = portal_state(emu)["deals"]
    assert "closedate" not in deals["MB_A000300"]
    assert "biss_behandlungsstart" not in deals["MB_A000200"]


# --------------------------------------------------------------------------------------------- per-row errors


@pytest.mark.parametrize("mode", ["reject_batch", "per_input"])
def test_a_row_error_lands_in_the_ledger_and_is_retried_next_run(
    emu: HubSpotEmulator, warehouse: Warehouse, mode: str
) -> None:
    """A portal admin made `biss_chair_key` unique; two appointments share a chair, so HubSpot refuses
    one of them: a 207 row error (`per_input`) or a 409 for the whole batch (`reject_batch`, bisected)."""
    emu.batch_conflicts = mode
    add_unique_property(HubSpot(access_token=TOKEN, host=emu.base_url), "0-421", "biss_chair_key")
    seed = Seed(patients=6).build()
    for index, row in enumerate(seed.rows["stg_appointments"]):
        row["chair_key"] = f"MB_C{100 + index}"  # every appointment its own chair …
    shared = [
        r for r in seed.rows["stg_appointments"] if r["appointment_key"] in ("MB_A000001", "MB_A000500")
    ]
    for row in shared:
        row["chair_key"] = "MB_C1"  # … except these two
    seed.write(warehouse)

    first = sync_practice(make_client(emu), warehouse, "mb")

    assert first.objects["appointments"].failed == 1
    assert first.objects["appointments"].hubspot_new == seed.counts["appointments"] - 1
    ledger = ledger_rows(warehouse)
    failed = [row for row in ledger.values() if row["status"] == "error"]
    assert [(r["object_type"], r["record_key"], r["attempts"]) for r in failed] == [
        ("appointments", "MB_A000500", 1)
    ]
    assert "biss_chair_key" in failed[0]["last_error"] and "409" in failed[0]["last_error"]
    assert failed[0]["hubspot_id"] is None and failed[0]["content_hash"] is None
    # everything else, including the other appointments' associations, went through
    state = portal_state(emu)
    assert len(state["appointments"]) == seed.counts["appointments"] - 1
    assert len(state["contacts-deals"]) == seed.counts["contacts-deals"]
    assert first.associations["association:deals:appointments"].waiting == 1

    log_mark = len(emu.request_log)
    sync_practice(make_client(emu), warehouse, "mb")  # retried, still refused

    upserts = [r for r in write_requests(emu, log_mark) if r.path.endswith("/batch/upsert")]
    assert [(r.path, r.batch_size) for r in upserts] == [("/crm/v3/objects/0-421/batch/upsert", 1)]
    assert ledger_rows(warehouse)[("appointments", "MB_A000500")]["attempts"] == 2

    update_rows(
        warehouse,
        schema.stg_appointments,
        schema.stg_appointments.c.appointment_key == "MB_A000500",
        chair_key="MB_C2",
    )
    third = sync_practice(make_client(emu), warehouse, "mb")

    assert third.errors == 0
    row = ledger_rows(warehouse)[("appointments", "MB_A000500")]
    assert (row["status"], row["attempts"], row["last_error"]) == ("synced", 0, None)
    assert {n: len(portal_state(emu)[n]) for n in seed.counts} == seed.counts


# --------------------------------------------------------------------------------------------- shared email


@pytest.mark.parametrize("mode", ["reject_batch", "per_input"])
def test_shared_and_foreign_emails_never_fail_the_batch(
    emu: HubSpotEmulator, warehouse: Warehouse, mode: str
) -> None:
    emu.batch_conflicts = mode
    seed = Seed(patients=10, shared_email=True, invalid_email=True).write(warehouse)
    # a contact HubSpot already has (a web form lead) with patient 5's address
    hubspot = HubSpot(access_token=TOKEN, host=emu.base_url)
    hubspot.crm.objects.basic_api.create(
        "contacts", SimplePublicObjectInputForCreate(properties={"email": "patient5@example.org"})
    )

    report = sync_practice(make_client(emu), warehouse, "mb")

    assert report.errors == 0
    contacts = {o["properties"].get("ivoris_patient_id"): o["properties"] for o in emu.objects("contacts")}
    assert len(contacts) == seed.counts["contacts"] + 1  # the lead stays, untouched
    assert contacts["MB_P0001"]["email"] == "familie.schmidt@example.org"  # lowest key keeps the address
    assert contacts["MB_P0002"].get("email") is None
    assert contacts["MB_P0003"].get("email") is None  # invalid address withheld
    assert contacts["MB_P0005"].get("email") is None  # owned by the lead
    assert contacts["MB_P0005"]["lastname"] == "Nachname5"
    ledger = ledger_rows(warehouse)
    flags = {key: row["flags"] for (kind, key), row in ledger.items() if kind == "contacts" and row["flags"]}
    assert flags == {
        "MB_P0002": FLAG_EMAIL_SHARED,
        "MB_P0003": FLAG_EMAIL_INVALID,
        "MB_P0005": FLAG_EMAIL_CONFLICT,
    }
    assert {ledger[("contacts", k)]["status"] for k in flags} == {"flagged"}
    assert report.objects["contacts"].email_withheld == 1

    log_mark = len(emu.request_log)
    sync_practice(make_client(emu), warehouse, "mb")
    assert write_requests(emu, log_mark) == []  # withheld emails do not make records "changed"


# --------------------------------------------------------------------------------------------- faults


def test_a_lost_upsert_response_makes_no_duplicates(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    """The first contact batch creates 10 contacts and its answer is lost twice (committed, then 502).
    One batch in flight, so "the first batch" is one; no shared email, so no clearing wave goes first."""
    seed = Seed(patients=30, shared_email=False).write(warehouse)
    ensure_portal(make_client(emu), portal_spec(SyncMapping(), ["goz", "bema"]))
    log_mark = len(emu.request_log)
    emu.faults.lose_next_writes(2)

    report = sync_practice(make_client(emu), warehouse, "mb", batch_size=10, max_concurrency=1)

    lost = [r for r in emu.request_log[log_mark:] if r.fault == "lost_response"]
    assert [(r.path, r.committed_status) for r in lost] == [
        ("/crm/v3/objects/contacts/batch/upsert", 200)
    ] * 2
    assert report.errors == 0
    # the third attempt found the ten contacts the first one created
    assert (report.objects["contacts"].hubspot_new, report.objects["contacts"].hubspot_updated) == (20, 10)
    _assert_matches_warehouse(emu, seed)  # portal_state fails on duplicate keys
    ids = {o["properties"]["ivoris_patient_id"]: o["id"] for o in emu.objects("contacts")}
    ledger = ledger_rows(warehouse)
    assert {key: ledger[("contacts", key)]["hubspot_id"] for key in ids} == ids


def test_random_lost_responses_make_no_duplicates(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    seed = Seed(patients=30).write(warehouse)
    emu.faults.seed = 5
    emu.faults.lost_response_rate = 0.5

    report = sync_practice(make_client(emu), warehouse, "mb", batch_size=10)

    lost_paths = {r.path for r in emu.request_log if r.fault == "lost_response"}
    assert any(p.endswith("/batch/upsert") for p in lost_paths)
    assert any(p.startswith("/crm/v4/associations/") for p in lost_paths)
    assert report.errors == 0
    emu.faults.clear()
    state = _assert_matches_warehouse(emu, seed)
    assert [label for label, _ in state["pipelines"]].count("Behandlungspfad") == 1
    assert {row["status"] for row in ledger_rows(warehouse).values()} <= {"synced", "flagged"}


def test_random_lost_responses_and_gateway_errors_end_in_the_fault_free_state(
    emu: HubSpotEmulator, warehouse: Warehouse, tmp_path
) -> None:
    seed = Seed(patients=40)
    reference = _reference_state(seed, emu, str(tmp_path / "reference.sqlite"))
    seed.write(warehouse)
    emu.faults.seed = 11
    emu.faults.random_502_rate = 0.2
    emu.faults.random_504_rate = 0.05
    emu.faults.lost_response_rate = 0.1

    report = sync_practice(make_client(emu), warehouse, "mb", batch_size=10)

    faults = Counter(r.fault for r in emu.request_log if r.fault)
    print(f"\nfault run: {len(emu.request_log)} requests, faults {dict(faults)}, "
          f"client retries {report.calls['retries']}, row errors {report.errors}")
    assert report.errors == 0
    assert report.calls["server_errors_5xx"] > 0 and report.calls["retries"] > 0
    emu.faults.clear()
    state = portal_state(emu)
    assert state == reference
    print(f"final state equals the fault-free run: {state == reference}; objects "
          f"{ {t: len(emu.objects(t)) for t in ('contacts', 'deals', '0-421')} }")


def test_rate_limit_pressure_ends_in_the_same_state(
    emu: HubSpotEmulator, warehouse: Warehouse, tmp_path
) -> None:
    seed = Seed(patients=20)
    reference = _reference_state(seed, emu, str(tmp_path / "reference.sqlite"))
    seed.write(warehouse)
    emu.rate_limits = {"ten_secondly": 8, "window_s": 2.0, "search_per_second": 1000}
    other_process = HubSpot(access_token=TOKEN, host=emu.base_url)
    for _ in range(8):  # another process of the same app used up the window
        other_process.crm.contacts.basic_api.get_page()
    client = make_client(emu)

    report = sync_practice(client, warehouse, "mb", batch_size=10)

    print(f"\n429 pressure: {report.calls['rate_limited_429']} answers 429, "
          f"retries {report.calls['retries']}, "
          f"row errors {report.errors}")
    assert report.errors == 0
    assert report.calls["rate_limited_429"] >= 1
    assert client.limiter.capacity == 7  # adopted from X-HubSpot-RateLimit-Max (8), below it
    assert client.limiter.window_s == 2.0
    assert portal_state(emu) == reference


class _OutageAfterSetup:
    """The client, but HubSpot's gateway fails every call from the first record write on."""

    def __init__(self, client: object, emu: HubSpotEmulator) -> None:
        self._client, self._emu = client, emu

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    def batch_upsert(self, *args: object, **kwargs: object) -> object:
        self._emu.faults.random_502_rate = 1.0
        return self._client.batch_upsert(*args, **kwargs)  # type: ignore[attr-defined]


def test_hubspot_down_aborts_after_three_failed_batches_and_the_next_run_resumes(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    seed = Seed(patients=30).write(warehouse)
    sync_practice(make_client(emu), warehouse, "mb", batch_size=10)  # set up, all synced
    update_rows(
        warehouse, schema.contact_rollups, schema.contact_rollups.c.practice_id == "mb", num_open_deals=7
    )
    impatient = make_client(
        emu, retry=RetrySettings(max_retries=1, backoff_base_s=0.001, backoff_max_s=0.001)
    )
    with pytest.raises(SyncAborted) as aborted:
        SyncEngine(_OutageAfterSetup(impatient, emu), warehouse, batch_size=10).sync_practice("mb")
    emu.faults.clear()
    assert "502" in str(aborted.value)
    assert aborted.value.report is not None and aborted.value.report.objects["contacts"].failed == 30
    errors = [r for r in ledger_rows(warehouse).values() if r["status"] == "error"]
    assert len(errors) == 30 and all(r["content_hash"] and r["hubspot_id"] for r in errors)  # kept

    report = sync_practice(make_client(emu), warehouse, "mb", batch_size=10)

    assert report.objects["contacts"].retrying == 30 and report.errors == 0
    assert {o["properties"]["biss_num_open_deals"] for o in emu.objects("contacts")} == {"7"}
    assert {n: len(portal_state(emu)[n]) for n in seed.counts} == seed.counts


# --------------------------------------------------------------------------------------------- dry run


def test_dry_run_writes_nothing_and_reports_what_would_change(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    seed = Seed().write(warehouse)

    fresh = SyncEngine(make_client(emu), warehouse, dry_run=True).sync_practice("mb")

    assert write_requests(emu) == []
    assert ledger_rows(warehouse) == {}
    assert fresh.dry_run and fresh.calls["write_calls"] == 0
    assert fresh.objects["contacts"].create == seed.counts["contacts"]
    assert fresh.objects["deals"].create == seed.counts["deals"]
    assert fresh.associations["association:deals:appointments"].add == seed.counts["deals-appointments"]
    assert any(p.startswith("create pipeline") for p in fresh.portal.planned)
    assert fresh.samples["contacts"][0]["action"] == "create"

    sync_practice(make_client(emu), warehouse, "mb")
    set_deal_stage(warehouse, "MB_A000200", "abgeschlossen")
    update_rows(
        warehouse,
        schema.stg_patients,
        schema.stg_patients.c.patient_key == "MB_P0004",
        last_name="Geheimname",
        phone="+49 111 222333",
    )
    ledger_before = ledger_rows(warehouse)
    log_mark = len(emu.request_log)

    report = SyncEngine(make_client(emu), warehouse, dry_run=True).sync_practice("mb")

    assert write_requests(emu, log_mark) == []
    assert ledger_rows(warehouse) == ledger_before
    assert (report.objects["deals"].update, report.objects["contacts"].update) == (1, 1)
    assert report.objects["appointments"].unchanged == seed.counts["appointments"]
    assert report.samples["deals"] == [
        {
            "key": "MB_A000200",
            "action": "update",
            "retry": False,
            "changed_properties": ["closedate", "dealstage"],
        }
    ]
    assert report.samples["contacts"][0]["changed_properties"] == ["lastname", "phone"]
    rendered = json.dumps(report.as_metadata(), default=str)
    assert "Geheimname" not in rendered and "222333" not in rendered


# ------------------------------------------------------------------------------------------ data protection


def test_only_allowlisted_contact_fields_leave_the_warehouse(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    Seed().write(warehouse)

    sync_practice(make_client(emu), warehouse, "mb")

    personal = {"firstname", "lastname", "email", "phone", "date_of_birth", "mobilephone", "biss_insurance"}
    sent = {k for o in emu.objects("contacts") for k, v in o["properties"].items() if v and k in personal}
    assert sent == {"firstname", "lastname", "email", "phone"}  # no birth date by default

    emu.reset()
    sa_delete = schema.hubspot_ledger.delete()
    with warehouse.transaction() as connection:
        connection.execute(sa_delete)
    sync_practice(make_client(emu), warehouse, "mb", SyncMapping(allowed_contact_fields=("last_name",)))

    sent = {k for o in emu.objects("contacts") for k, v in o["properties"].items() if v and k in personal}
    assert sent == {"lastname"}


def test_a_birth_date_is_sent_only_when_allowlisted(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    seed = Seed(patients=3).write(warehouse)
    mapping = SyncMapping(allowed_contact_fields=("firstname", "lastname", "birth_date"))

    sync_practice(make_client(emu), warehouse, "mb", mapping)

    births = {
        o["properties"]["ivoris_patient_id"]: o["properties"].get("date_of_birth")
        for o in emu.objects("contacts")
    }
    assert births == {r["patient_key"]: r["birth_date"].isoformat() for r in seed.rows["stg_patients"]}
    assert not any(
        o["properties"].get("email") or o["properties"].get("phone") for o in emu.objects("contacts")
    )


# --------------------------------------------------------------------------------------------- associations


def test_an_appointment_moved_to_another_deal_is_re_associated(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    Seed().write(warehouse)
    sync_practice(make_client(emu), warehouse, "mb")
    # patient 0 has two deals: move the second deal's follow-up appointment into the first deal
    update_rows(
        warehouse,
        schema.deal_appointments,
        schema.deal_appointments.c.appointment_key == "MB_A000011",
        deal_key="MB_A000000",
    )

    report = sync_practice(make_client(emu), warehouse, "mb")

    pairs = portal_state(emu)["deals-appointments"]
    assert ("MB_A000000", "MB_A000011") in pairs and ("MB_A000010", "MB_A000011") not in pairs
    counts = report.associations["association:deals:appointments"]
    assert (counts.added, counts.removed) == (1, 1)
    assert ("association:deals:appointments", "MB_A000010>MB_A000011") not in ledger_rows(warehouse)


def test_a_contact_deleted_in_hubspot_is_found_by_the_next_tick_and_its_patient_suppressed(
    emu: HubSpotEmulator, warehouse: Warehouse
) -> None:
    seed = Seed(patients=4).write(warehouse)
    sync_practice(make_client(emu), warehouse, "mb")
    hubspot = HubSpot(access_token=TOKEN, host=emu.base_url)
    contact_id = next(
        o["id"] for o in emu.objects("contacts") if o["properties"]["ivoris_patient_id"] == "MB_P0001"
    )
    hubspot.crm.objects.basic_api.archive("contacts", contact_id)  # someone deleted the contact
    # a new appointment and deal for that patient need an association to the deleted contact
    new_appointment = {
        **seed.rows["stg_appointments"][2],
        "appointment_key": "MB_A000190",
        "partition_date": seed.rows["stg_appointments"][2]["partition_date"],
    }
    with warehouse.transaction() as connection:
        connection.execute(schema.stg_appointments.insert(), [new_appointment])
        connection.execute(
            schema.deal_appointments.insert(),
            [
                {
                    "deal_key": "MB_A000100",
                    "practice_id": "mb",
                    "patient_key": "MB_P0001",
                    "appointment_key": "MB_A000190",
                }
            ],
        )

    # the next intraday run reads a rotating slice of the ledger's ids (here: all of them), finds the
    # contact gone and suppresses the patient instead of re-creating it (SPEC §8: maybe an erasure request)
    healed = sync_practice(make_client(emu), warehouse, "mb")

    assert healed.errors == 0
    assert healed.objects["contacts"].suppressed == 1
    state = portal_state(emu)
    assert "MB_P0001" not in state["contacts"]
    assert "MB_A000190" not in state["appointments"]  # the suppressed patient's new appointment: not sent
    assert ledger_rows(warehouse)[("contacts", "MB_P0001")]["status"] == "suppressed"
    log = Ledger(warehouse).read_log("mb")
    assert [(r["action"], r["object_type"], r["record_key"]) for r in log] == [
        ("suppress", "contacts", "MB_P0001")
    ]
    since = len(emu.request_log)
    assert sync_practice(make_client(emu), warehouse, "mb").calls["write_calls"] == 0
    assert write_requests(emu, since) == []


def test_stale_records_are_reported_and_left_alone(emu: HubSpotEmulator, warehouse: Warehouse) -> None:
    seed = Seed(patients=4).write(warehouse)
    sync_practice(make_client(emu), warehouse, "mb")
    with warehouse.transaction() as connection:
        connection.execute(schema.deals.delete().where(schema.deals.c.deal_key == "MB_A000100"))
        connection.execute(
            sa.delete(schema.deal_revenue).where(schema.deal_revenue.c.deal_key == "MB_A000100")
        )

    report = sync_practice(make_client(emu), warehouse, "mb")

    assert report.objects["deals"].stale == 1
    assert len(emu.objects("deals")) == seed.counts["deals"]
