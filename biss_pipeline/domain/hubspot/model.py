"""What the HubSpot sync writes: object kinds, the property catalog, the deal pipeline spec and the
mapping parameters the sync takes (pure data, no network, no Dagster).

Naming: every custom property is prefixed `biss_` and lives in the property group `biss_ivoris` of
its object type, except the three unique keys, which keep the SPEC's names (`ivoris_patient_id`,
`ivoris_deal_key`, `ivoris_appointment_id`). HubSpot property names allow lower-case letters, digits
and underscores only, so bucket and category names are slugged (`Füllung` → `fuellung`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from biss_pipeline.domain.deals.entry_rules import TREATMENT_CATEGORIES
from biss_pipeline.domain.deals.rules import STAGE_LABELS, Stage

if TYPE_CHECKING:
    from biss_pipeline.domain.mapping.config import MappingConfig

PROPERTY_GROUP = "biss_ivoris"
PROPERTY_GROUP_LABEL = "BISS (Ivoris)"


@dataclass(frozen=True)
class ObjectKind:
    """One synced HubSpot object type. `name` is the ledger's object_type, `api_type` goes in URLs."""

    name: str
    api_type: str
    id_property: str


CONTACTS = ObjectKind("contacts", "contacts", "ivoris_patient_id")
DEALS = ObjectKind("deals", "deals", "ivoris_deal_key")
# Appointments are addressed by type id: HubSpot accepts the name only where the object is enabled.
APPOINTMENTS = ObjectKind("appointments", "0-421", "ivoris_appointment_id")
OBJECT_KINDS: tuple[ObjectKind, ...] = (CONTACTS, DEALS, APPOINTMENTS)


@dataclass(frozen=True)
class AssociationKind:
    """A synced association pair, written from `source` to `target` with the portal's unlabeled
    HUBSPOT_DEFINED type (HubSpot stores the inverse direction itself). `type_id` is not assumed: the
    portal setup reads it from the labels endpoint (`PortalState.association_type_ids`) and the sync
    writes with `with_type_id`; 0 means "not read yet"."""

    source: ObjectKind
    target: ObjectKind
    type_id: int = 0

    def with_type_id(self, type_id: int) -> AssociationKind:
        return AssociationKind(self.source, self.target, type_id)

    @property
    def name(self) -> str:
        """The ledger's object_type for this pair: `association:<from>:<to>`."""
        return f"association:{self.source.name}:{self.target.name}"


CONTACT_DEAL = AssociationKind(CONTACTS, DEALS)
DEAL_APPOINTMENT = AssociationKind(DEALS, APPOINTMENTS)
CONTACT_APPOINTMENT = AssociationKind(CONTACTS, APPOINTMENTS)
ASSOCIATION_KINDS: tuple[AssociationKind, ...] = (CONTACT_DEAL, DEAL_APPOINTMENT, CONTACT_APPOINTMENT)


# -- property catalog ---------------------------------------------------------------------------------

PropertyType = Literal["string", "number", "date", "datetime", "enumeration", "bool"]


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: PropertyType = "string"
    field_type: str = "text"
    unique: bool = False
    description: str = ""


def _text(name: str, label: str, description: str = "", unique: bool = False) -> PropertyDef:
    return PropertyDef(name, label, "string", "text", unique, description)


def _number(name: str, label: str, description: str = "") -> PropertyDef:
    return PropertyDef(name, label, "number", "number", False, description)


def _date(name: str, label: str, description: str = "") -> PropertyDef:
    return PropertyDef(name, label, "date", "date", False, description)


PRACTICE_PROPERTY = "biss_practice_id"
IVORIS_STATUS_PROPERTY = "biss_ivoris_status"
APPOINTMENT_STATUS_PROPERTY = "hs_appointment_status"

CONTACT_PROPERTIES: tuple[PropertyDef, ...] = (
    _text("ivoris_patient_id", "Ivoris-Patienten-ID", "Praxis-Präfix + Ivoris-Patienten-ID", unique=True),
    _text(PRACTICE_PROPERTY, "Praxis", "BISS-Praxis-ID"),
    _text("biss_insurance", "Versicherung", "GKV, PKV oder Selbstzahler (nur wenn freigegeben)"),
    _number("biss_num_deals", "Anzahl Behandlungsfälle"),
    _number("biss_num_open_deals", "Offene Behandlungsfälle"),
    _date("biss_last_appointment_date", "Letzter Termin"),
    _date("biss_next_appointment_date", "Nächster Termin"),
    _number("biss_lifetime_revenue", "Umsatz gesamt (EUR)"),
)

DEAL_PROPERTIES: tuple[PropertyDef, ...] = (
    _text(
        "ivoris_deal_key", "Ivoris-Behandlungsfall", "Praxis-Präfix + ID des eröffnenden Termins", unique=True
    ),
    _text(PRACTICE_PROPERTY, "Praxis", "BISS-Praxis-ID"),
    _date("biss_behandlungsstart", "Behandlungsstart"),
    _text("biss_treatment_category", "Behandlungskategorie"),
    _text("biss_lost_reason", "Verlustgrund"),
    _number("biss_num_appointments", "Anzahl Termine"),
    _date("biss_first_appointment_date", "Erster Termin"),
    _date("biss_last_appointment_date", "Letzter Termin"),
)

APPOINTMENT_PROPERTIES: tuple[PropertyDef, ...] = (
    _text("ivoris_appointment_id", "Ivoris-Termin-ID", "Praxis-Präfix + Ivoris-Termin-ID", unique=True),
    _text(PRACTICE_PROPERTY, "Praxis", "BISS-Praxis-ID"),
    _text("biss_appointment_type_key", "Terminart (Schlüssel)"),
    _text("biss_appointment_type", "Terminart"),
    _text("biss_chair_key", "Behandlungsstuhl (Schlüssel)"),
    _text("biss_chair", "Behandlungsstuhl"),
    # hs_appointment_status holds the portal's option (mapping tab `appointment_statuses`); the raw
    # Ivoris status is kept here, so nothing of Ivoris' finer distinction is lost in HubSpot
    _text(IVORIS_STATUS_PROPERTY, "Ivoris-Terminstatus", "Status des Termins in Ivoris (unverändert)"),
)

# Types of the HubSpot-defined properties the sync writes (for comparing values in dry-run diffs).
HUBSPOT_DEFINED_TYPES: Mapping[str, PropertyType] = MappingProxyType(
    {
        "firstname": "string",
        "lastname": "string",
        "email": "string",
        "phone": "string",
        "date_of_birth": "string",
        "dealname": "string",
        "dealstage": "enumeration",
        "pipeline": "enumeration",
        "amount": "number",
        "closedate": "datetime",
        "hs_appointment_name": "string",
        "hs_appointment_start": "datetime",
        "hs_appointment_end": "datetime",
        "hs_appointment_status": "enumeration",
    }
)

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "ae", "Ö": "oe", "Ü": "ue", "ß": "ss"})


def slug(text: str) -> str:
    """A HubSpot-safe property-name fragment: `Füllung` → `fuellung`, `A / B` → `a_b`."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_UMLAUTS)).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    if not cleaned:
        raise ValueError(f"cannot derive a property name from {text!r}")
    return cleaned


def bucket_property(bucket: str) -> str:
    return f"biss_revenue_bucket_{slug(bucket)}"


def category_property(category: str) -> str:
    return f"biss_revenue_category_{slug(category)}"


def revenue_properties(buckets: Iterable[str], categories: Iterable[str]) -> tuple[PropertyDef, ...]:
    defs = {bucket_property(b): _number(bucket_property(b), f"Umsatz {b} (EUR)") for b in buckets}
    defs.update(
        {category_property(c): _number(category_property(c), f"Umsatz {c} (EUR)") for c in categories}
    )
    return tuple(defs[name] for name in sorted(defs))


# -- contact field allowlist --------------------------------------------------------------------------

# HubSpot property → staging column. Only allowlisted entries ever leave the warehouse (SPEC §7).
CONTACT_FIELD_SOURCES: Mapping[str, str] = MappingProxyType(
    {
        "firstname": "first_name",
        "lastname": "last_name",
        "email": "email",
        "phone": "phone",
        "date_of_birth": "birth_date",
        "biss_insurance": "insurance",
    }
)
# The sheet may name a field by its staging column instead of its HubSpot property.
_CONTACT_FIELD_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "first_name": "firstname",
        "last_name": "lastname",
        "birth_date": "date_of_birth",
        "birthdate": "date_of_birth",
        "insurance": "biss_insurance",
    }
)
DEFAULT_ALLOWED_CONTACT_FIELDS: tuple[str, ...] = ("firstname", "lastname", "email", "phone")


def normalise_allowlist(fields: Iterable[str]) -> tuple[str, ...]:
    """HubSpot property names for an allowlist; an unknown name is an error rather than silently
    dropped, because a typo in the sheet would otherwise hide a field the practice expects."""
    result: list[str] = []
    for raw in fields:
        name = raw.strip().lower()
        if not name:
            continue
        name = _CONTACT_FIELD_ALIASES.get(name, name)
        if name not in CONTACT_FIELD_SOURCES:
            raise ValueError(
                f"contact field {raw!r} is not one the sync can send; known: {sorted(CONTACT_FIELD_SOURCES)}"
            )
        if name not in result:
            result.append(name)
    return tuple(result)


# -- deal pipeline ------------------------------------------------------------------------------------

StageOutcome = Literal["open", "won", "lost"]


STAGE_OUTCOMES: Mapping[Stage, StageOutcome] = MappingProxyType(
    {Stage.ABGESCHLOSSEN: "won", Stage.VERLOREN: "lost"})


@dataclass(frozen=True)
class StageSpec:
    """One computed stage and its HubSpot stage. `hubspot_id` pins an existing stage (config tab
    `stages`); without it the stage is found by label or created."""

    stage: str
    label: str
    probability: float
    outcome: StageOutcome = "open"
    hubspot_id: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"stage {self.stage}: probability must be within 0.0..1.0")

    @property
    def is_closed(self) -> bool:
        return self.outcome != "open"


@dataclass(frozen=True)
class PipelineSpec:
    label: str
    stages: tuple[StageSpec, ...]
    pipeline_id: str | None = None
    display_order: int = 1

    def __post_init__(self) -> None:
        names = [s.stage for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("pipeline stages must be unique per computed stage")
        labels = [s.label for s in self.stages]
        if len(set(labels)) != len(labels):
            raise ValueError("pipeline stage labels must be unique")
        missing = sorted({s.value for s in Stage} - set(names))
        if missing:
            raise ValueError(f"pipeline has no HubSpot stage for {missing}")

    def stage(self, name: str) -> StageSpec:
        for spec in self.stages:
            if spec.stage == name:
                return spec
        raise KeyError(name)


_DEFAULT_STAGE_SETTINGS: Mapping[str, tuple[float, StageOutcome]] = {
    Stage.TERMIN_GEBUCHT.value: (0.2, "open"),
    Stage.ERSTBERATUNG.value: (0.4, "open"),
    Stage.IN_BEHANDLUNG.value: (0.7, "open"),
    Stage.ABGESCHLOSSEN.value: (1.0, "won"),
    Stage.VERLOREN.value: (0.0, "lost"),
}


def default_pipeline_spec(label: str = "Behandlungspfad") -> PipelineSpec:
    return PipelineSpec(
        label=label,
        stages=tuple(
            StageSpec(stage.value, STAGE_LABELS[stage.value], *_DEFAULT_STAGE_SETTINGS[stage.value])
            for stage in Stage
        ),
    )


@dataclass(frozen=True)
class SyncMapping:
    """The parts of the mapping config the sync needs, as plain values (the caller wires the config).

    - `pipeline`: the deal pipeline and its stages.
    - `allowed_contact_fields`: HubSpot contact properties with personal data that may be sent.
    - `revenue_buckets` / `treatment_categories`: one deal property each; buckets or categories
      found in the warehouse but missing here get a property too.
    - `appointment_type_labels`: type_key → HubSpot label (sheet column); else the Ivoris name.
    - `appointment_statuses`: Ivoris status → the portal's `hs_appointment_status` option.
    """

    pipeline: PipelineSpec = field(default_factory=default_pipeline_spec)
    allowed_contact_fields: Sequence[str] = DEFAULT_ALLOWED_CONTACT_FIELDS
    revenue_buckets: Sequence[str] = ()
    treatment_categories: Sequence[str] = TREATMENT_CATEGORIES
    appointment_type_labels: Mapping[str, str] = field(default_factory=dict)
    deal_name_prefix: str = "Behandlung"
    # Ivoris status → hs_appointment_status option (tab `appointment_statuses`)
    appointment_statuses: Mapping[str, str] = field(default_factory=lambda: dict(_default_statuses()))

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_contact_fields", normalise_allowlist(self.allowed_contact_fields))

    @classmethod
    def from_mapping(cls, mapping: MappingConfig) -> SyncMapping:
        """What the sync takes from the mapping: pipeline and stages, the contact-field allowlist
        (SPEC §7), revenue buckets and appointment labels."""
        stages = tuple(
            StageSpec(row.stage.value, row.stage_label, float(row.probability),
                      STAGE_OUTCOMES.get(row.stage, "open"), row.stage_id)
            for row in mapping.stages)
        return cls(
            pipeline=PipelineSpec(mapping.pipeline_label, stages, mapping.pipeline_id),
            allowed_contact_fields=mapping.settings.hubspot_contact_fields,
            revenue_buckets=sorted({rule.revenue_bucket for rule in mapping.entry_rules if rule.billable}),
            treatment_categories=TREATMENT_CATEGORIES,
            appointment_type_labels={t.type_key: t.hubspot_label for t in mapping.appointment_types
                                     if t.hubspot_label},
            appointment_statuses=dict(mapping.appointment_statuses),
        )


def _default_statuses() -> Mapping[str, str]:
    from biss_pipeline.domain.mapping.config import DEFAULT_APPOINTMENT_STATUS_MAP

    return DEFAULT_APPOINTMENT_STATUS_MAP
