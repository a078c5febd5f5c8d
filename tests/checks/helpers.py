"""Test helpers: the portal after a sync, and the duplicates the old automation left behind, made in the
emulator directly."""

from __future__ import annotations

from typing import Any

from hubspot import HubSpot
from hubspot.crm.objects import SimplePublicObjectInputForCreate

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.hubspot.state import object_type_or_400
from tests.sync.conftest import TOKEN, dagster_resources

DEAL_TO_CONTACT = 3


def sdk(emu: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=emu.base_url)


resources = dagster_resources


def deal_by_key(emu: HubSpotEmulator, key: str) -> dict[str, Any]:
    matches = [d for d in emu.objects("deals") if d["properties"].get("ivoris_deal_key") == key]
    assert len(matches) == 1, f"{len(matches)} deals with {key}"
    return matches[0]


def contact_id_by_key(emu: HubSpotEmulator, patient_key: str) -> str:
    return next(
        c["id"] for c in emu.objects("contacts") if c["properties"].get("ivoris_patient_id") == patient_key
    )


def deal(emu: HubSpotEmulator, deal_id: str) -> dict[str, Any]:
    return emu.state.objects["deals"][deal_id]


def _create_deal(emu: HubSpotEmulator, contact_id: str, properties: dict[str, str]) -> str:
    created = sdk(emu).crm.objects.basic_api.create(
        "deals",
        SimplePublicObjectInputForCreate(
            properties=properties,
            associations=[
                {
                    "to": {"id": contact_id},
                    "types": [
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": DEAL_TO_CONTACT}
                    ],
                }
            ],
        ),
    )
    return str(created.id)


def inject_same_key_duplicate(emu: HubSpotEmulator, key: str, contact_id: str) -> str:
    """A second deal carrying `key`, the way a race in the old automation left them: HubSpot's unique index
    still points at the first deal (so the sync's upserts keep landing there), the copy sits beside it."""
    original = deal_by_key(emu, key)["properties"]
    deal_id = _create_deal(
        emu,
        contact_id,
        {
            "dealname": "Behandlung (Kopie)",
            "pipeline": original["pipeline"],
            "dealstage": original["dealstage"],
            "biss_practice_id": original["biss_practice_id"],
        },
    )
    with emu.state.lock:  # bypass the uniqueness check: write the key into the stored object itself
        obj = emu.state.objects["deals"][deal_id]
        obj["properties"]["ivoris_deal_key"] = key
        emu.state._reindex(object_type_or_400("deals"), obj)
    emu.flush_search_index()
    return deal_id


def add_old_automation_deal(
    emu: HubSpotEmulator, contact_id: str, stage: str = "appointmentscheduled"
) -> str:
    """An open deal of the old automation: HubSpot's default pipeline, no ivoris_deal_key, no practice id."""
    deal_id = _create_deal(
        emu, contact_id, {"dealname": "Neuer Patient", "pipeline": "default", "dealstage": stage}
    )
    emu.flush_search_index()
    return deal_id
