"""Portal setup: property groups, custom properties and the deal pipeline, idempotent and safe every run.

Every step reads first and writes only what is missing or different, so a set-up portal costs
seven read calls and no write. Existing definitions are never deleted or retyped; a unique key that
exists without `hasUniqueValue` is an error (HubSpot cannot change that flag later, and upserts
need it), other type differences are reported as warnings.

The pipeline is the one pinned by id in the config, else the one with the configured label, else a
new one. Its stages are matched by pinned id or label; missing ones are created, and probability
and closed flag are corrected when they drift.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from biss_pipeline.domain.hubspot.api import HubSpotApi, HubSpotApiError, PipelineInfo, StageInfo
from biss_pipeline.domain.hubspot.model import (
    APPOINTMENT_PROPERTIES,
    APPOINTMENTS,
    CONTACT_PROPERTIES,
    CONTACTS,
    DEAL_PROPERTIES,
    DEALS,
    PROPERTY_GROUP,
    PROPERTY_GROUP_LABEL,
    PipelineSpec,
    PropertyDef,
    StageSpec,
    SyncMapping,
    revenue_properties,
)

logger = logging.getLogger(__name__)


class PortalSetupError(RuntimeError):
    """The portal cannot be made fit for the sync without a person (wrong definition, pinned id gone)."""


@dataclass(frozen=True)
class PortalSpec:
    pipeline: PipelineSpec
    properties: Mapping[str, tuple[PropertyDef, ...]]  # api object type → definitions


def portal_spec(
    mapping: SyncMapping, buckets: Iterable[str] = (), categories: Iterable[str] = ()
) -> PortalSpec:
    """The portal the sync needs; `buckets`/`categories` add what the warehouse has beyond the config."""
    revenue = revenue_properties(
        [*mapping.revenue_buckets, *buckets], [*mapping.treatment_categories, *categories]
    )
    return PortalSpec(
        pipeline=mapping.pipeline,
        properties={
            CONTACTS.api_type: CONTACT_PROPERTIES,
            DEALS.api_type: DEAL_PROPERTIES + revenue,
            APPOINTMENTS.api_type: APPOINTMENT_PROPERTIES,
        },
    )


@dataclass
class PortalState:
    pipeline_id: str
    stage_ids: dict[str, str]  # computed stage → HubSpot stage id
    dry_run: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)  # dry run: what a real run would create or change
    warnings: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "stage_ids": dict(self.stage_ids),
            "created": list(self.created),
            "updated": list(self.updated),
            "planned": list(self.planned),
            "warnings": list(self.warnings),
        }


def stage_metadata(stage: StageSpec) -> dict[str, str]:
    return {"probability": str(float(stage.probability)), "isClosed": "true" if stage.is_closed else "false"}


def _metadata_differs(existing: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    try:
        probability_differs = (
            abs(float(existing.get("probability", "nan")) - float(wanted["probability"])) > 1e-9
        )
    except ValueError:
        probability_differs = True
    closed_differs = str(existing.get("isClosed", "false")).lower() != wanted["isClosed"]
    return probability_differs or closed_differs


def ensure_portal(client: HubSpotApi, spec: PortalSpec, *, dry_run: bool = False) -> PortalState:
    state = PortalState(pipeline_id="", stage_ids={}, dry_run=dry_run)
    for object_type, definitions in spec.properties.items():
        _ensure_properties(client, object_type, definitions, state)
    _ensure_pipeline(client, spec.pipeline, state)
    if state.created or state.updated:
        logger.info("HubSpot portal setup: created %s, updated %s", state.created, state.updated)
    for warning in state.warnings:
        logger.warning("HubSpot portal setup: %s", warning)
    return state


def _note(state: PortalState, what: str, *, update: bool = False) -> None:
    if state.dry_run:
        state.planned.append(("update " if update else "create ") + what)
    elif update:
        state.updated.append(what)
    else:
        state.created.append(what)


def _ensure_properties(
    client: HubSpotApi, object_type: str, definitions: tuple[PropertyDef, ...], state: PortalState
) -> None:
    groups = client.list_property_groups(object_type)
    if PROPERTY_GROUP not in groups:
        if not state.dry_run:
            try:
                client.create_property_group(object_type, PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
            except HubSpotApiError as exc:
                if exc.status != 409:  # 409: created meanwhile (or by a lost response's retry)
                    raise
        _note(state, f"group {object_type}.{PROPERTY_GROUP}")
    existing = client.list_properties(object_type)
    missing: list[PropertyDef] = []
    for definition in definitions:
        current = existing.get(definition.name)
        if current is None:
            missing.append(definition)
            continue
        if definition.unique and not current.unique:
            raise PortalSetupError(
                f"{object_type}.{definition.name} exists without unique values; the sync upserts on it. "
                "HubSpot cannot make an existing property unique: archive it and re-run the setup."
            )
        if current.type != definition.type:
            state.warnings.append(
                f"{object_type}.{definition.name} has type {current.type}, expected {definition.type}"
            )
    if not missing:
        return
    if not state.dry_run:
        for error in client.create_properties(object_type, missing):
            if error.status != 409 and error.category != "OBJECT_ALREADY_EXISTS":
                raise PortalSetupError(f"creating {object_type} properties failed: {error.summary}")
    for definition in missing:
        _note(state, f"property {object_type}.{definition.name}")


def _find_stage(pipeline: PipelineInfo, spec: StageSpec) -> StageInfo | None:
    for stage in pipeline.stages:
        if (spec.hubspot_id and stage.id == spec.hubspot_id) or (
            not spec.hubspot_id and stage.label == spec.label
        ):
            return stage
    return None


def _ensure_pipeline(client: HubSpotApi, spec: PipelineSpec, state: PortalState) -> None:
    pipelines = client.list_pipelines()
    if spec.pipeline_id:
        pipeline = next((p for p in pipelines if p.id == spec.pipeline_id), None)
        if pipeline is None:
            raise PortalSetupError(f"deal pipeline {spec.pipeline_id} (pinned in the config) does not exist")
    else:
        pipeline = next((p for p in pipelines if p.label == spec.label), None)
    if pipeline is None:
        if state.dry_run:
            _note(state, f"pipeline {spec.label!r} with {len(spec.stages)} stages")
            state.pipeline_id = f"<new pipeline {spec.label}>"
            state.stage_ids = {s.stage: f"<new stage {s.label}>" for s in spec.stages}
            return
        try:
            pipeline = client.create_pipeline(
                spec.label,
                spec.display_order,
                [(s.label, order, stage_metadata(s)) for order, s in enumerate(spec.stages)],
            )
        except HubSpotApiError as exc:
            if exc.status != 409:
                raise
            # the label exists after all (another run, or our own write whose answer was lost)
            pipeline = next((p for p in client.list_pipelines() if p.label == spec.label), None)
            if pipeline is None:
                raise
        else:
            _note(state, f"pipeline {spec.label!r}")
    state.pipeline_id = pipeline.id
    for order, stage_spec in enumerate(spec.stages):
        wanted = stage_metadata(stage_spec)
        stage = _find_stage(pipeline, stage_spec)
        if stage is None:
            if stage_spec.hubspot_id:
                raise PortalSetupError(
                    f"stage {stage_spec.hubspot_id} for {stage_spec.stage} (pinned in the config) is not in "
                    f"pipeline {pipeline.id}"
                )
            _note(state, f"stage {stage_spec.label!r}")
            if state.dry_run:
                state.stage_ids[stage_spec.stage] = f"<new stage {stage_spec.label}>"
                continue
            stage = client.create_stage(pipeline.id, stage_spec.label, order, wanted)
        elif _metadata_differs(stage.metadata, wanted):
            _note(state, f"stage {stage_spec.label!r} metadata", update=True)
            if not state.dry_run:
                client.update_stage(pipeline.id, stage.id, wanted)
        state.stage_ids[stage_spec.stage] = stage.id
