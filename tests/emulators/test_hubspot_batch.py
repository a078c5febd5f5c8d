"""Batch endpoints (create / read / update / upsert / archive) and unique values, through the SDK."""

from __future__ import annotations

import json

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
    BatchResponseSimplePublicUpsertObject,
    BatchResponseSimplePublicUpsertObjectWithErrors,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
    StandardError,
)
from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputUpsert as ObjectsUpsertBatch
from hubspot.crm.objects import BatchResponseSimplePublicUpsertObject as ObjectsUpsertResponse
from hubspot.crm.objects import SimplePublicObjectBatchInputUpsert as ObjectsUpsertInput

from biss_emulators.hubspot import HubSpotEmulator
from tests.emulators.conftest_hubspot import add_unique_property, api_error, client, emu, hubspot_server

__all__ = ["client", "emu", "hubspot_server"]


def _creates(*props: dict[str, str]) -> BatchInputSimplePublicObjectBatchInputForCreate:
    return BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[SimplePublicObjectBatchInputForCreate(properties=p) for p in props]
    )


def _upserts(
    *items: tuple[str, dict[str, str]], id_property: str = "ivoris_patient_id"
) -> BatchInputSimplePublicObjectBatchInputUpsert:
    return BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(id=key, id_property=id_property, properties=p)
            for key, p in items
        ]
    )


@pytest.fixture
def patients(client: HubSpot) -> HubSpot:
    add_unique_property(client, "contacts", "ivoris_patient_id")
    return client


def test_batch_create_returns_201_and_writes_every_input(emu: HubSpotEmulator, client: HubSpot) -> None:
    result = client.crm.contacts.batch_api.create(
        _creates({"email": "a@x.de"}, {"email": "b@x.de"}, {"firstname": "c"})
    )
    assert isinstance(result, BatchResponseSimplePublicObject)  # the SDK maps only 201 to this model
    assert result.status == "COMPLETE"
    assert result.started_at <= result.completed_at
    assert len(result.results) == 3
    assert len(emu.objects("contacts")) == 3
    entry = emu.request_log[-1]
    assert (entry.method, entry.path, entry.status, entry.batch_size) == (
        "POST",
        "/crm/v3/objects/contacts/batch/create",
        201,
        3,
    )


def test_batch_create_over_an_existing_email_fails_the_whole_batch(
    emu: HubSpotEmulator, client: HubSpot
) -> None:
    existing = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "fam@x.de"})
    )
    error = api_error(
        client.crm.contacts.batch_api.create, _creates({"email": "new@x.de"}, {"email": "FAM@x.de"})
    )
    assert error.status == 409
    body = json.loads(error.body)
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {existing.id}"
    assert len(emu.objects("contacts")) == 1  # nothing of the batch was written


def test_single_create_with_existing_email_is_409(emu: HubSpotEmulator, client: HubSpot) -> None:
    first = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "x@y.de"})
    )
    error = api_error(
        client.crm.contacts.basic_api.create, SimplePublicObjectInputForCreate(properties={"email": "x@y.de"})
    )
    assert error.status == 409
    assert json.loads(error.body)["message"] == f"Contact already exists. Existing ID: {first.id}"
    other = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "o@y.de"})
    )
    error = api_error(
        client.crm.contacts.basic_api.update,
        other.id,
        SimplePublicObjectInput(properties={"email": "x@y.de"}),
    )
    assert error.status == 409


def test_per_input_conflicts_answer_207(emu: HubSpotEmulator, patients: HubSpot) -> None:
    emu.batch_conflicts = "per_input"
    patients.crm.contacts.batch_api.upsert(_upserts(("MB_1", {"email": "fam@x.de"})))
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(
                id="MB_2",
                id_property="ivoris_patient_id",
                properties={"email": "fam@x.de"},
                object_write_trace_id="row-2",
            ),
            SimplePublicObjectBatchInputUpsert(
                id="MB_3",
                id_property="ivoris_patient_id",
                properties={"email": "other@x.de"},
                object_write_trace_id="row-3",
            ),
        ]
    )
    result = patients.crm.contacts.batch_api.upsert(batch)
    assert isinstance(result, BatchResponseSimplePublicUpsertObjectWithErrors)
    assert result.num_errors == 1
    assert isinstance(result.errors[0], StandardError)
    assert result.errors[0].category == "CONFLICT"
    assert result.errors[0].context["objectWriteTraceId"] == ["row-2"]
    assert [r.object_write_trace_id for r in result.results] == ["row-3"]
    assert sorted(o["properties"]["ivoris_patient_id"] for o in emu.objects("contacts")) == ["MB_1", "MB_3"]
    assert emu.request_log[-1].status == 207


def test_same_email_in_one_batch_conflicts(emu: HubSpotEmulator, patients: HubSpot) -> None:
    error = api_error(
        patients.crm.contacts.batch_api.upsert,
        _upserts(("MB_1", {"email": "fam@x.de"}), ("MB_2", {"email": "fam@x.de"})),
    )
    assert error.status == 409
    assert emu.objects("contacts") == []


def test_upsert_creates_then_updates_with_new_flag(emu: HubSpotEmulator, patients: HubSpot) -> None:
    first = patients.crm.contacts.batch_api.upsert(
        _upserts(("MB_1", {"firstname": "A"}), ("MB_2", {"firstname": "B"}))
    )
    assert isinstance(first, BatchResponseSimplePublicUpsertObject)
    assert [r.new for r in first.results] == [True, True]
    second = patients.crm.contacts.batch_api.upsert(_upserts(("MB_1", {"firstname": "A2"}), ("MB_3", {})))
    assert {r.properties["ivoris_patient_id"]: r.new for r in second.results} == {"MB_1": False, "MB_3": True}
    assert second.results[0].id == first.results[0].id
    contacts = {o["properties"]["ivoris_patient_id"]: o for o in emu.objects("contacts")}
    assert contacts["MB_1"]["properties"]["firstname"] == "A2"
    assert len(contacts) == 3


def test_upsert_by_email_and_via_the_generic_objects_api(emu: HubSpotEmulator, client: HubSpot) -> None:
    result = client.crm.contacts.batch_api.upsert(
        _upserts(("Mixed@Case.de", {"firstname": "M"}), id_property="email")
    )
    assert result.results[0].new is True
    again = client.crm.contacts.batch_api.upsert(
        _upserts(("mixed@case.de", {"lastname": "C"}), id_property="email")
    )
    assert again.results[0].new is False
    assert again.results[0].id == result.results[0].id

    add_unique_property(client, "0-421", "ivoris_appointment_id")
    appt = client.crm.objects.batch_api.upsert(
        "0-421",
        ObjectsUpsertBatch(
            inputs=[
                ObjectsUpsertInput(
                    id="MB_77",
                    id_property="ivoris_appointment_id",
                    properties={"hs_appointment_name": "Erstberatung"},
                )
            ]
        ),
    )
    assert isinstance(appt, ObjectsUpsertResponse)
    assert appt.results[0].new is True
    assert emu.objects("appointments")[0]["properties"]["ivoris_appointment_id"] == "MB_77"


def test_upsert_rejects_duplicate_ids_and_non_unique_id_property(
    emu: HubSpotEmulator, patients: HubSpot
) -> None:
    error = api_error(
        patients.crm.contacts.batch_api.upsert, _upserts(("MB_1", {}), ("MB_1", {"firstname": "x"}))
    )
    assert error.status == 400
    assert "Duplicate IDs" in json.loads(error.body)["message"]
    error = api_error(patients.crm.contacts.batch_api.upsert, _upserts(("x", {}), id_property="firstname"))
    assert error.status == 400
    assert emu.objects("contacts") == []


def test_batches_are_limited_to_100_inputs(emu: HubSpotEmulator, client: HubSpot) -> None:
    error = api_error(
        client.crm.contacts.batch_api.create, _creates(*({"firstname": str(i)} for i in range(101)))
    )
    assert error.status == 400
    assert json.loads(error.body)["category"] == "VALIDATION_ERROR"
    assert emu.request_log[-1].batch_size == 101
    result = client.crm.contacts.batch_api.create(_creates(*({"firstname": str(i)} for i in range(100))))
    assert len(result.results) == 100


def test_batch_read_200_and_207(emu: HubSpotEmulator, patients: HubSpot) -> None:
    created = patients.crm.contacts.batch_api.upsert(_upserts(("MB_1", {"firstname": "A"}), ("MB_2", {})))
    ids = [r.id for r in created.results]
    read = patients.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids],
            properties=["firstname"],
            properties_with_history=[],
        )
    )
    assert isinstance(read, BatchResponseSimplePublicObject)
    assert {r.id for r in read.results} == set(ids)
    assert set(read.results[0].properties) >= {"firstname", "hs_object_id"}

    partial = patients.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=ids[0]), SimplePublicObjectId(id="424242")],
            properties=[],
            properties_with_history=[],
        )
    )
    assert isinstance(partial, BatchResponseSimplePublicObjectWithErrors)
    assert partial.errors[0].category == "OBJECT_NOT_FOUND"
    assert partial.errors[0].context["ids"] == ["424242"]

    by_key = patients.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="MB_2")],
            id_property="ivoris_patient_id",
            properties=[],
            properties_with_history=[],
        )
    )
    assert by_key.results[0].id == ids[1]


def test_batch_update_200_and_207(emu: HubSpotEmulator, client: HubSpot) -> None:
    created = client.crm.contacts.batch_api.create(_creates({"firstname": "a"}, {"firstname": "b"}))
    ids = [r.id for r in created.results]
    updated = client.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=i, properties={"lastname": "L"}) for i in ids]
        )
    )
    assert isinstance(updated, BatchResponseSimplePublicObject)
    assert all(r.properties["lastname"] == "L" for r in updated.results)

    partial = client.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=ids[0], properties={"lastname": "M"}),
                SimplePublicObjectBatchInput(
                    id="999999", properties={"lastname": "M"}, object_write_trace_id="t9"
                ),
            ]
        )
    )
    assert isinstance(partial, BatchResponseSimplePublicObjectWithErrors)
    assert partial.num_errors == 1
    assert partial.errors[0].context["ids"] == ["999999"]
    assert [r.id for r in partial.results] == [ids[0]]
    error = api_error(
        client.crm.contacts.batch_api.update,
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=ids[0], properties={"bogus": "1"})]
        ),
    )
    assert error.status == 400


def test_batch_archive(emu: HubSpotEmulator, client: HubSpot) -> None:
    created = client.crm.contacts.batch_api.create(_creates({"firstname": "a"}, {"firstname": "b"}))
    result = client.crm.contacts.batch_api.archive(
        BatchInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=created.results[0].id), SimplePublicObjectId(id="31337")]
        )
    )
    assert result is None
    assert emu.request_log[-1].status == 204
    assert [o["id"] for o in emu.objects("contacts")] == [created.results[1].id]


@pytest.mark.parametrize("write_path", ["create", "update", "batch_create", "batch_update", "upsert"])
def test_unique_property_enforced_on_every_write_path(
    emu: HubSpotEmulator, patients: HubSpot, write_path: str
) -> None:
    taken = patients.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"ivoris_patient_id": "MB_1"})
    )
    other = patients.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"ivoris_patient_id": "MB_2"})
    )
    api = patients.crm.contacts
    calls = {
        "create": lambda: api.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"ivoris_patient_id": "MB_1"})
        ),
        "update": lambda: api.basic_api.update(
            other.id, SimplePublicObjectInput(properties={"ivoris_patient_id": "MB_1"})
        ),
        "batch_create": lambda: api.batch_api.create(_creates({"ivoris_patient_id": "MB_1"})),
        "batch_update": lambda: api.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[SimplePublicObjectBatchInput(id=other.id, properties={"ivoris_patient_id": "MB_1"})]
            )
        ),
        # an upsert keyed by email that tries to take another contact's patient id
        "upsert": lambda: api.batch_api.upsert(
            _upserts(("n@x.de", {"ivoris_patient_id": "MB_1"}), id_property="email")
        ),
    }
    error = api_error(calls[write_path])
    assert error.status == 409
    body = json.loads(error.body)
    assert body["category"] == "CONFLICT"
    assert body["message"].endswith(f"Existing ID: {taken.id}")
    assert sorted(o["properties"].get("ivoris_patient_id") for o in emu.objects("contacts")) == [
        "MB_1",
        "MB_2",
    ]
