"""Single-object CRUD and listing, driven through `hubspot-api-client` 12 against the emulator."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import SimplePublicObjectInput as ContactInput
from hubspot.crm.contacts import SimplePublicObjectInputForCreate as ContactCreate
from hubspot.crm.deals import SimplePublicObjectInput as DealInput
from hubspot.crm.objects import (
    AssociationSpec,
    CollectionResponseSimplePublicObjectWithAssociationsForwardPaging,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObject,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
    SimplePublicObjectWithAssociations,
)

from biss_emulators.hubspot import HubSpotEmulator
from tests.emulators.conftest_hubspot import add_unique_property, api_error, client, emu, hubspot_server

__all__ = ["client", "emu", "hubspot_server"]


def _create(client: HubSpot, object_type: str, **props: str) -> SimplePublicObject:
    return client.crm.objects.basic_api.create(
        object_type, SimplePublicObjectInputForCreate(properties=props)
    )


def test_host_keyword_routes_every_api_to_the_emulator(emu: HubSpotEmulator, client: HubSpot) -> None:
    for api in (
        client.crm.contacts.basic_api,
        client.crm.deals.batch_api,
        client.crm.objects.search_api,
        client.crm.properties.core_api,
        client.crm.pipelines.pipelines_api,
        client.crm.associations.v4.batch_api,
    ):
        assert api.api_client.configuration.host == emu.base_url


@pytest.mark.parametrize(
    ("object_type", "props", "modified"),
    [
        ("contacts", {"email": "Anna.Schmidt@example.de", "firstname": "Anna"}, "lastmodifieddate"),
        ("0-1", {"email": "b@example.de"}, "lastmodifieddate"),
        (
            "deals",
            {"dealname": "MB_A1", "dealstage": "appointmentscheduled", "amount": "480.00"},
            "hs_lastmodifieddate",
        ),
        ("0-3", {"dealname": "MB_A2"}, "hs_lastmodifieddate"),
        (
            "0-421",
            {"hs_appointment_name": "Erstberatung", "hs_appointment_start": "2026-03-01T09:00:00Z"},
            "hs_lastmodifieddate",
        ),
        ("appointments", {"hs_appointment_name": "Kontrolle"}, "hs_lastmodifieddate"),
    ],
)
def test_create_get_update_archive(
    emu: HubSpotEmulator, client: HubSpot, object_type: str, props: dict[str, str], modified: str
) -> None:
    created = _create(client, object_type, **props)
    assert isinstance(created, SimplePublicObject)
    assert created.id.isdigit()
    assert isinstance(created.created_at, datetime)
    assert created.properties["hs_object_id"] == created.id
    assert modified in created.properties

    fetched = client.crm.objects.basic_api.get_by_id(object_type, created.id, properties=list(props))
    assert isinstance(fetched, SimplePublicObjectWithAssociations)
    for name in props:
        assert fetched.properties[name] is not None

    first = next(iter(props))
    updated = client.crm.objects.basic_api.update(
        object_type, created.id, SimplePublicObjectInput(properties={first: props[first] + "x"})
    )
    assert isinstance(updated, SimplePublicObject)
    assert updated.updated_at >= created.updated_at

    assert client.crm.objects.basic_api.archive(object_type, created.id) is None
    assert emu.objects(object_type) == []
    error = api_error(client.crm.objects.basic_api.get_by_id, object_type, created.id)
    assert error.status == 404
    body = json.loads(error.body)
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["correlationId"]
    archived = client.crm.objects.basic_api.get_by_id(object_type, created.id, archived=True)
    assert archived.archived is True
    assert archived.archived_at is not None


def test_contacts_api_and_default_properties(emu: HubSpotEmulator, client: HubSpot) -> None:
    created = client.crm.contacts.basic_api.create(
        ContactCreate(properties={"email": "A@B.DE", "lastname": "B"})
    )
    assert created.properties["email"] == "a@b.de"  # HubSpot stores emails lower-case
    fetched = client.crm.contacts.basic_api.get_by_id(created.id)
    assert set(fetched.properties) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    assert fetched.properties["firstname"] is None
    assert fetched.properties["createdate"] == created.properties["createdate"]


def test_get_and_update_by_id_property(emu: HubSpotEmulator, client: HubSpot) -> None:
    add_unique_property(client, "deals", "ivoris_deal_key")
    created = _create(client, "deals", dealname="x", ivoris_deal_key="MB_10423")
    fetched = client.crm.deals.basic_api.get_by_id("MB_10423", id_property="ivoris_deal_key")
    assert fetched.id == created.id
    updated = client.crm.deals.basic_api.update(
        "MB_10423", DealInput(properties={"amount": "12.50"}), id_property="ivoris_deal_key"
    )
    assert updated.properties["amount"] == "12.50"
    by_email = client.crm.contacts.basic_api.get_by_id(
        _create(client, "contacts", email="c@d.de").properties["email"], id_property="email"
    )
    assert by_email.properties["email"] == "c@d.de"
    error = api_error(client.crm.deals.basic_api.get_by_id, "x", id_property="dealname")
    assert error.status == 400  # not a unique property


def test_unknown_property_is_a_validation_error(emu: HubSpotEmulator, client: HubSpot) -> None:
    error = api_error(_create, client, "contacts", email="a@b.de", not_a_prop="1", other="2")
    assert error.status == 400
    body = json.loads(error.body)
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    problems = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert {p["name"] for p in problems} == {"not_a_prop", "other"}
    assert all(p["error"] == "PROPERTY_DOESNT_EXIST" for p in problems)
    assert emu.objects("contacts") == []


@pytest.mark.parametrize(
    ("object_type", "props", "error_code"),
    [
        ("contacts", {"email": "no-at-sign"}, "INVALID_EMAIL"),
        ("contacts", {"hs_object_id": "5"}, "READ_ONLY_VALUE"),
        ("deals", {"amount": "lots"}, "INVALID_NUMBER"),
        ("deals", {"dealstage": "nonexistent"}, "INVALID_OPTION"),
        ("deals", {"pipeline": "nope"}, "INVALID_OPTION"),
        ("contacts", {"lifecyclestage": "patient"}, "INVALID_OPTION"),
        ("0-421", {"hs_appointment_start": "yesterday"}, "INVALID_DATETIME"),
    ],
)
def test_value_validation(client: HubSpot, object_type: str, props: dict[str, str], error_code: str) -> None:
    error = api_error(_create, client, object_type, **props)
    assert error.status == 400
    assert f'"error":"{error_code}"' in json.loads(error.body)["message"]


def test_date_properties_must_be_midnight_utc(emu: HubSpotEmulator, client: HubSpot) -> None:
    from hubspot.crm.properties import PropertyCreate

    client.crm.properties.core_api.create(
        "deals",
        PropertyCreate(
            name="behandlungsstart",
            label="Behandlungsstart",
            type="date",
            field_type="date",
            group_name="dealinformation",
        ),
    )
    ok = _create(client, "deals", behandlungsstart="2026-03-10")
    assert ok.properties["behandlungsstart"] == "2026-03-10"
    error = api_error(_create, client, "deals", behandlungsstart="2026-03-10T10:00:00Z")
    assert "not midnight" in json.loads(error.body)["message"]


def test_deal_stage_files_the_deal_under_its_pipeline_and_values_can_be_cleared(
    emu: HubSpotEmulator, client: HubSpot
) -> None:
    deal = _create(client, "deals", dealname="d", dealstage="closedwon", closedate="1767225600000")
    assert deal.properties["pipeline"] == "default"
    assert deal.properties["closedate"] == "2026-01-01T00:00:00.000Z"
    cleared = client.crm.deals.basic_api.update(deal.id, DealInput(properties={"closedate": ""}))
    assert "closedate" not in cleared.properties
    assert "closedate" not in emu.objects("deals")[0]["properties"]


def test_list_pages_through_all_objects(emu: HubSpotEmulator, client: HubSpot) -> None:
    ids = {_create(client, "0-421", hs_appointment_name=f"A{i}").id for i in range(7)}
    seen: list[str] = []
    after = None
    while True:
        page = client.crm.objects.basic_api.get_page(
            "0-421", limit=3, after=after, properties=["hs_appointment_name"]
        )
        assert isinstance(page, CollectionResponseSimplePublicObjectWithAssociationsForwardPaging)
        seen += [o.id for o in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert sorted(seen, key=int) == sorted(ids, key=int)
    assert len(seen) == 7
    assert api_error(client.crm.objects.basic_api.get_page, "0-421", limit=101).status == 400


def test_create_with_associations_and_read_them_back(emu: HubSpotEmulator, client: HubSpot) -> None:
    contact = _create(client, "contacts", email="p@x.de")
    deal = client.crm.objects.basic_api.create(
        "deals",
        SimplePublicObjectInputForCreate(
            properties={"dealname": "MB_A1"},
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id=contact.id),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=3)],
                )
            ],
        ),
    )
    assert emu.associations("deals", "contacts") == [(deal.id, contact.id, 3)]
    assert emu.associations("contacts", "deals") == [(contact.id, deal.id, 4)]
    fetched = client.crm.deals.basic_api.get_by_id(deal.id, associations=["contacts"])
    assert fetched.associations["contacts"].results[0].id == contact.id
    assert fetched.associations["contacts"].results[0].type == "deal_to_contact"
    error = api_error(
        client.crm.objects.basic_api.create,
        "deals",
        SimplePublicObjectInputForCreate(
            properties={"dealname": "x"},
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id="999999"),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=3)],
                )
            ],
        ),
    )
    assert error.status == 400


def test_unknown_object_type_and_empty_update(emu: HubSpotEmulator, client: HubSpot) -> None:
    error = api_error(_create, client, "widgets", name="x")
    assert error.status == 400
    assert json.loads(error.body)["message"] == "Unable to infer object type from: widgets"
    contact = _create(client, "contacts", email="e@x.de")
    error = api_error(client.crm.contacts.basic_api.update, contact.id, ContactInput(properties={}))
    assert error.status == 400
