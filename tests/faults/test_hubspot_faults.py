"""HubSpot misbehaving during the sync job (`hubspot/portal_setup` + `hubspot/mb/sync` with their
checks, through Dagster, on the reference run's warehouse): 429 storms under a very low rate limit,
random 502s, lost responses (the write commits, the client gets a 502). Each run succeeds and leaves
the portal and the ledger exactly as a fault-free run does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.faults.conftest import (
    SYNC_JOB,
    TOKEN,
    Reference,
    assert_matches_reference,
    fault_definitions,
    run_job,
    sync_metadata,
)

pytestmark = pytest.mark.faults

BATCH_SIZE = 10  # small batches: more calls, more of them meet a fault


def storm_429(emu: HubSpotEmulator) -> None:
    # a very low limit (20 a second; the client learns it from the headers) and a storm on top:
    # a burst of three 429s at the start, then a fifth of all calls refused
    emu.rate_limits = {"ten_secondly": 20, "window_s": 1.0}
    emu.faults.seed = 429
    emu.faults.rate_limit_next_requests(3)
    emu.faults.random_429_rate = 0.2


def random_502(emu: HubSpotEmulator) -> None:
    emu.faults.seed = 502
    emu.faults.random_502_rate = 0.1


def lost_responses(emu: HubSpotEmulator) -> None:
    # the first three writes (portal setup) and then a quarter of all writes commit but answer 502
    emu.faults.seed = 7
    emu.faults.lose_next_writes(3)
    emu.faults.lost_response_rate = 0.25


CASES: dict[str, tuple[Callable[[HubSpotEmulator], None], int, str]] = {
    # name: (inject, status the client sees, fault label in the request log)
    "storm_429": (storm_429, 429, "rate_limit_storm"),
    "random_502": (random_502, 502, "random_502"),
    "lost_responses": (lost_responses, 502, "lost_response"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_sync_under_hubspot_faults_ends_identical_to_the_reference(
        case: str, sync_input: str, hubspot: HubSpotEmulator, reference: Reference) -> None:
    inject, status, label = CASES[case]
    inject(hubspot)

    with instance_for_test() as instance:
        result = run_job(fault_definitions(reference.mapping_file, hubspot_batch_size=BATCH_SIZE),
                         SYNC_JOB, instance, window=False)
    assert result.success
    calls = sync_metadata(result)["calls"]

    log = list(hubspot.request_log)
    faults = Counter(r.fault for r in log if r.fault)
    assert faults[label] >= 3, faults  # the fault really hit the run, more than once
    assert sum(1 for r in log if r.status == status) >= faults[label]
    if case == "lost_responses":  # HubSpot did the work each time: the retry met an existing object
        assert all(r.committed_status and 200 <= r.committed_status < 300
                   for r in log if r.fault == "lost_response")
        assert calls["server_errors_5xx"] > 0 and calls["retries"] > 0
    elif case == "storm_429":
        assert calls["rate_limited_429"] > 0
        assert httpx.get(f"{hubspot.base_url}/_emulator/faults").json()["random_429_rate"] == 0.2
    else:
        assert calls["server_errors_5xx"] > 0 and calls["retries"] > 0
    compared = assert_matches_reference(hubspot, sync_input, reference.mapping_file, reference)
    print(f"\nhubspot {case}: faults {dict(faults)} in {len(log)} requests, sync client retries "
          f"{calls['retries']} (429s {calls['rate_limited_429']}, 5xx {calls['server_errors_5xx']}); "
          f"compared {compared}")


def test_a_storm_429_is_hubspots_ten_secondly_answer(hubspot: HubSpotEmulator) -> None:
    """The injected storm looks like HubSpot's own 429 (body, policy, headers with nothing left) and
    uses no slot of the window; search gets the secondly variant."""
    hubspot.faults.rate_limit_next_requests(2)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    refused = httpx.get(f"{hubspot.base_url}/crm/v3/objects/contacts", headers=headers)
    search = httpx.post(f"{hubspot.base_url}/crm/v3/objects/contacts/search", headers=headers, json={})
    ok = httpx.get(f"{hubspot.base_url}/crm/v3/objects/contacts", headers=headers)

    assert refused.status_code == 429 and search.status_code == 429 and ok.status_code == 200
    body = refused.json()
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert search.json()["policyName"] == "SECONDLY" and "X-HubSpot-RateLimit-Max" not in search.headers
    assert int(ok.headers["X-HubSpot-RateLimit-Remaining"]) == int(ok.headers["X-HubSpot-RateLimit-Max"]) - 1
    assert [r.fault for r in hubspot.request_log] == ["rate_limit_storm", "rate_limit_storm", None]


def test_the_verdict_catches_a_stray_object_a_lost_record_and_a_stale_ledger(
        sync_input: str, hubspot: HubSpotEmulator, reference: Reference) -> None:
    """The comparison every case ends with can fail: tamper with a correct end state three ways."""
    with instance_for_test() as instance:
        assert run_job(fault_definitions(reference.mapping_file), SYNC_JOB, instance, window=False).success
    assert_matches_reference(hubspot, sync_input, reference.mapping_file, reference)
    api = httpx.Client(base_url=hubspot.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
    warehouse = WarehouseResource(url=sync_input).get()
    ledger_row = schema.hubspot_ledger.c

    with warehouse.transaction() as connection:  # the ledger claims another payload was sent
        connection.execute(schema.hubspot_ledger.update().where(ledger_row.object_type == "deals")
                           .values(content_hash="0" * 64))
    with pytest.raises(AssertionError, match="hash"):
        assert_matches_reference(hubspot, sync_input, reference.mapping_file, reference)
    with warehouse.transaction() as connection:
        connection.execute(schema.hubspot_ledger.delete())
    with instance_for_test() as instance:  # repaired by a run: everything re-sent, nothing created
        assert run_job(fault_definitions(reference.mapping_file), SYNC_JOB, instance, window=False).success
    assert_matches_reference(hubspot, sync_input, reference.mapping_file, reference)

    stray = api.post("/crm/v3/objects/deals", json={"properties": {"dealname": "Duplikat"}}).json()["id"]
    with pytest.raises(AssertionError, match="unkeyed"):  # a deal without key: the old automation's kind
        assert_matches_reference(hubspot, sync_input, reference.mapping_file, reference)
    api.delete(f"/crm/v3/objects/deals/{stray}")

    contact = hubspot.objects("contacts")[0]["id"]
    api.delete(f"/crm/v3/objects/contacts/{contact}")
    with pytest.raises(AssertionError):  # a lost contact
        assert_matches_reference(hubspot, sync_input, reference.mapping_file, reference)
