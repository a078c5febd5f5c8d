"""What a fresh HubSpot portal already contains: object types, default properties, groups, the
default deal pipeline and the HubSpot-defined association types the project uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ObjectType:
    name: str  # plural name used in URLs, e.g. "contacts"
    type_id: str  # e.g. "0-1"
    singular: str  # used in v3 association type names ("deal_to_contact")
    upper: str  # HubSpot's enum name, used in some error messages ("CONTACT")
    created_property: str
    modified_property: str
    default_group: str
    default_properties: tuple[str, ...]  # returned when a read names no properties
    searchable: tuple[str, ...]  # properties a free-text search `query` looks at


CONTACTS = ObjectType(
    name="contacts",
    type_id="0-1",
    singular="contact",
    upper="CONTACT",
    created_property="createdate",
    modified_property="lastmodifieddate",
    default_group="contactinformation",
    default_properties=("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    searchable=("email", "firstname", "lastname", "phone", "mobilephone"),
)
DEALS = ObjectType(
    name="deals",
    type_id="0-3",
    singular="deal",
    upper="DEAL",
    created_property="createdate",
    modified_property="hs_lastmodifieddate",
    default_group="dealinformation",
    default_properties=(
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    searchable=("dealname",),
)
APPOINTMENTS = ObjectType(
    name="appointments",
    type_id="0-421",
    singular="appointment",
    upper="APPOINTMENT",
    created_property="hs_createdate",
    modified_property="hs_lastmodifieddate",
    default_group="appointmentinformation",
    default_properties=("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    searchable=("hs_appointment_name",),
)
OBJECT_TYPES: tuple[ObjectType, ...] = (CONTACTS, DEALS, APPOINTMENTS)

_ALIASES: dict[str, ObjectType] = {}
for _ot in OBJECT_TYPES:
    for _alias in (_ot.name, _ot.singular, _ot.type_id, _ot.upper):
        _ALIASES[_alias.lower()] = _ot


def resolve_object_type(ref: str) -> ObjectType | None:
    """HubSpot accepts the plural name, the singular, and the type id in URLs."""
    return _ALIASES.get(ref.strip().lower())


# (from, to) -> HUBSPOT_DEFINED default association type id; both directions are listed because
# HubSpot keeps every association in both directions, each with its own type id.
DEFAULT_ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("appointments", "contacts"): 906,
    ("contacts", "appointments"): 907,
    ("appointments", "deals"): 944,
    ("deals", "appointments"): 945,
}
ASSOCIATION_TYPE_PAIRS: dict[int, tuple[str, str]] = {v: k for k, v in DEFAULT_ASSOCIATION_TYPES.items()}


def inverse_association_type(type_id: int) -> int:
    from_name, to_name = ASSOCIATION_TYPE_PAIRS[type_id]
    return DEFAULT_ASSOCIATION_TYPES[(to_name, from_name)]


def association_type_name(from_type: ObjectType, to_type: ObjectType) -> str:
    return f"{from_type.singular}_to_{to_type.singular}"


# name, label, type, fieldType, extra (options, readOnlyValue, ...)
_PropSpec = tuple[str, str, str, str, dict[str, Any]]

_READ_ONLY = {"readOnlyValue": True}


def _options(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "options": [
            {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
            for i, (value, label) in enumerate(pairs)
        ]
    }


_COMMON: list[_PropSpec] = [
    ("hs_object_id", "Record ID", "number", "number", _READ_ONLY),
]

_DEFAULT_PROPERTIES: dict[str, list[_PropSpec]] = {
    "contacts": [
        *_COMMON,
        ("email", "Email", "string", "text", {}),
        ("firstname", "First Name", "string", "text", {}),
        ("lastname", "Last Name", "string", "text", {}),
        ("phone", "Phone Number", "string", "phonenumber", {}),
        ("mobilephone", "Mobile Phone Number", "string", "phonenumber", {}),
        ("address", "Street Address", "string", "text", {}),
        ("city", "City", "string", "text", {}),
        ("zip", "Postal Code", "string", "text", {}),
        ("country", "Country/Region", "string", "text", {}),
        ("date_of_birth", "Date of birth", "string", "text", {}),
        (
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            _options(
                ("subscriber", "Subscriber"),
                ("lead", "Lead"),
                ("marketingqualifiedlead", "Marketing Qualified Lead"),
                ("salesqualifiedlead", "Sales Qualified Lead"),
                ("opportunity", "Opportunity"),
                ("customer", "Customer"),
                ("evangelist", "Evangelist"),
                ("other", "Other"),
            ),
        ),
        ("createdate", "Create Date", "datetime", "date", {}),
        ("lastmodifieddate", "Last Modified Date", "datetime", "date", _READ_ONLY),
    ],
    "deals": [
        *_COMMON,
        ("dealname", "Deal Name", "string", "text", {}),
        ("dealstage", "Deal Stage", "enumeration", "radio", {"externalOptions": True}),
        ("pipeline", "Pipeline", "enumeration", "select", {"externalOptions": True}),
        ("amount", "Amount", "number", "number", {"showCurrencySymbol": True}),
        ("closedate", "Close Date", "datetime", "date", {}),
        (
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            _options(("newbusiness", "New Business"), ("existingbusiness", "Existing Business")),
        ),
        ("description", "Deal Description", "string", "textarea", {}),
        ("createdate", "Create Date", "datetime", "date", {}),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", _READ_ONLY),
    ],
    "appointments": [
        *_COMMON,
        ("hs_appointment_name", "Appointment Name", "string", "text", {}),
        ("hs_appointment_start", "Appointment start", "datetime", "date", {}),
        ("hs_appointment_end", "Appointment end", "datetime", "date", {}),
        ("hs_appointment_status", "Appointment status", "string", "text", {}),
        ("hs_appointment_type", "Appointment type", "string", "text", {}),
        ("hs_createdate", "Create Date", "datetime", "date", _READ_ONLY),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", _READ_ONLY),
    ],
}

DEFAULT_GROUPS: dict[str, list[tuple[str, str]]] = {
    "contacts": [("contactinformation", "Contact information")],
    "deals": [("dealinformation", "Deal information")],
    "appointments": [("appointmentinformation", "Appointment information")],
}


def default_properties(object_type: str, now_iso: str) -> dict[str, dict[str, Any]]:
    group = {ot.name: ot.default_group for ot in OBJECT_TYPES}[object_type]
    result: dict[str, dict[str, Any]] = {}
    for order, (name, label, ptype, field_type, extra) in enumerate(_DEFAULT_PROPERTIES[object_type]):
        read_only = bool(extra.get("readOnlyValue", False))
        result[name] = {
            "name": name,
            "label": label,
            "type": ptype,
            "fieldType": field_type,
            "groupName": group,
            "description": "",
            "options": list(extra.get("options", [])),
            "displayOrder": order,
            "hasUniqueValue": False,
            "hidden": False,
            "formField": not read_only,
            "calculated": False,
            "externalOptions": bool(extra.get("externalOptions", False)),
            "hubspotDefined": True,
            "showCurrencySymbol": bool(extra.get("showCurrencySymbol", False)),
            "modificationMetadata": {
                "archivable": False,
                "readOnlyDefinition": True,
                "readOnlyValue": read_only,
            },
            "createdAt": now_iso,
            "updatedAt": now_iso,
            "archived": False,
        }
    return result


# The stages of HubSpot's default "Sales Pipeline": (id, label, probability, isClosed).
_DEFAULT_DEAL_STAGES = [
    ("appointmentscheduled", "Appointment Scheduled", "0.2", "false"),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", "false"),
    ("presentationscheduled", "Presentation Scheduled", "0.6", "false"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", "false"),
    ("contractsent", "Contract Sent", "0.9", "false"),
    ("closedwon", "Closed Won", "1.0", "true"),
    ("closedlost", "Closed Lost", "0.0", "true"),
]


def default_deal_pipeline(now_iso: str) -> dict[str, Any]:
    return {
        "id": "default",
        "label": "Sales Pipeline",
        "displayOrder": 0,
        "archived": False,
        "createdAt": now_iso,
        "updatedAt": now_iso,
        "stages": [
            {
                "id": stage_id,
                "label": label,
                "displayOrder": order,
                "metadata": {"isClosed": closed, "probability": probability},
                "archived": False,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                "createdAt": now_iso,
                "updatedAt": now_iso,
            }
            for order, (stage_id, label, probability, closed) in enumerate(_DEFAULT_DEAL_STAGES)
        ],
    }


TIER_LIMITS: dict[str, tuple[int, int]] = {
    # tier -> (requests per rolling 10 s, requests per day), HUBSPOT.md
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 650_000),
    "enterprise": (190, 1_000_000),
}
