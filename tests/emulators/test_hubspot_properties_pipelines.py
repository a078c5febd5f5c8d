"""Properties, property groups and deal pipelines, through the SDK."""

from __future__ import annotations

import json

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.pipelines import (
    CollectionResponsePipelineNoPaging,
    CollectionResponsePipelineStageNoPaging,
    Pipeline,
    PipelineInput,
    PipelinePatchInput,
    PipelineStage,
    PipelineStageInput,
    PipelineStagePatchInput,
)
from hubspot.crm.properties import (
    BatchInputPropertyCreate,
    BatchReadInputPropertyName,
    BatchResponseProperty,
    BatchResponsePropertyWithErrors,
    CollectionResponsePropertyGroupNoPaging,
    CollectionResponsePropertyNoPaging,
    ModelProperty,
    OptionInput,
    PropertyCreate,
    PropertyGroup,
    PropertyGroupCreate,
    PropertyGroupUpdate,
    PropertyName,
    PropertyUpdate,
)

from biss_emulators.hubspot import HubSpotEmulator
from tests.emulators.conftest_hubspot import api_error, client, emu, hubspot_server

__all__ = ["client", "emu", "hubspot_server"]


def _prop(name: str, **kwargs: object) -> PropertyCreate:
    fields: dict[str, object] = {
        "label": name,
        "type": "string",
        "field_type": "text",
        "group_name": "contactinformation",
    }
    fields.update(kwargs)
    return PropertyCreate(name=name, **fields)


@pytest.mark.parametrize(
    ("object_type", "expected"),
    [
        (
            "contacts",
            {"email", "firstname", "lastname", "phone", "hs_object_id", "createdate", "lastmodifieddate"},
        ),
        ("deals", {"dealname", "dealstage", "pipeline", "amount", "closedate", "hs_lastmodifieddate"}),
        (
            "0-421",
            {"hs_appointment_name", "hs_appointment_start", "hs_appointment_end", "hs_appointment_status"},
        ),
    ],
)
def test_default_properties_exist(client: HubSpot, object_type: str, expected: set[str]) -> None:
    result = client.crm.properties.core_api.get_all(object_type)
    assert isinstance(result, CollectionResponsePropertyNoPaging)
    assert all(isinstance(p, ModelProperty) for p in result.results)
    assert expected <= {p.name for p in result.results}


def test_create_get_update_archive_property(emu: HubSpotEmulator, client: HubSpot) -> None:
    created = client.crm.properties.core_api.create(
        "contacts",
        _prop(
            "insurance",
            type="enumeration",
            field_type="select",
            options=[
                OptionInput(label="GKV", value="GKV", hidden=False),
                OptionInput(label="PKV", value="PKV", hidden=False),
            ],
        ),
    )
    assert isinstance(created, ModelProperty)
    assert [o.value for o in created.options] == ["GKV", "PKV"]
    assert created.has_unique_value is False
    fetched = client.crm.properties.core_api.get_by_name("contacts", "insurance")
    assert fetched.label == "insurance"
    updated = client.crm.properties.core_api.update(
        "contacts", "insurance", PropertyUpdate(label="Versicherung")
    )
    assert updated.label == "Versicherung"
    error = api_error(
        client.crm.properties.core_api.update,
        "contacts",
        "insurance",
        PropertyUpdate(
            label="x",
            options=[OptionInput(label="x", value="x", hidden=False)],
            field_type="select",
            group_name="nope",
        ),
    )
    assert error.status == 400
    assert client.crm.properties.core_api.archive("contacts", "insurance") is None
    assert api_error(client.crm.properties.core_api.get_by_name, "contacts", "insurance").status == 404
    assert api_error(client.crm.properties.core_api.archive, "contacts", "email").status == 400


def test_property_conflicts_and_validation(emu: HubSpotEmulator, client: HubSpot) -> None:
    client.crm.properties.core_api.create("contacts", _prop("ivoris_patient_id", has_unique_value=True))
    error = api_error(client.crm.properties.core_api.create, "contacts", _prop("ivoris_patient_id"))
    assert error.status == 409
    body = json.loads(error.body)
    assert (body["category"], body["message"]) == (
        "OBJECT_ALREADY_EXISTS",
        "Property named 'ivoris_patient_id' already exists.",
    )
    error = api_error(client.crm.properties.core_api.create, "contacts", _prop("x", group_name="nope"))
    assert error.status == 400
    relabelled = client.crm.properties.core_api.update(
        "contacts", "ivoris_patient_id", PropertyUpdate(label="x")
    )
    assert relabelled.has_unique_value is True


def test_has_unique_value_cannot_change_and_is_capped(emu: HubSpotEmulator, client: HubSpot) -> None:
    # PropertyUpdate has no hasUniqueValue field, so this one goes out raw
    headers = {"Authorization": "Bearer test-token"}
    client.crm.properties.core_api.create(
        "deals", _prop("ivoris_deal_key", group_name="dealinformation", has_unique_value=True)
    )
    response = httpx.patch(
        f"{emu.base_url}/crm/v3/properties/deals/ivoris_deal_key",
        json={"hasUniqueValue": False},
        headers=headers,
    )
    assert response.status_code == 400
    for i in range(9):
        client.crm.properties.core_api.create(
            "deals", _prop(f"key_{i}", group_name="dealinformation", has_unique_value=True)
        )
    error = api_error(
        client.crm.properties.core_api.create,
        "deals",
        _prop("key_10", group_name="dealinformation", has_unique_value=True),
    )
    assert error.status == 400


def test_batch_create_and_read_properties(emu: HubSpotEmulator, client: HubSpot) -> None:
    created = client.crm.properties.batch_api.create(
        "0-421",
        BatchInputPropertyCreate(
            inputs=[
                _prop("chair_id", group_name="appointmentinformation"),
                _prop("practice_id", group_name="appointmentinformation"),
            ]
        ),
    )
    assert isinstance(created, BatchResponseProperty)
    assert {p.name for p in created.results} == {"chair_id", "practice_id"}
    partial = client.crm.properties.batch_api.create(
        "0-421",
        BatchInputPropertyCreate(
            inputs=[
                _prop("chair_id", group_name="appointmentinformation"),
                _prop("type_id", group_name="appointmentinformation"),
            ]
        ),
    )
    assert isinstance(partial, BatchResponsePropertyWithErrors)
    assert [p.name for p in partial.results] == ["type_id"]
    assert partial.errors[0].category == "OBJECT_ALREADY_EXISTS"
    read = client.crm.properties.batch_api.read(
        "0-421",
        BatchReadInputPropertyName(
            inputs=[PropertyName(name="chair_id"), PropertyName(name="nope")], archived=False
        ),
    )
    assert isinstance(read, BatchResponsePropertyWithErrors)
    assert [p.name for p in read.results] == ["chair_id"]


def test_property_groups(emu: HubSpotEmulator, client: HubSpot) -> None:
    groups = client.crm.properties.groups_api.get_all("contacts")
    assert isinstance(groups, CollectionResponsePropertyGroupNoPaging)
    assert "contactinformation" in {g.name for g in groups.results}
    created = client.crm.properties.groups_api.create(
        "contacts", PropertyGroupCreate(name="biss", label="BISS")
    )
    assert isinstance(created, PropertyGroup)
    assert (
        api_error(
            client.crm.properties.groups_api.create, "contacts", PropertyGroupCreate(name="biss", label="x")
        ).status
        == 409
    )
    updated = client.crm.properties.groups_api.update(
        "contacts", "biss", PropertyGroupUpdate(label="BISS Praxis")
    )
    assert updated.label == "BISS Praxis"
    assert client.crm.properties.groups_api.get_by_name("contacts", "biss").label == "BISS Praxis"
    client.crm.properties.core_api.create("contacts", _prop("in_group", group_name="biss"))
    assert api_error(client.crm.properties.groups_api.archive, "contacts", "biss").status == 400


# ---------------------------------------------------------------------------------------------- pipelines


def test_default_deal_pipeline(client: HubSpot) -> None:
    pipelines = client.crm.pipelines.pipelines_api.get_all("deals")
    assert isinstance(pipelines, CollectionResponsePipelineNoPaging)
    default = pipelines.results[0]
    assert isinstance(default, Pipeline)
    assert default.id == "default"
    stages = {s.id: s for s in default.stages}
    assert {"appointmentscheduled", "closedwon", "closedlost"} <= set(stages)
    assert stages["closedwon"].metadata == {"isClosed": "true", "probability": "1.0"}


def _stage(label: str, order: int, probability: str) -> PipelineStageInput:
    return PipelineStageInput(label=label, display_order=order, metadata={"probability": probability})


def test_create_update_pipeline_and_stages(emu: HubSpotEmulator, client: HubSpot) -> None:
    api = client.crm.pipelines.pipelines_api
    created = api.create(
        "deals",
        PipelineInput(
            label="Behandlung",
            display_order=1,
            stages=[
                _stage("Termin gebucht", 0, "0.2"),
                _stage("Erstberatung", 1, "0.4"),
                _stage("Verloren", 2, "0.0"),
            ],
        ),
    )
    assert isinstance(created, Pipeline)
    assert created.id.isdigit()
    assert [s.label for s in created.stages] == ["Termin gebucht", "Erstberatung", "Verloren"]
    assert api.get_by_id("deals", created.id).label == "Behandlung"
    assert (
        api_error(
            api.create,
            "deals",
            PipelineInput(label="Behandlung", display_order=2, stages=[_stage("x", 0, "0.1")]),
        ).status
        == 409
    )
    renamed = api.update("deals", created.id, PipelinePatchInput(label="Behandlungspfad"))
    assert renamed.label == "Behandlungspfad"

    stages_api = client.crm.pipelines.pipeline_stages_api
    stage = stages_api.create("deals", created.id, _stage("In Behandlung", 3, "0.6"))
    assert isinstance(stage, PipelineStage)
    patched = stages_api.update(
        "deals",
        created.id,
        stage.id,
        PipelineStagePatchInput(label="In Behandlung!", metadata={"probability": "0.7"}),
    )
    assert (patched.label, patched.metadata["probability"]) == ("In Behandlung!", "0.7")
    listed = stages_api.get_all("deals", created.id)
    assert isinstance(listed, CollectionResponsePipelineStageNoPaging)
    assert len(listed.results) == 4
    assert stages_api.get_by_id("deals", created.id, stage.id).label == "In Behandlung!"

    # a deal can now use the new stage, and the stage files it under the new pipeline
    from hubspot.crm.deals import SimplePublicObjectInputForCreate

    deal = client.crm.deals.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"dealstage": stage.id})
    )
    assert deal.properties["pipeline"] == created.id
    replaced = api.replace(
        "deals",
        created.id,
        PipelineInput(label="Pfad", display_order=1, stages=[_stage("Termin gebucht", 0, "0.2")]),
    )
    assert replaced.stages[0].id == created.stages[0].id  # kept by label


def test_stage_validation(emu: HubSpotEmulator, client: HubSpot) -> None:
    api = client.crm.pipelines.pipelines_api
    no_probability = PipelineInput(
        label="P", display_order=1, stages=[PipelineStageInput(label="x", display_order=0, metadata={})]
    )
    error = api_error(api.create, "deals", no_probability)
    assert error.status == 400
    assert json.loads(error.body)["category"] == "VALIDATION_ERROR"
    assert api_error(api.get_by_id, "deals", "123").status == 404
    assert (
        api_error(client.crm.pipelines.pipeline_stages_api.get_by_id, "deals", "default", "nope").status
        == 404
    )
    assert api_error(api.archive, "deals", "default").status == 400
