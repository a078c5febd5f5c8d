"""Done-when of issue 13: a fresh practice onboarded exactly as the README's "Onboarding a practice"
says, on an Ivoris server of its own that tells every lie of SPEC §3 rev. 2 at once, gets all its
good records into staging and HubSpot, with the anomalies reported.

The README steps, as the test performs them:
1. a `practices` row and the practice's `appointment_types` rows in the mapping (here the only
   practice), 2. its API-key variable, 3. reload the code location (`build_definitions` again),
4. run `refresh_reference_data`, 5. run `pipeline_<practice>` for a partition range, 6. read the
checks (`quarantined_share`, `ivoris_paging_consistent`, `appointment_volume`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import FaultConfig, IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.desired import desired_state, read_snapshot
from biss_pipeline.domain.hubspot.model import SyncMapping
from biss_pipeline.domain.hubspot.portal import ensure_portal, portal_spec
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.faults.conftest import QUIET, TOKEN, WINDOW, range_tags

pytestmark = pytest.mark.faults

NEW, PREFIX, SITE = "nx", "NX_", "le"
LIES = FaultConfig(short_page_rate=0.2, wide_short_page_rate=0.3, total_drift_rate=0.2,
                   phantom_total_extra=17, paged_lists_page_size=5, html_200_rate=0.05,
                   truncated_json_rate=0.05, non_integer_id_rate=0.03, non_integer_id_references=True,
                   seed=13)


@pytest.fixture
def own_ivoris() -> Iterator[IvorisEmulator]:
    emulator = IvorisEmulator(seed=11, size="tiny").start()
    try:
        yield emulator
    finally:
        emulator.stop()


def onboard(emulator: IvorisEmulator, path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """README steps 1 and 2: the practice's rows in the mapping, its API key in the environment."""
    tabs = load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml")
    tabs["practices"] = [{"id": NEW, "name": "Praxis Neustadt", "key_prefix": PREFIX,
                          "ivoris_base_url": emulator.site_url(SITE), "api_key_env": "IVORIS_API_KEY_NX",
                          "history_start": "2026-01-01", "active": True}]
    first = tabs["appointment_types"][0]["practice"]
    tabs["appointment_types"] = [{**row, "practice": NEW} for row in tabs["appointment_types"]
                                 if row["practice"] == first]
    path.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    key = next(site.api_key for site in emulator.sites if site.site_id == SITE)
    monkeypatch.setenv("IVORIS_API_KEY_NX", key)
    return path


def desired_appointments(emu: HubSpotEmulator, url: str, mapping_file: Path) -> set[str]:
    """The appointment keys the warehouse wants in HubSpot (as the sync computes them, read-only)."""
    snapshot = read_snapshot(WarehouseResource(url=url).get(), NEW)
    mapping = SyncMapping.from_mapping(MappingResource(path=str(mapping_file)).load())
    portal = ensure_portal(HubSpotClient(TOKEN, emu.base_url),
                           portal_spec(mapping, snapshot.buckets, snapshot.categories), dry_run=True)
    state = desired_state(snapshot, mapping, portal.pipeline_id, portal.stage_ids)
    return set(state.records["appointments"])


def evaluations(result: Any) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_fresh_practice_onboarded_as_the_readme_says_on_a_lying_server(
        own_ivoris: IvorisEmulator, hubspot: HubSpotEmulator, sqlite_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    own_ivoris.faults = LIES
    mapping = onboard(own_ivoris, tmp_path / "mapping.yaml", monkeypatch)
    defs = build_definitions(mapping)  # step 3: the reload
    with instance_for_test() as instance:
        reference = defs.resolve_job_def("refresh_reference_data").execute_in_process(
            instance=instance, run_config=QUIET)
        assert reference.success  # step 4
        result = defs.resolve_job_def(f"pipeline_{NEW}").execute_in_process(  # step 5
            instance=instance, tags=range_tags(*WINDOW), run_config=QUIET)
    assert result.success
    checks = evaluations(result)  # step 6
    assert checks["quarantined_share"].passed, checks["quarantined_share"].description
    assert checks["appointment_volume"].passed
    assert not checks["ivoris_paging_consistent"].passed  # the phantom total is reported
    told = own_ivoris.stats()["faults"]

    # every good record Ivoris holds for the window: all but the non-integer ids and what refers to them
    truth = own_ivoris.truth.appointments(SITE, *WINDOW)
    spoiled = set(own_ivoris.truth.non_integer_ids(SITE, "appointments", [a["id"] for a in truth]))
    bad_patients = set(own_ivoris.truth.non_integer_ids(SITE, "patients", {a["patientId"] for a in truth}))
    good = {f"{PREFIX}{a['id']}" for a in truth
            if a["id"] not in spoiled and a["patientId"] not in bad_patients}
    assert spoiled or bad_patients, "the server spoiled no id"
    warehouse = WarehouseResource(url=sqlite_url).get()
    staged = {r["appointment_key"] for r in warehouse.read_rows(
        sa.select(schema.stg_appointments.c.appointment_key).where(
            schema.stg_appointments.c.practice_id == NEW))}
    assert staged == good
    in_hubspot = {o["properties"].get("ivoris_appointment_id") for o in hubspot.objects("appointments")}
    wanted = desired_appointments(hubspot, sqlite_url, mapping)
    assert wanted and wanted <= staged
    assert in_hubspot == wanted  # everything the warehouse wants in HubSpot is there, nothing else
    contacts = {o["properties"].get("ivoris_patient_id") for o in hubspot.objects("contacts")}
    assert all(re.fullmatch(r"NX_\d+", key or "") for key in contacts)
    staged_patients = {r["patient_key"]
                       for r in warehouse.read_rows(sa.select(schema.stg_patients.c.patient_key))}
    assert contacts <= staged_patients  # no contact without a good patient record
    anomalies = warehouse.read_rows(sa.select(schema.ivoris_anomalies).where(
        schema.ivoris_anomalies.c.practice_id == NEW))
    unresolved = [a for a in anomalies if not a["resolved"]]
    assert unresolved
    print(f"\nonboarding {NEW}: emulator lies {dict(told)}; "
          f"staged {len(staged)} of {len(truth)} appointments "
          f"({len(spoiled)} non-integer ids, {len(bad_patients)} spoiled patients); HubSpot appointments "
          f"{len(in_hubspot)}, contacts {len(contacts)}; anomalies {len(unresolved)} unresolved, "
          f"{len(anomalies) - len(unresolved)} resolved by narrowing")
