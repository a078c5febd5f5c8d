"""Rate limits, auth and injected faults, as the SDK experiences them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util.retry import Retry

from biss_emulators.hubspot import Faults, HubSpotEmulator, RateLimits
from tests.emulators.conftest_hubspot import (
    TOKEN,
    add_unique_property,
    api_error,
    client,
    emu,
    hubspot_server,
)

__all__ = ["client", "emu", "hubspot_server"]

RATE_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)


def _get_page(client: HubSpot) -> tuple[int, Mapping[str, str]]:
    """Status and headers (urllib3's case-insensitive dict: uvicorn sends header names lower-case)."""
    _, status, headers = client.crm.contacts.basic_api.get_page_with_http_info()
    return status, headers


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# ---------------------------------------------------------------------------------------------- limits


def test_tier_defaults_are_hubspots() -> None:
    assert RateLimits.for_tier("starter") == RateLimits(ten_secondly=100, daily=250_000)
    assert RateLimits.for_tier("professional") == RateLimits(ten_secondly=190, daily=650_000)
    enterprise = RateLimits.for_tier("enterprise")
    assert (enterprise.ten_secondly, enterprise.daily, enterprise.window_s) == (190, 1_000_000, 10.0)
    assert enterprise.search_per_second == 5
    with pytest.raises(ValueError):
        RateLimits.for_tier("platinum")
    with pytest.raises(ValueError):
        RateLimits.for_tier("starter", {"per_minute": 3})


def test_rate_limit_headers_on_normal_responses(emu: HubSpotEmulator, client: HubSpot) -> None:
    status, headers = _get_page(client)
    assert status == 200
    assert {h: headers[h] for h in RATE_HEADERS} == {
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": "189",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Daily": "650000",
        "X-HubSpot-RateLimit-Daily-Remaining": "649999",
    }
    _, headers = _get_page(client)
    assert headers["X-HubSpot-RateLimit-Remaining"] == "188"


def test_ten_secondly_limit_answers_429_with_hubspots_body(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.rate_limits = {"ten_secondly": 3, "window_s": 60.0}
    remaining = [_get_page(client)[1]["X-HubSpot-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    error = api_error(client.crm.contacts.basic_api.get_page)
    assert error.status == 429
    body = json.loads(error.body)
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert len(body["correlationId"]) == 36
    assert error.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert error.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert emu.request_log[-1].status == 429


def test_the_ten_second_window_rolls(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.rate_limits = {"ten_secondly": 2, "window_s": 0.5}
    _get_page(client)
    _get_page(client)
    assert api_error(client.crm.contacts.basic_api.get_page).status == 429

    def recovered() -> bool:
        try:
            return _get_page(client)[0] == 200
        except Exception as exc:
            if getattr(exc, "status", None) != 429:
                raise
            return False

    assert _wait_until(recovered)


def test_daily_limit(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.rate_limits = {"daily": 2}
    _get_page(client)
    _, headers = _get_page(client)
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    error = api_error(client.crm.contacts.basic_api.get_page)
    assert error.status == 429
    body = json.loads(error.body)
    assert (body["policyName"], body["message"]) == ("DAILY", "You have reached your daily limit.")


def test_tier_changes_the_limits() -> None:
    with HubSpotEmulator(token=TOKEN, tier="starter") as emu:
        client = HubSpot(access_token=TOKEN, host=emu.base_url)
        _, headers = _get_page(client)
        assert headers["X-HubSpot-RateLimit-Max"] == "100"
        assert headers["X-HubSpot-RateLimit-Daily"] == "250000"


# ---------------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_token_get_401(emu: HubSpotEmulator, token: str | None) -> None:
    stranger = HubSpot(access_token=token, host=emu.base_url)
    error = api_error(stranger.crm.contacts.basic_api.get_page)
    assert error.status == 401
    body = json.loads(error.body)
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found.")
    assert body["status"] == "error"
    assert body["correlationId"]
    assert emu.request_log[-1].status == 401
    assert emu.objects("contacts") == []


def test_inspection_routes_need_no_token(emu: HubSpotEmulator, client: HubSpot) -> None:
    client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "i@x.de"}))
    state = httpx.get(f"{emu.base_url}/_emulator/state").json()
    assert [o["properties"]["email"] for o in state["objects"]["contacts"].values()] == ["i@x.de"]
    assert "default" in state["pipelines"]["deals"]
    requests = httpx.get(f"{emu.base_url}/_emulator/requests").json()["results"]
    assert requests[-1]["method"] == "POST"
    assert requests[-1]["path"] == "/crm/v3/objects/contacts"
    assert requests[-1]["status"] == 201
    faults = httpx.post(f"{emu.base_url}/_emulator/faults", json={"random_502_rate": 0.5, "seed": 3}).json()
    assert faults["random_502_rate"] == 0.5
    assert emu.faults.random_502_rate == 0.5
    assert httpx.post(f"{emu.base_url}/_emulator/reset").status_code == 204
    assert emu.objects("contacts") == []


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize(("setting", "status"), [("random_502_rate", 502), ("random_504_rate", 504)])
def test_random_gateway_errors(emu: HubSpotEmulator, client: HubSpot, setting: str, status: int) -> None:
    setattr(emu.faults, setting, 1.0)
    error = api_error(client.crm.contacts.basic_api.create, SimplePublicObjectInputForCreate(properties={}))
    assert error.status == status
    assert emu.objects("contacts") == []  # a gateway error before HubSpot: nothing written
    assert emu.request_log[-1].fault == f"random_{status}"


def test_faults_are_reproducible_from_the_seed(emu: HubSpotEmulator, client: HubSpot) -> None:
    def statuses() -> list[int]:
        emu.faults.seed = 42
        out = []
        for _ in range(30):
            try:
                out.append(_get_page(client)[0])
            except Exception as exc:
                out.append(exc.status)  # type: ignore[attr-defined]
        return out

    emu.faults.random_502_rate = 0.2
    emu.faults.random_504_rate = 0.1
    first = statuses()
    assert {502, 504, 200} <= set(first)
    assert statuses() == first


def test_latency_does_not_change_answers(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.faults.latency_s = 0.05
    assert _get_page(client)[0] == 200


def test_lost_response_commits_the_write_and_answers_502(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.faults.lose_next_writes(1)
    error = api_error(client.crm.deals.basic_api.create, DealCreate(properties={"dealname": "MB_A1"}))
    assert error.status == 502
    assert len(emu.objects("deals")) == 1  # HubSpot did the work; the client cannot know
    entry = emu.request_log[-1]
    assert (entry.status, entry.fault, entry.committed_status) == (502, "lost_response", 201)
    # the naive client retries the create and now has a duplicate deal
    client.crm.deals.basic_api.create(DealCreate(properties={"dealname": "MB_A1"}))
    assert [d["properties"]["dealname"] for d in emu.objects("deals")] == ["MB_A1", "MB_A1"]


def test_upsert_on_a_unique_key_survives_a_lost_response(emu: HubSpotEmulator, client: HubSpot) -> None:
    add_unique_property(client, "contacts", "ivoris_patient_id")
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[SimplePublicObjectBatchInputUpsert(id="MB_1", id_property="ivoris_patient_id", properties={})]
    )
    emu.faults.lose_next_writes(1)
    assert api_error(client.crm.contacts.batch_api.upsert, batch).status == 502
    retried = client.crm.contacts.batch_api.upsert(batch)
    assert retried.results[0].new is False
    assert len(emu.objects("contacts")) == 1


def test_lost_response_rate_is_seeded(emu: HubSpotEmulator, client: HubSpot) -> None:
    def run() -> list[int]:
        emu.reset()
        emu.faults.seed = 7
        emu.faults.lost_response_rate = 0.5
        out = []
        for i in range(12):
            try:
                client.crm.deals.basic_api.create(DealCreate(properties={"dealname": str(i)}))
                out.append(201)
            except Exception as exc:
                out.append(exc.status)  # type: ignore[attr-defined]
        assert len(emu.objects("deals")) == 12  # every write committed, answered or not
        return out

    first = run()
    assert set(first) == {201, 502}
    assert run() == first


@settings(max_examples=20, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["MB_1", "MB_2", "MB_3", "MB_4"]), min_size=1, max_size=10),
    seed=st.integers(0, 2**16),
)
def test_an_upserting_client_never_duplicates_under_lost_responses(
    hubspot_server: HubSpotEmulator, keys: list[str], seed: int
) -> None:
    emu = hubspot_server
    emu.reset()
    emu.state.create_property(
        "contacts",
        {
            "name": "ivoris_patient_id",
            "label": "P",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
            "hasUniqueValue": True,
        },
    )
    emu.faults.seed = seed
    emu.faults.lost_response_rate = 0.5
    client = HubSpot(access_token=TOKEN, host=emu.base_url)
    try:
        for key in keys:
            batch = BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[
                    SimplePublicObjectBatchInputUpsert(id=key, id_property="ivoris_patient_id", properties={})
                ]
            )
            for _ in range(50):  # retry until an answer arrives, as the sync does
                try:
                    client.crm.contacts.batch_api.upsert(batch)
                    break
                except Exception as exc:
                    assert getattr(exc, "status", None) == 502
        assert sorted(o["properties"]["ivoris_patient_id"] for o in emu.objects("contacts")) == sorted(
            set(keys)
        )
    finally:
        emu.faults.clear()


def test_failed_writes_do_not_lose_their_response(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.faults.lose_next_writes(1)
    error = api_error(client.crm.deals.basic_api.create, DealCreate(properties={"bogus": "1"}))
    assert error.status == 400  # nothing committed, so nothing to lose
    assert emu.faults.pending_lost_responses == 1


def test_sdk_retry_skips_post_unless_allowed(emu: HubSpotEmulator) -> None:
    """The trap in HUBSPOT.md: urllib3's Retry does not retry POST by default."""
    default_retry = HubSpot(
        access_token=TOKEN,
        host=emu.base_url,
        retry=Retry(total=2, status_forcelist=[502], backoff_factor=0, raise_on_status=False),
    )
    emu.faults.fail_next_requests(1, 502)
    assert default_retry.crm.contacts.basic_api.get_page().results == []  # GET retried
    emu.faults.fail_next_requests(1, 502)
    error = api_error(
        default_retry.crm.contacts.basic_api.create, SimplePublicObjectInputForCreate(properties={})
    )
    assert error.status == 502  # POST not retried

    all_methods = HubSpot(
        access_token=TOKEN,
        host=emu.base_url,
        retry=Retry(total=2, status_forcelist=[502], backoff_factor=0, allowed_methods=None),
    )
    emu.faults.fail_next_requests(1, 502)
    created = all_methods.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={}))
    assert created.id
    assert [e.status for e in emu.requests(method="POST")][-3:] == [502, 502, 201]


def test_faults_accept_a_dict_and_clear() -> None:
    faults = Faults(random_502_rate=0.5, seed=1)
    faults.lose_next_writes(2)
    faults.clear()
    assert faults.as_dict()["pending_lost_responses"] == 0
    assert faults.roll_gateway() is None
    emulator = HubSpotEmulator(faults={"latency_s": 0.1})
    assert emulator.faults.latency_s == 0.1
