"""How the emulated portal is set up, and how strictly it answers (docs/hubspot-emulator.md, "Strict
portal"). Every default is the strict answer; each switch exists because HubSpot's behaviour there is
either portal-specific (scopes, enabled objects, options) or not documented well enough to hard-code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from biss_emulators.hubspot import schema

# HubSpot's own example writes `SCHEDULED` (appointments guide, developers.hubspot.com, "Create
# appointments with property values"). The other values follow the same naming; which options a
# real portal lists is read from its property definition, never assumed (the pipeline's setup does).
DEFAULT_APPOINTMENT_STATUS_OPTIONS: tuple[str, ...] = (
    "SCHEDULED",
    "COMPLETED",
    "CANCELLED",
    "NO_SHOW",
    "RESCHEDULED",
)

# Scopes by object type: `crm.objects.<type>.read|write` for records and associations,
# `crm.schemas.<type>.read|write` for property definitions (HubSpot's scope naming; the appointments
# guide lists crm.objects.appointments.read / .write).
OBJECT_SCOPE_NAMES: Mapping[str, str] = {
    "contacts": "contacts",
    "deals": "deals",
    "appointments": "appointments",
}


def object_scope(object_type: str, access: str) -> str:
    return f"crm.objects.{OBJECT_SCOPE_NAMES[object_type]}.{access}"


def schema_scope(object_type: str, access: str) -> str:
    return f"crm.schemas.{OBJECT_SCOPE_NAMES[object_type]}.{access}"


ALL_SCOPES: frozenset[str] = frozenset(
    scope(name, access)
    for name in OBJECT_SCOPE_NAMES
    for scope in (object_scope, schema_scope)
    for access in ("read", "write")
)


@dataclass(frozen=True)
class PortalConfig:
    """What differs between portals, plus the switches for facts that are uncertain.

    - `appointments_enabled`: the appointments object (0-421) must be activated in the account
      (HubSpot's appointments guide). Disabled, every appointments route answers like an unknown
      object type (`disabled_appointments_status`).
    - `appointment_status_options`: the options of `hs_appointment_status`;
      `appointment_status_enumeration=False` gives the old lenient free-text property.
    - `association_type_ids`: overrides of the HUBSPOT_DEFINED type id per (from, to) pair, to emulate
      a portal whose ids differ from the ones HUBSPOT.md lists (`None`: the pair has no type). Both
      directions of a pair must be given together.
    - `scopes`: per token, the scopes granted (`None`: every scope); a token not listed gets all.
    - `association_read_page_size`: targets per from-object in one v4 batch-read answer before
      `paging.next.after` is set.
    - `reject_hs_object_id_id_property`: `batch/read` with `idProperty: "hs_object_id"` is a 400.
    - `require_upsert_properties`: an upsert input without `properties` is a 400.
    - `probability_step`: deal stage probabilities must be multiples of it (`None`: any 0..1).
    - `token_info_available`: the private-app token-info route answers (with the token's scopes);
      whether Service Keys have an equivalent is not documented.
    """

    appointments_enabled: bool = True
    disabled_appointments_status: int = 400
    appointment_status_enumeration: bool = True
    appointment_status_options: tuple[str, ...] = DEFAULT_APPOINTMENT_STATUS_OPTIONS
    association_type_ids: Mapping[tuple[str, str], int | None] = field(default_factory=dict)
    scopes: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    association_read_page_size: int = 500
    reject_hs_object_id_id_property: bool = True
    require_upsert_properties: bool = True
    probability_step: float | None = 0.1
    token_info_available: bool = True

    @classmethod
    def of(cls, value: PortalConfig | Mapping[str, Any] | None) -> PortalConfig:
        if value is None:
            return cls()
        if isinstance(value, PortalConfig):
            return value
        data = dict(value)
        if "appointment_status_options" in data:
            data["appointment_status_options"] = tuple(data["appointment_status_options"])
        if "scopes" in data:
            data["scopes"] = {
                token: None if granted is None else frozenset(granted)
                for token, granted in data["scopes"].items()
            }
        return cls(**data)

    def with_changes(self, **changes: Any) -> PortalConfig:
        return replace(self, **changes)

    def association_types(self) -> dict[tuple[str, str], int]:
        """(from, to) → the HUBSPOT_DEFINED unlabeled type id on this portal."""
        types = dict(schema.DEFAULT_ASSOCIATION_TYPES)
        for pair, type_id in self.association_type_ids.items():
            if type_id is None:
                types.pop(pair, None)  # a portal without that association type
            else:
                types[pair] = type_id
        return types

    def granted(self, token: str | None) -> frozenset[str]:
        if token is None or token not in self.scopes:
            return ALL_SCOPES
        granted = self.scopes[token]
        return ALL_SCOPES if granted is None else granted


def without(scopes: Iterable[str], *removed: str) -> frozenset[str]:
    return frozenset(scopes) - set(removed)
