"""Shared fixtures: emulators on free loopback ports, and warehouses on SQLite and PostgreSQL.

PostgreSQL tests run against this machine's server (127.0.0.1:5432, trust auth). Each test
gets a database of its own, dropped afterwards. Where the server is unreachable they skip
locally, but fail under CI=true: CI must never count a skipped PostgreSQL test as a pass.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import yaml

from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse.store import dispose_engine

if TYPE_CHECKING:
    from biss_emulators.hubspot import HubSpotEmulator
    from biss_emulators.ivoris import IvorisEmulator

TEST_HUBSPOT_TOKEN = "test-hubspot-token"  # the emulator's, not a secret

POSTGRES_ADMIN_URL = os.environ.get(
    "BISS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _postgres_admin() -> sa.Engine:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required under CI and unreachable: {exc.orig}")
        pytest.skip("PostgreSQL not reachable on this machine")
    return engine


@pytest.fixture
def postgres_url() -> Iterator[str]:
    admin = _postgres_admin()
    name = f"biss_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engine(url)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    yield url
    dispose_engine(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """Both backends: the same test runs on the embedded default and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def ivoris() -> Iterator[IvorisEmulator]:
    """A small Ivoris chain (three sites), fault-free unless the test turns faults on."""
    from biss_emulators.ivoris import IvorisEmulator

    emulator = IvorisEmulator(seed=7, size="tiny").start()
    try:
        yield emulator
    finally:
        emulator.stop()


def write_mapping_for(emulator: IvorisEmulator, path: Path, history_start: str = "2026-01-01") -> Path:
    """The shipped mapping with its practices pointed at the emulator's sites (the tests' config)."""
    practices = [
        {"id": site.site_id, "name": site.name, "key_prefix": site.key_prefix,
         "ivoris_base_url": emulator.site_url(site.site_id),
         "api_key_env": f"TEST_IVORIS_KEY_{site.site_id.upper()}",
         "history_start": history_start, "active": True}
        for site in emulator.sites
    ]
    tabs = load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml")
    tabs["practices"] = practices
    path.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def mapping_file(ivoris: IvorisEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for site in ivoris.sites:
        monkeypatch.setenv(f"TEST_IVORIS_KEY_{site.site_id.upper()}", site.api_key)
    return write_mapping_for(ivoris, tmp_path / "mapping.yaml")


@pytest.fixture
def hubspot_token() -> str:
    """The token the `hubspot` emulator accepts; a module overrides this fixture to choose its own."""
    return TEST_HUBSPOT_TOKEN


@pytest.fixture
def hubspot(monkeypatch: pytest.MonkeyPatch, hubspot_token: str) -> Iterator[HubSpotEmulator]:
    """A fresh HubSpot emulator portal, with the pipeline's environment pointing at it."""
    from biss_emulators.hubspot import HubSpotEmulator

    emulator = HubSpotEmulator(token=hubspot_token, search_index_delay_s=0.2).start()
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", hubspot_token)
    monkeypatch.setenv("BISS_HUBSPOT_HOST", emulator.base_url)
    try:
        yield emulator
    finally:
        emulator.stop()
