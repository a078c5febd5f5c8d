"""Portal setup: idempotent, safe every run, never duplicates a pipeline or stage."""

from __future__ import annotations

import pytest
from hubspot import HubSpot
from hubspot.crm.pipelines import PipelineStagePatchInput
from hubspot.crm.properties import PropertyCreate

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.hubspot import PortalSetupError, SyncMapping, ensure_portal, portal_spec
from biss_pipeline.domain.hubspot.model import PipelineSpec, StageSpec, default_pipeline_spec
from tests.sync.conftest import TOKEN, make_client
from tests.sync.seed import write_requests


def _sdk(emu: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=emu.base_url)


def _pipelines(emu: HubSpotEmulator, label: str) -> list[dict]:
    return [p for p in emu.state.pipelines["deals"].values() if p["label"] == label and not p.get("archived")]


def test_setup_creates_the_portal_once(emu: HubSpotEmulator) -> None:
    spec = portal_spec(SyncMapping(revenue_buckets=("goz", "bema")))
    first = ensure_portal(make_client(emu), spec)

    assert "pipeline 'Behandlungspfad'" in first.created
    for object_type, name in (
        ("contacts", "ivoris_patient_id"),
        ("deals", "ivoris_deal_key"),
        ("appointments", "ivoris_appointment_id"),
    ):
        prop = emu.state.properties[object_type][name]
        assert prop["hasUniqueValue"] and prop["groupName"] == "biss_ivoris"
    assert "biss_revenue_bucket_goz" in emu.state.properties["deals"]
    assert "biss_revenue_category_fuellung" in emu.state.properties["deals"]
    pipeline = _pipelines(emu, "Behandlungspfad")[0]
    stages = {s["label"]: s for s in pipeline["stages"]}
    assert list(stages) == ["Termin gebucht", "Erstberatung", "In Behandlung", "Abgeschlossen", "Verloren"]
    assert stages["Abgeschlossen"]["metadata"] == {"probability": "1.0", "isClosed": "true"}
    assert stages["Verloren"]["metadata"] == {"probability": "0.0", "isClosed": "true"}
    assert first.stage_ids == {
        "termin_gebucht": stages["Termin gebucht"]["id"],
        "erstberatung": stages["Erstberatung"]["id"],
        "in_behandlung": stages["In Behandlung"]["id"],
        "abgeschlossen": stages["Abgeschlossen"]["id"],
        "verloren": stages["Verloren"]["id"],
    }

    log_mark = len(emu.request_log)
    client = make_client(emu)
    second = ensure_portal(client, spec)

    assert (second.created, second.updated, second.warnings) == ([], [], [])
    assert write_requests(emu, log_mark) == []
    # groups and properties of three object types, the pipelines (7); readiness: token info,
    # appointment properties, three association label lists (5)
    assert client.stats.calls == 12
    assert (second.pipeline_id, second.stage_ids) == (first.pipeline_id, first.stage_ids)
    assert len(_pipelines(emu, "Behandlungspfad")) == 1


def test_missing_stages_are_added_and_drifted_metadata_corrected(emu: HubSpotEmulator) -> None:
    spec = portal_spec(SyncMapping())
    first = ensure_portal(make_client(emu), spec)
    sdk = _sdk(emu)
    sdk.crm.pipelines.pipeline_stages_api.archive("deals", first.pipeline_id, first.stage_ids["verloren"])
    sdk.crm.pipelines.pipeline_stages_api.update(
        "deals",
        first.pipeline_id,
        first.stage_ids["erstberatung"],
        PipelineStagePatchInput(metadata={"probability": "0.9", "isClosed": "false"}),
    )

    again = ensure_portal(make_client(emu), spec)

    assert again.created == ["stage 'Verloren'"]
    assert again.updated == ["stage 'Erstberatung' metadata"]
    assert again.stage_ids["erstberatung"] == first.stage_ids["erstberatung"]
    assert again.stage_ids["verloren"] != first.stage_ids["verloren"]
    stages = {s["label"]: s for s in _pipelines(emu, "Behandlungspfad")[0]["stages"] if not s.get("archived")}
    assert stages["Erstberatung"]["metadata"]["probability"] == "0.4"


def test_a_lost_pipeline_create_answer_makes_no_second_pipeline(emu: HubSpotEmulator) -> None:
    spec = portal_spec(SyncMapping())
    ensure_portal(make_client(emu), spec)
    existing = _pipelines(emu, "Behandlungspfad")[0]
    _sdk(emu).crm.pipelines.pipelines_api.archive("deals", existing["id"])
    emu.faults.lose_next_writes(1)  # the pipeline is created, the answer is a 502

    state = ensure_portal(make_client(emu), spec)

    assert len(_pipelines(emu, "Behandlungspfad")) == 1
    assert state.pipeline_id == _pipelines(emu, "Behandlungspfad")[0]["id"]
    assert [
        r.fault for r in emu.request_log if r.path == "/crm/v3/pipelines/deals" and r.method == "POST"
    ] == [None, "lost_response"]


def test_pinned_pipeline_and_stage_ids_are_used_not_created(emu: HubSpotEmulator) -> None:
    default = emu.state.pipelines["deals"]["default"]
    stage_ids = [s["id"] for s in default["stages"]]
    pinned = PipelineSpec(
        label="Sales Pipeline",
        pipeline_id="default",
        stages=tuple(
            StageSpec(s.stage, s.label, s.probability, s.outcome, stage_ids[i])
            for i, s in enumerate(default_pipeline_spec().stages)
        ),
    )
    spec = portal_spec(SyncMapping(pipeline=pinned))

    state = ensure_portal(make_client(emu), spec)

    assert state.pipeline_id == "default"
    assert list(state.stage_ids.values()) == stage_ids[:5]
    assert not any(c.startswith(("pipeline", "stage")) for c in state.created)

    broken = PipelineSpec(label="x", pipeline_id="nope", stages=pinned.stages)
    with pytest.raises(PortalSetupError, match="does not exist"):
        ensure_portal(make_client(emu), portal_spec(SyncMapping(pipeline=broken)))


def test_a_non_unique_key_property_is_refused(emu: HubSpotEmulator) -> None:
    _sdk(emu).crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="ivoris_patient_id",
            label="x",
            type="string",
            field_type="text",
            group_name="contactinformation",
        ),
    )

    with pytest.raises(PortalSetupError, match="without unique values"):
        ensure_portal(make_client(emu), portal_spec(SyncMapping()))


def test_dry_run_setup_only_reads(emu: HubSpotEmulator) -> None:
    state = ensure_portal(make_client(emu), portal_spec(SyncMapping()), dry_run=True)

    assert write_requests(emu) == []
    assert state.created == [] and "create pipeline 'Behandlungspfad' with 5 stages" in state.planned
    assert state.stage_ids["verloren"] == "<new stage Verloren>"
