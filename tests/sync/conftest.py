"""Fixtures for the HubSpot sync tests: the project's HubSpot emulator (one server per module, reset
before every test by `emu`), an SQLite warehouse, and a fast-retrying client pointed at the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import EnvVar

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.hubspot.client import HubSpotClient, RetrySettings
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.emulators.conftest_hubspot import TOKEN, emu, hubspot_server

__all__ = ["TOKEN", "emu", "hubspot_server"]

# Short backoffs keep fault tests quick; the retry logic is the same as with the defaults.
FAST_RETRY = RetrySettings(max_retries=8, backoff_base_s=0.01, backoff_max_s=0.2, locked_wait_s=2.0)


def dagster_resources(emulator: HubSpotEmulator, sqlite_url: str, **options: object) -> dict[str, object]:
    """`hubspot` (token from HUBSPOT_ACCESS_TOKEN, fast backoff), `warehouse` and `mapping` (the shipped
    mapping file; tests that want the sync's own defaults pass `sync_mapping=SyncMapping()`)."""
    hubspot = HubSpotResource(access_token=EnvVar("HUBSPOT_ACCESS_TOKEN"), host=emulator.base_url,
                              backoff_base_s=0.01, backoff_max_s=0.2, **options)
    return {"hubspot": hubspot, "warehouse": WarehouseResource(url=sqlite_url), "mapping": MappingResource()}


def make_client(emulator: HubSpotEmulator, **kwargs: object) -> HubSpotClient:
    options: dict[str, object] = {"retry": FAST_RETRY, "seed": 7}
    options.update(kwargs)
    return HubSpotClient(TOKEN, emulator.base_url, **options)  # type: ignore[arg-type]


@pytest.fixture
def client(emu: HubSpotEmulator) -> HubSpotClient:
    return make_client(emu)


@pytest.fixture
def warehouse(sqlite_url: str) -> Iterator[Warehouse]:
    yield WarehouseResource(url=sqlite_url).get()
