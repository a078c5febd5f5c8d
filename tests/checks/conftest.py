"""Fixtures for the check and remediation tests: the HubSpot emulator (one server per module, reset
before every test), an SQLite warehouse and a fast-retrying client — the sync tests' own fixtures."""

from __future__ import annotations

import pytest

from tests.emulators.conftest_hubspot import emu, hubspot_server
from tests.sync.conftest import TOKEN, client, warehouse

__all__ = ["client", "emu", "hubspot_server", "warehouse"]


@pytest.fixture(autouse=True)
def hubspot_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # the Dagster resource reads its token from the environment, as in production
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
