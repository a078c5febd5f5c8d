"""Associations v4 (batch default, batch create with type ids, batch read, list, single PUT/DELETE)."""

from __future__ import annotations

import json

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicDefaultAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    BatchResponseLabelsBetweenObjectPair,
    BatchResponseLabelsBetweenObjectPairWithErrors,
    BatchResponsePublicAssociationMultiWithLabel,
    BatchResponsePublicAssociationMultiWithLabelWithErrors,
    BatchResponsePublicDefaultAssociation,
    CollectionResponseMultiAssociatedObjectWithLabelForwardPaging,
    LabelsBetweenObjectPair,
    PublicAssociationMultiArchive,
    PublicAssociationMultiPost,
    PublicDefaultAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
    PublicObjectId,
)
from hubspot.crm.objects import SimplePublicObjectInputForCreate

from biss_emulators.hubspot import HubSpotEmulator
from tests.emulators.conftest_hubspot import api_error, client, emu, hubspot_server

__all__ = ["client", "emu", "hubspot_server"]


def _new(client: HubSpot, object_type: str, n: int = 1) -> list[str]:
    return [
        client.crm.objects.basic_api.create(object_type, SimplePublicObjectInputForCreate(properties={})).id
        for _ in range(n)
    ]


def _spec(type_id: int) -> AssociationSpec:
    return AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)


def test_batch_associate_default(emu: HubSpotEmulator, client: HubSpot) -> None:
    contacts, deals = _new(client, "contacts", 2), _new(client, "deals", 2)
    result = client.crm.associations.v4.batch_api.create_default(
        "deals",
        "contacts",
        BatchInputPublicDefaultAssociationMultiPost(
            inputs=[
                PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=d), to=PublicObjectId(id=c))
                for d, c in zip(deals, contacts, strict=True)
            ]
        ),
    )
    assert isinstance(result, BatchResponsePublicDefaultAssociation)
    assert result.status == "COMPLETE"
    assert [r.association_spec.association_type_id for r in result.results] == [3, 3]
    assert emu.associations("deals", "contacts") == [(deals[0], contacts[0], 3), (deals[1], contacts[1], 3)]
    assert emu.associations("contacts", "deals") == [(contacts[0], deals[0], 4), (contacts[1], deals[1], 4)]
    assert emu.request_log[-1].batch_size == 2
    missing = client.crm.associations.v4.batch_api.create_default(
        "deals",
        "contacts",
        BatchInputPublicDefaultAssociationMultiPost(
            inputs=[
                PublicDefaultAssociationMultiPost(
                    _from=PublicObjectId(id=deals[0]), to=PublicObjectId(id="424242")
                )
            ]
        ),
    )
    assert isinstance(
        missing, BatchResponsePublicDefaultAssociation
    )  # 200 even with errors, as the SDK expects
    assert (missing.results, missing.num_errors) == ([], 1)


@pytest.mark.parametrize(
    ("from_type", "to_type", "type_id", "inverse"),
    [
        ("deals", "contacts", 3, 4),
        ("contacts", "deals", 4, 3),
        ("0-421", "contacts", 906, 907),
        ("contacts", "0-421", 907, 906),
        ("0-421", "deals", 944, 945),
        ("deals", "appointments", 945, 944),
    ],
)
def test_batch_create_with_type_ids(
    emu: HubSpotEmulator, client: HubSpot, from_type: str, to_type: str, type_id: int, inverse: int
) -> None:
    (from_id,), (to_id,) = _new(client, from_type), _new(client, to_type)
    result = client.crm.associations.v4.batch_api.create(
        from_type,
        to_type,
        BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=from_id), to=PublicObjectId(id=to_id), types=[_spec(type_id)]
                )
            ]
        ),
    )
    assert isinstance(result, BatchResponseLabelsBetweenObjectPair)
    pair = result.results[0]
    assert isinstance(pair, LabelsBetweenObjectPair)
    assert (pair.from_object_id, pair.to_object_id, pair.labels) == (from_id, to_id, [])
    assert emu.associations(from_type, to_type) == [(from_id, to_id, type_id)]
    assert emu.associations(to_type, from_type) == [(to_id, from_id, inverse)]


def test_batch_create_207_and_wrong_type(emu: HubSpotEmulator, client: HubSpot) -> None:
    (deal,), (contact,) = _new(client, "deals"), _new(client, "contacts")
    result = client.crm.associations.v4.batch_api.create(
        "deals",
        "contacts",
        BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=deal), to=PublicObjectId(id=contact), types=[_spec(3)]
                ),
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=deal), to=PublicObjectId(id="9999999"), types=[_spec(3)]
                ),
            ]
        ),
    )
    assert isinstance(result, BatchResponseLabelsBetweenObjectPairWithErrors)
    assert result.num_errors == 1
    assert result.errors[0].context["toObjectId"] == ["9999999"]
    error = api_error(
        client.crm.associations.v4.batch_api.create,
        "deals",
        "contacts",
        BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=deal), to=PublicObjectId(id=contact), types=[_spec(906)]
                )
            ]
        ),
    )
    assert error.status == 400
    assert json.loads(error.body)["category"] == "VALIDATION_ERROR"


def test_batch_read_and_list(emu: HubSpotEmulator, client: HubSpot) -> None:
    (contact,), deals = _new(client, "contacts"), _new(client, "deals", 3)
    (lonely,) = _new(client, "contacts")
    client.crm.associations.v4.batch_api.create(
        "contacts",
        "deals",
        BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=contact), to=PublicObjectId(id=d), types=[_spec(4)]
                )
                for d in deals
            ]
        ),
    )
    read = client.crm.associations.v4.batch_api.get_page(
        "contacts",
        "deals",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=contact)]
        ),
    )
    assert isinstance(read, BatchResponsePublicAssociationMultiWithLabel)
    assert read.results[0]._from.id == contact
    assert [t.to_object_id for t in read.results[0].to] == deals
    assert read.results[0].to[0].association_types[0].type_id == 4
    assert read.results[0].to[0].association_types[0].category == "HUBSPOT_DEFINED"

    partial = client.crm.associations.v4.batch_api.get_page(
        "contacts",
        "deals",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[
                PublicFetchAssociationsBatchRequest(id=contact),
                PublicFetchAssociationsBatchRequest(id=lonely),
            ]
        ),
    )
    assert isinstance(partial, BatchResponsePublicAssociationMultiWithLabelWithErrors)
    assert partial.errors[0].context["fromObjectId"] == [lonely]

    first = client.crm.associations.v4.basic_api.get_page("contacts", contact, "deals", limit=2)
    assert isinstance(first, CollectionResponseMultiAssociatedObjectWithLabelForwardPaging)
    second = client.crm.associations.v4.basic_api.get_page(
        "contacts", contact, "deals", limit=2, after=first.paging.next.after
    )
    assert [r.to_object_id for r in first.results + second.results] == deals
    assert second.paging is None


def test_single_put_delete_and_archive(emu: HubSpotEmulator, client: HubSpot) -> None:
    (appt,), (deal,), (contact,) = _new(client, "0-421"), _new(client, "deals"), _new(client, "contacts")
    basic = client.crm.associations.v4.basic_api
    labelled = basic.create("0-421", appt, "deals", deal, [_spec(944)])
    assert isinstance(labelled, LabelsBetweenObjectPair)
    default = basic.create_default("0-421", appt, "contacts", contact)
    assert isinstance(default, BatchResponsePublicDefaultAssociation)
    assert default.results[0].association_spec.association_type_id == 906
    assert basic.archive("0-421", appt, "deals", deal) is None
    assert emu.associations("deals", "appointments") == []
    client.crm.associations.v4.batch_api.archive(
        "contacts",
        "0-421",
        BatchInputPublicAssociationMultiArchive(
            inputs=[
                PublicAssociationMultiArchive(_from=PublicObjectId(id=contact), to=[PublicObjectId(id=appt)])
            ]
        ),
    )
    assert emu.associations("0-421", "contacts") == []

    basic.create_default("deals", deal, "contacts", contact)
    client.crm.objects.basic_api.archive("contacts", contact)
    assert emu.associations("deals", "contacts") == []  # archiving an object drops its associations
