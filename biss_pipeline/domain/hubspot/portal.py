"""Portal setup: readiness, property groups, custom properties and the deal pipeline, idempotent and
safe every run.

Readiness (SPEC §8) is read from the portal, never assumed, before anything is written:

- the token's scopes (private-app token info; where the portal cannot say, every read below reports a
  403 MISSING_SCOPES with the scopes it names);
- whether the appointments object (0-421) is enabled;
- the `hs_appointment_status` definition: an enumeration whose options contain every value of the
  mapping's `appointment_statuses` tab;
- the association type ids, from `GET /crm/v4/associations/{from}/{to}/labels` (the unlabeled
  HUBSPOT_DEFINED type of each synced pair). The sync writes with these ids.

Every problem found goes into one `PortalSetupError` saying what to enable or change;
`biss-pipeline hubspot doctor` prints the same report without writing.

Every step reads first and writes only what is missing or different, so a set-up portal costs
twelve read calls (seven for the definitions, five for readiness) and no write. Existing
definitions are never deleted or retyped; a unique key that exists without `hasUniqueValue` is an
error (HubSpot cannot change that flag later, and upserts need it), other type differences are
reported as warnings.

The pipeline is the one pinned by id in the config, else the one with the configured label, else a
new one. Its stages are matched by pinned id or label; missing ones are created, and probability
and closed flag are corrected when they drift.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from biss_pipeline.domain.hubspot.api import (
    HubSpotApi,
    HubSpotApiError,
    HubSpotError,
    PipelineInfo,
    PropertyInfo,
    StageInfo,
)
from biss_pipeline.domain.hubspot.model import (
    APPOINTMENT_PROPERTIES,
    APPOINTMENT_STATUS_PROPERTY,
    APPOINTMENTS,
    ASSOCIATION_KINDS,
    CONTACT_PROPERTIES,
    CONTACTS,
    DEAL_PROPERTIES,
    DEALS,
    PROPERTY_GROUP,
    PROPERTY_GROUP_LABEL,
    AssociationKind,
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
    appointment_statuses: Mapping[str, str] = field(default_factory=dict)  # Ivoris → HubSpot option


# What the sync calls need (HubSpot's scope names: records and associations `crm.objects.*`,
# property definitions `crm.schemas.*`; appointments per HubSpot's appointments guide).
REQUIRED_SCOPES: tuple[str, ...] = tuple(
    f"crm.{family}.{name}.{access}"
    for family in ("objects", "schemas")
    for name in ("contacts", "deals", "appointments")
    for access in ("read", "write")
)


@dataclass(frozen=True)
class ReadinessCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # what a person has to enable or change when not ok


@dataclass
class Readiness:
    """What the portal offers the sync, read without writing."""

    checks: list[ReadinessCheck] = field(default_factory=list)
    association_type_ids: dict[str, int] = field(default_factory=dict)  # AssociationKind.name → id
    status_options: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[ReadinessCheck]:
        return [check for check in self.checks if not check.ok]

    def add(self, name: str, ok: bool, detail: str, fix: str = "") -> None:
        self.checks.append(ReadinessCheck(name, ok, detail, "" if ok else fix))

    def report(self) -> str:
        lines = []
        for check in self.checks:
            lines.append(f"[{'ok' if check.ok else 'PROBLEM'}] {check.name}: {check.detail}")
            if check.fix:
                lines.append(f"        fix: {check.fix}")
        lines.append("ready for the sync" if self.ok else f"NOT READY: {len(self.problems)} problem(s)")
        return "\n".join(lines)

    def error_message(self) -> str:
        return "HubSpot portal is not ready for the sync: " + "; ".join(
            f"{check.name}: {check.detail} (fix: {check.fix})" for check in self.problems
        )


def _scope_names(exc: HubSpotError) -> str:
    scopes = exc.info.context.get("requiredGranularScopes") or ()
    return ", ".join(scopes) if scopes else exc.info.summary


def _read_problem(readiness: Readiness, name: str, exc: HubSpotError) -> None:
    """A refused read is a finding of the report; anything else (auth, outage, rate limit) means the
    portal cannot be judged now and is raised as it is."""
    if exc.status != 403:
        raise exc
    readiness.add(name, False, f"the token may not read this ({_scope_names(exc)})",
                  f"grant the scopes {_scope_names(exc)} to the private app (or service key) "
                  "and use its token")


def check_readiness(client: HubSpotApi, spec: PortalSpec) -> Readiness:
    """Read the portal's scopes, the appointments object, `hs_appointment_status` and the association
    type ids, and judge them against what the sync needs. Writes nothing."""
    readiness = Readiness()
    try:
        granted = client.token_scopes()
    except HubSpotError as exc:
        granted = None
        _read_problem(readiness, "token scopes", exc)
    if granted is not None:
        missing = [scope for scope in REQUIRED_SCOPES if scope not in granted]
        readiness.add(
            "token scopes",
            not missing,
            (f"missing {', '.join(missing)}" if missing
             else f"all {len(REQUIRED_SCOPES)} needed scopes granted"),
            f"add the scopes {', '.join(missing)} to the private app (Settings → Integrations → Private "
            "apps → Scopes) or service key, then use its token",
        )
    _check_appointments(client, spec, readiness)
    _check_association_ids(client, readiness)
    return readiness


def _check_appointments(client: HubSpotApi, spec: PortalSpec, readiness: Readiness) -> None:
    try:
        properties: dict[str, PropertyInfo] = client.list_properties(APPOINTMENTS.api_type)
    except HubSpotError as exc:
        if exc.status in (400, 404):
            readiness.add("appointments object", False,
                          f"the appointments object (0-421) is not enabled (HubSpot answered {exc.status})",
                          "activate the Appointments object in HubSpot (Settings → Data Management → "
                          "Objects / data model builder), then run the setup again")
        else:
            _read_problem(readiness, "appointments object", exc)
        readiness.add(APPOINTMENT_STATUS_PROPERTY, False, "not readable while the appointments object is "
                      "not available", "enable the appointments object first")
        return
    readiness.add("appointments object", True, "enabled (0-421)")
    status = properties.get(APPOINTMENT_STATUS_PROPERTY)
    if status is None:
        readiness.add(APPOINTMENT_STATUS_PROPERTY, False, "the property does not exist on appointments",
                      "HubSpot defines it with the appointments object; check that the object is the "
                      "standard one (0-421)")
        return
    readiness.status_options = status.options
    mapped = sorted(set(spec.appointment_statuses.values()))
    if status.type != "enumeration":
        readiness.add(APPOINTMENT_STATUS_PROPERTY, False,
                      f"type {status.type}, expected an enumeration with options",
                      "check the portal: the sync writes the options named in the mapping tab "
                      "appointment_statuses")
        return
    unknown = [value for value in mapped if value not in status.options]
    readiness.add(
        APPOINTMENT_STATUS_PROPERTY,
        not unknown,
        (f"mapped value(s) {', '.join(unknown)} not among the options {', '.join(status.options)}"
         if unknown else f"every mapped value ({', '.join(mapped)}) is an option"),
        "change the column hubspot_status of the mapping tab appointment_statuses to options the "
        f"portal lists ({', '.join(status.options)})",
    )


def _check_association_ids(client: HubSpotApi, readiness: Readiness) -> None:
    for kind in ASSOCIATION_KINDS:
        name = f"association {kind.source.name}→{kind.target.name}"
        try:
            labels = client.association_labels(kind.source.api_type, kind.target.api_type)
        except HubSpotError as exc:
            if exc.status in (400, 404) and APPOINTMENTS in (kind.source, kind.target):
                readiness.add(name, False, "not readable: the appointments object is not enabled",
                              "enable the appointments object first")
            else:
                _read_problem(readiness, name, exc)
            continue
        # the unlabeled HubSpot-defined type is the one a plain association uses
        defaults = sorted(label.type_id for label in labels
                          if label.category == "HUBSPOT_DEFINED" and not label.label)
        if not defaults:
            readiness.add(name, False, "the portal defines no unlabeled HUBSPOT_DEFINED association type",
                          "check the association settings between these objects in HubSpot")
            continue
        readiness.association_type_ids[kind.name] = defaults[0]
        readiness.add(name, True, f"type id {defaults[0]}")


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
        appointment_statuses=dict(mapping.appointment_statuses),
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
    association_type_ids: dict[str, int] = field(default_factory=dict)  # AssociationKind.name → id
    readiness: Readiness | None = None

    def association(self, kind: AssociationKind) -> AssociationKind:
        """`kind` with the type id this portal uses (read by the setup, never assumed)."""
        type_id = self.association_type_ids.get(kind.name)
        if not type_id:
            raise PortalSetupError(f"no association type id read for {kind.name}")
        return kind.with_type_id(type_id)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "association_type_ids": dict(self.association_type_ids),
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
    """Check readiness (raises `PortalSetupError` listing every problem), then create or correct what
    the sync needs. A dry run reads only and plans."""
    readiness = check_readiness(client, spec)
    if not readiness.ok:
        raise PortalSetupError(readiness.error_message())
    state = PortalState(pipeline_id="", stage_ids={}, dry_run=dry_run,
                        association_type_ids=dict(readiness.association_type_ids), readiness=readiness)
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


def doctor_report(client: HubSpotApi, spec: PortalSpec) -> tuple[str, bool]:
    """`biss-pipeline hubspot doctor`: the readiness report and, for a ready portal, what the first
    setup would create or change (a dry run: reads only). Returns the text and whether it is ready."""
    readiness = check_readiness(client, spec)
    lines = ["HubSpot portal readiness", readiness.report()]
    if not readiness.ok:
        return "\n".join(lines), False
    try:
        plan = ensure_portal(client, spec, dry_run=True)
    except PortalSetupError as exc:  # a definition only a person can fix (e.g. a non-unique key)
        lines.append(f"[PROBLEM] setup: {exc}")
        return "\n".join(lines), False
    planned = ", ".join(plan.planned) if plan.planned else "nothing"
    lines.append(f"setup would create or change: {planned}")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines), True
