"""Fixtures for the HubSpot emulator tests; test modules import them explicitly.

One emulator serves a whole test module (starting uvicorn per test would dominate the run time);
`emu` resets it to a fresh portal with test-friendly settings before every test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hubspot import HubSpot

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.hubspot.portal import PortalConfig

TOKEN = "test-token"


@pytest.fixture(scope="module")
def hubspot_server() -> Iterator[HubSpotEmulator]:
    emulator = HubSpotEmulator(token=TOKEN, search_index_delay_s=0.0)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def emu(hubspot_server: HubSpotEmulator) -> HubSpotEmulator:
    if hubspot_server.portal != PortalConfig():
        hubspot_server.portal = PortalConfig()  # a test that changed the portal leaves a strict default
    hubspot_server.reset()
    hubspot_server.faults.clear()
    hubspot_server.faults.seed = None
    hubspot_server.token = TOKEN
    hubspot_server.search_index_delay_s = 0.0
    hubspot_server.batch_conflicts = "reject_batch"
    # HubSpot's limits, except search: tests fire searches faster than 5 a second on purpose;
    # test_hubspot_search checks that limit explicitly.
    hubspot_server.rate_limits = {"search_per_second": 1000}
    return hubspot_server


@pytest.fixture
def client(emu: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=emu.base_url)


def api_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run an SDK call that must fail; return its ApiException (each SDK package has its own class)."""
    try:
        call(*args, **kwargs)
    except Exception as exc:
        if not hasattr(exc, "status"):
            raise
        return exc
    raise AssertionError("the call did not fail")


def add_unique_property(client: HubSpot, object_type: str, name: str) -> None:
    from hubspot.crm.properties import PropertyCreate

    group = {"contacts": "contactinformation", "deals": "dealinformation", "0-421": "appointmentinformation"}
    client.crm.properties.core_api.create(
        object_type,
        PropertyCreate(
            name=name,
            label=name,
            type="string",
            field_type="text",
            group_name=group[object_type],
            has_unique_value=True,
        ),
    )
