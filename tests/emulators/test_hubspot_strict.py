"""The strict portal (docs/hubspot-emulator.md, "Strict portal"): every answer goes through the official
SDK, which must parse it, or through plain HTTP where the SDK refuses to build the request itself."""

from __future__ import annotations

import json

import httpx
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
    PublicObjectId,
)
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.pipelines import PipelineStageInput

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.hubspot.portal import ALL_SCOPES, DEFAULT_APPOINTMENT_STATUS_OPTIONS, PortalConfig
from tests.emulators.conftest_hubspot import TOKEN, api_error, client, emu, hubspot_server

__all__ = ["client", "emu", "hubspot_server"]


def _appointment(client: HubSpot, **properties: str) -> str:
    return str(client.crm.objects.basic_api.create(
        "0-421", SimplePublicObjectInputForCreate(properties=properties, associations=[])).id)


def _contact(client: HubSpot, email: str) -> str:
    return str(client.crm.objects.basic_api.create(
        "contacts", SimplePublicObjectInputForCreate(properties={"email": email}, associations=[])).id)


def test_appointment_status_is_an_enumeration_that_refuses_free_text(emu: HubSpotEmulator,
                                                                     client: HubSpot) -> None:
    definition = client.crm.properties.core_api.get_by_name("0-421", "hs_appointment_status")
    assert definition.type == "enumeration"
    assert [o.value for o in definition.options] == list(DEFAULT_APPOINTMENT_STATUS_OPTIONS)

    _appointment(client, hs_appointment_status="SCHEDULED")
    error = api_error(_appointment, client, hs_appointment_status="booked")

    body = json.loads(error.body)
    assert error.status == 400 and body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
    problems = json.loads(body["message"].split("Property values were not valid: ", 1)[1])
    assert problems[0]["error"] == "INVALID_OPTION" and problems[0]["name"] == "hs_appointment_status"


def test_the_lenient_switch_gives_free_text_back(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.portal = PortalConfig(appointment_status_enumeration=False)
    _appointment(client, hs_appointment_status="booked")
    assert emu.objects("0-421")[0]["properties"]["hs_appointment_status"] == "booked"


def test_association_labels_are_served_and_enforced(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.portal = PortalConfig(association_type_ids={("contacts", "appointments"): 1907,
                                                    ("appointments", "contacts"): 1906})
    labels = client.crm.associations.v4.schema.definitions_api.get_all("contacts", "0-421").results
    assert [(label.category, label.type_id, label.label) for label in labels] == [
        ("HUBSPOT_DEFINED", 1907, None)]

    contact, appointment = _contact(client, "a@example.org"), _appointment(client)

    def create(type_id: int) -> object:
        spec = AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)
        body = BatchInputPublicAssociationMultiPost(inputs=[PublicAssociationMultiPost(
            _from=PublicObjectId(id=contact), to=PublicObjectId(id=appointment), types=[spec])])
        return client.crm.associations.v4.batch_api.create("contacts", "0-421", body)

    assert api_error(create, 907).status == 400  # HUBSPOT.md's id is not this portal's
    create(1907)
    assert emu.associations("0-421", "contacts") == [(appointment, contact, 1906)]


def test_a_disabled_appointments_object_answers_like_an_unknown_type(emu: HubSpotEmulator,
                                                                     client: HubSpot) -> None:
    emu.portal = PortalConfig(appointments_enabled=False)
    error = api_error(client.crm.properties.core_api.get_all, "0-421")
    assert error.status == 400
    assert json.loads(error.body)["message"] == "Unable to infer object type from: 0-421"
    labels = client.crm.associations.v4.schema.definitions_api
    assert api_error(labels.get_all, "contacts", "0-421").status == 400
    assert client.crm.properties.core_api.get_all("contacts").results  # the other objects work


def test_a_token_without_a_scope_gets_hubspots_403(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.portal = PortalConfig(scopes={TOKEN: ALL_SCOPES - {"crm.objects.appointments.write"}})
    _contact(client, "b@example.org")
    client.crm.objects.basic_api.get_page("0-421")  # reading is granted

    error = api_error(_appointment, client, hs_appointment_status="SCHEDULED")

    body = json.loads(error.body)
    assert error.status == 403 and body["category"] == "MISSING_SCOPES" and body["status"] == "error"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.appointments.write"]
    info = httpx.post(f"{emu.base_url}/oauth/v2/private-apps/get/access-token-info",
                      json={"tokenKey": TOKEN}, headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "crm.objects.appointments.write" not in info["scopes"]
    assert "crm.objects.appointments.read" in info["scopes"]


def test_an_upsert_input_without_properties_is_refused(emu: HubSpotEmulator, client: HubSpot) -> None:
    client.crm.properties.core_api.create("contacts", {
        "name": "ivoris_patient_id", "label": "id", "type": "string", "fieldType": "text",
        "groupName": "contactinformation", "hasUniqueValue": True})
    # the SDK's model would not even build such an input: plain HTTP
    answer = httpx.post(f"{emu.base_url}/crm/v3/objects/contacts/batch/upsert",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        json={"inputs": [{"id": "MB_1", "idProperty": "ivoris_patient_id"}]})
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"
    assert "[properties]" in answer.json()["message"]
    assert emu.objects("contacts") == []

    body = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[SimplePublicObjectBatchInputUpsert(
        id="MB_1", id_property="ivoris_patient_id", properties={})])
    assert client.crm.objects.batch_api.upsert("contacts", body).results[0].new is True


def test_stage_probabilities_come_in_tenths(emu: HubSpotEmulator, client: HubSpot) -> None:
    stages = client.crm.pipelines.pipeline_stages_api

    def add(probability: str) -> object:
        return stages.create("deals", "default", PipelineStageInput(
            label=f"p{probability}", display_order=9, metadata={"probability": probability}))

    assert add("0.7").metadata["probability"] == "0.7"
    error = api_error(add, "0.75")
    assert error.status == 400 and json.loads(error.body)["category"] == "VALIDATION_ERROR"


def test_v4_batch_read_pages_per_object(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.portal = PortalConfig(association_read_page_size=2)
    contact = _contact(client, "c@example.org")
    appointments = [_appointment(client) for _ in range(5)]
    for appointment in appointments:
        client.crm.associations.v4.basic_api.create_default("contacts", contact, "0-421", appointment)

    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        body = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=contact, after=after)])
        result = client.crm.associations.v4.batch_api.get_page("contacts", "0-421", body).results[0]
        pages += 1
        seen.extend(str(t.to_object_id) for t in result.to)
        if result.paging is None or result.paging.next is None:
            break
        after = result.paging.next.after

    assert pages == 3 and seen == appointments


def test_batch_read_by_record_id_with_hs_object_id_as_id_property_is_a_400(
    emu: HubSpotEmulator, client: HubSpot
) -> None:
    contact = _contact(client, "d@example.org")

    def read(**extra: str) -> object:
        return client.crm.objects.batch_api.read("contacts", BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=contact)], properties=["email"], properties_with_history=[],
            **extra))

    assert api_error(read, id_property="hs_object_id").status == 400
    assert [r.id for r in read().results] == [contact]
