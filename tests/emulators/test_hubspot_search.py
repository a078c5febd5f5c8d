"""CRM search through the SDK: filters, sorts, paging, the 10,000-result cap, its own rate limit,
and eventual consistency (writes become searchable only after the indexing delay)."""

from __future__ import annotations

import json
import time

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import PublicObjectSearchRequest as ContactSearch
from hubspot.crm.contacts import SimplePublicObjectInputForCreate as ContactCreate
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    CollectionResponseWithTotalSimplePublicObjectForwardPaging,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)

from biss_emulators.hubspot import HubSpotEmulator
from tests.emulators.conftest_hubspot import api_error, client, emu, hubspot_server

__all__ = ["client", "emu", "hubspot_server"]


def _deals(client: HubSpot, *props: dict[str, str]) -> list[str]:
    result = client.crm.objects.batch_api.create(
        "deals",
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[SimplePublicObjectBatchInputForCreate(properties=p) for p in props]
        ),
    )
    return [r.id for r in result.results]


def _search(
    client: HubSpot, object_type: str = "deals", **kwargs: object
) -> CollectionResponseWithTotalSimplePublicObjectForwardPaging:
    result = client.crm.objects.search_api.do_search(object_type, PublicObjectSearchRequest(**kwargs))
    assert isinstance(result, CollectionResponseWithTotalSimplePublicObjectForwardPaging)
    return result


def _eq(name: str, value: str, operator: str = "EQ") -> dict[str, object]:
    return {"filters": [{"propertyName": name, "operator": operator, "value": value}]}


@pytest.fixture
def sample(client: HubSpot) -> list[str]:
    return _deals(
        client,
        {
            "dealname": "Implantat Müller",
            "amount": "1200.50",
            "dealstage": "closedwon",
            "closedate": "2026-03-10",
        },
        {"dealname": "Prophylaxe Schmidt", "amount": "80", "dealstage": "appointmentscheduled"},
        {"dealname": "Füllung Meier", "amount": "240", "dealstage": "closedlost", "closedate": "2026-02-01"},
        {"dealname": "Prophylaxe Wagner"},
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([_eq("dealstage", "closedwon")], [0]),
        ([_eq("dealstage", "closedwon", "NEQ")], [1, 2, 3]),
        ([_eq("amount", "200", "GT")], [0, 2]),
        ([_eq("amount", "240", "LTE")], [1, 2]),
        (
            [
                {
                    "filters": [
                        {"propertyName": "amount", "operator": "BETWEEN", "value": "50", "highValue": "240"}
                    ]
                }
            ],
            [1, 2],
        ),
        (
            [
                {
                    "filters": [
                        {"propertyName": "dealstage", "operator": "IN", "values": ["closedwon", "closedlost"]}
                    ]
                }
            ],
            [0, 2],
        ),
        (
            [{"filters": [{"propertyName": "dealstage", "operator": "NOT_IN", "values": ["closedwon"]}]}],
            [1, 2, 3],
        ),
        ([{"filters": [{"propertyName": "amount", "operator": "HAS_PROPERTY"}]}], [0, 1, 2]),
        ([{"filters": [{"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"}]}], [3]),
        ([_eq("dealname", "prophylaxe", "CONTAINS_TOKEN")], [1, 3]),
        ([_eq("dealname", "Prophylaxe*", "CONTAINS_TOKEN")], [1, 3]),
        ([_eq("closedate", "2026-03-01", "GTE")], [0]),
        ([_eq("closedate", str(1769904000000), "EQ")], [2]),  # epoch ms for 2026-02-01
        # groups are ORed, filters inside a group ANDed
        ([_eq("dealstage", "closedwon"), _eq("dealstage", "closedlost")], [0, 2]),
        (
            [
                {
                    "filters": [
                        {"propertyName": "amount", "operator": "GT", "value": "100"},
                        {"propertyName": "dealstage", "operator": "EQ", "value": "closedlost"},
                    ]
                }
            ],
            [2],
        ),
    ],
)
def test_filters(
    client: HubSpot, sample: list[str], filters: list[dict[str, object]], expected: list[int]
) -> None:
    result = _search(client, filter_groups=filters, limit=100)
    assert result.total == len(expected)
    assert sorted(r.id for r in result.results) == sorted(sample[i] for i in expected)


def test_sorts_properties_and_query(client: HubSpot, sample: list[str]) -> None:
    by_amount = _search(client, sorts=["-amount"], properties=["amount", "dealname"])
    assert [r.id for r in by_amount.results] == [sample[0], sample[2], sample[1], sample[3]]  # unset last
    assert set(by_amount.results[0].properties) >= {"amount", "dealname", "hs_object_id", "createdate"}
    ascending = _search(client, sorts=[{"propertyName": "amount", "direction": "ASCENDING"}])  # type: ignore[list-item]
    assert [r.id for r in ascending.results][:3] == [sample[1], sample[2], sample[0]]
    assert {r.id for r in _search(client, query="prophylaxe").results} == {sample[1], sample[3]}


def test_paging_and_limits(client: HubSpot, sample: list[str]) -> None:
    first = _search(client, limit=3, sorts=["hs_object_id"])
    assert first.total == 4
    assert first.paging.next.after == "3"
    second = _search(client, limit=3, after=first.paging.next.after, sorts=["hs_object_id"])
    assert [r.id for r in first.results + second.results] == sample
    assert second.paging is None
    assert api_error(_search, client, limit=201).status == 400
    too_many_groups = [_eq("dealname", str(i)) for i in range(6)]
    assert api_error(_search, client, filter_groups=too_many_groups).status == 400
    assert api_error(_search, client, filter_groups=[_eq("no_such_property", "1")]).status == 400


def test_ten_thousand_result_cap(emu: HubSpotEmulator, client: HubSpot) -> None:
    for chunk in range(101):
        emu.state.batch_create(
            "0-421",
            {"inputs": [{"properties": {"hs_appointment_name": f"T{chunk}-{i}"}} for i in range(100)]},
        )
    near_end = _search(client, "0-421", limit=200, after="9800")
    assert near_end.total == 10_100  # the total is not capped, only paging is
    assert len(near_end.results) == 200
    assert near_end.paging.next.after == "10000"
    error = api_error(_search, client, "0-421", limit=10, after=near_end.paging.next.after)
    assert error.status == 400
    assert json.loads(error.body)["category"] == "VALIDATION_ERROR"


def test_search_is_eventually_consistent(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.search_index_delay_s = 3600.0  # nothing becomes searchable on its own during this test
    deal = client.crm.objects.basic_api.create(
        "deals",
        SimplePublicObjectInputForCreate(
            properties={"dealname": "MB_A1", "dealstage": "appointmentscheduled"}
        ),
    )
    assert _search(client, filter_groups=[_eq("dealname", "MB_A1")]).total == 0  # the duplicate-breeding race
    assert client.crm.deals.basic_api.get_by_id(deal.id).id == deal.id  # reads by id are consistent
    emu.flush_search_index()
    assert _search(client, filter_groups=[_eq("dealname", "MB_A1")]).total == 1

    client.crm.objects.basic_api.update(
        "deals", deal.id, SimplePublicObjectInput(properties={"dealstage": "closedwon"})
    )
    stale = _search(client, filter_groups=[_eq("dealname", "MB_A1")], properties=["dealstage"])
    assert (
        stale.results[0].properties["dealstage"] == "appointmentscheduled"
    )  # the old version is still indexed
    assert _search(client, filter_groups=[_eq("dealstage", "closedwon")]).total == 0

    client.crm.objects.basic_api.archive("deals", deal.id)
    assert _search(client, filter_groups=[_eq("dealname", "MB_A1")]).total == 1  # archive not indexed yet
    emu.flush_search_index()
    assert _search(client, filter_groups=[_eq("dealname", "MB_A1")]).total == 0


def test_search_lag_passes_with_time(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.search_index_delay_s = 0.5
    client.crm.contacts.basic_api.create(ContactCreate(properties={"email": "lag@x.de"}))
    request = ContactSearch(filter_groups=[_eq("email", "lag@x.de")])
    deadline = time.monotonic() + 10.0
    found = client.crm.contacts.search_api.do_search(request).total
    while found == 0 and time.monotonic() < deadline:
        time.sleep(0.2)  # stays under the 5 searches a second
        found = client.crm.contacts.search_api.do_search(request).total
    assert found == 1


def test_search_rate_limit_has_its_own_429_and_no_headers(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.rate_limits = {"search_window_s": 60.0}  # five searches per window, a window longer than the test
    for _ in range(5):
        _, status, headers = client.crm.objects.search_api.do_search_with_http_info(
            "deals", PublicObjectSearchRequest()
        )
        assert status == 200
        assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in headers)
    error = api_error(_search, client)
    assert error.status == 429
    body = json.loads(error.body)
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "SECONDLY"
    assert body["message"] == "You have reached your secondly limit."
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in error.headers)
    # the search limit is separate from the ten-secondly one
    assert client.crm.deals.basic_api.get_page().results == []
