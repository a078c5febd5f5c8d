"""Shared pieces of the fault suite (docs/fault-suite.md).

Every case runs the real pipeline through Dagster against the project's emulators and ends with
`assert_matches_reference`: the HubSpot portal, normalised by Ivoris key (no HubSpot ids, no
timestamps), equals the one a fault-free run of the same input produced; no Ivoris key exists twice;
every record the warehouse wants is in HubSpot; and every ledger row points at the HubSpot object of
its key and carries the hash of the payload the warehouse wants sent.

The fault-free reference is computed once per session (`reference`): the Ivoris emulator is
deterministic (seed 7, `tiny`, fixed clock) and the window fixed, so every test's fresh emulators
serve the same input.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    EnvVar,
    ExecuteInProcessResult,
    define_asset_job,
)
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.desired import DesiredState, desired_state, read_snapshot
from biss_pipeline.domain.hubspot.diff import CONFIRMED_STATUSES
from biss_pipeline.domain.hubspot.model import ASSOCIATION_KINDS, OBJECT_KINDS, SyncMapping
from biss_pipeline.domain.hubspot.payloads import association_hash, association_key
from biss_pipeline.domain.hubspot.portal import PortalState, ensure_portal, portal_spec
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import dispose_engine
from biss_pipeline.keys import PORTAL_SETUP_KEY, sync_asset_key
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.conftest import write_mapping_for

PRACTICE = "mb"
WINDOW = (dt.date(2026, 6, 22), dt.date(2026, 7, 5))  # two weeks of the `tiny` chain, past and booked
TOKEN = "fault-suite-token"
SYNC_JOB = f"hubspot_sync_{PRACTICE}"
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
KEY_PROPERTIES = {"contacts": "ivoris_patient_id", "deals": "ivoris_deal_key",
                  "appointments": "ivoris_appointment_id"}
# HubSpot's own ids and timestamps: different in every portal, never compared
VOLATILE = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate",
                      "hs_createdate"})
# what an Ivoris fault may not change: the raw layer, and what the pipeline computes from it
COMPARED_TABLES = ("raw_appointments", "raw_patients", "raw_document_entries",
                   "raw_repaired_document_entries", "quarantine", "stg_appointments", "stg_patients",
                   "stg_document_entries", "deals", "deal_appointments", "deal_revenue", "contact_rollups")
ASSOCIATION_DIRECTIONS = [(a, b) for a in KEY_PROPERTIES for b in KEY_PROPERTIES if a != b]


# -------------------------------------------------------------------------------- Dagster plumbing


def range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat()}


def fault_definitions(mapping_file: Path, *, hubspot_batch_size: int | None = None) -> Definitions:
    """The project's definitions (resources from the environment, as in production) plus the job
    `hubspot_sync_mb`: portal setup and the practice's sync with their checks, for the sync-only cases.
    `hubspot_batch_size` makes batches small, so a sync makes enough calls to meet the faults."""
    defs = build_definitions(mapping_file)
    resources = dict(defs.resources or {})
    if hubspot_batch_size is not None:
        resources["hubspot"] = HubSpotResource.from_env(
            host=os.environ["BISS_HUBSPOT_HOST"], batch_size=hubspot_batch_size)
    sync_job = define_asset_job(SYNC_JOB, selection=AssetSelection.assets(
        PORTAL_SETUP_KEY, sync_asset_key(PRACTICE)))
    return Definitions(assets=defs.assets, asset_checks=defs.asset_checks,
                       jobs=[*(defs.jobs or []), sync_job], resources=resources)


def ivoris_override(mapping_file: Path, **config: Any) -> IvorisResource:
    practice = next(p for p in MappingResource(path=str(mapping_file)).load().active_practices
                    if p.practice_id == PRACTICE)
    return IvorisResource(practice_id=PRACTICE, base_url=practice.ivoris_base_url,
                          api_key=EnvVar(practice.api_key_env), **config)


def run_job(defs: Definitions, name: str, instance: DagsterInstance, *, window: bool = True,
            raise_on_error: bool = True) -> ExecuteInProcessResult:
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance, tags=range_tags(*WINDOW) if window else {}, run_config=QUIET,
        raise_on_error=raise_on_error)


def run_pipeline(defs: Definitions, instance: DagsterInstance) -> ExecuteInProcessResult:
    """What an operator does for a window: reference data, then `pipeline_mb` over the range."""
    assert run_job(defs, "refresh_reference_data", instance, window=False).success
    result = run_job(defs, f"pipeline_{PRACTICE}", instance)
    assert result.success
    return result


def sync_metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    """The sync asset's materialization metadata (counts, write calls, retries, 429s)."""
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == sync_asset_key(PRACTICE):
            return {k: v.value for k, v in materialization.metadata.items()}
    raise AssertionError("the sync asset was not materialized")


def ivoris_requests(ivoris: IvorisEmulator) -> int:
    return sum(ivoris.stats()["requests"].values())


def when(condition: Callable[[], bool], action: Callable[[], None], timeout_s: float = 120.0,
         poll_s: float = 0.01) -> threading.Thread:
    """Run `action` from a background thread as soon as `condition` holds (a fault mid-run)."""
    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                action()
                return
            time.sleep(poll_s)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# -------------------------------------------------------------------------------- emulators


def start_hubspot(monkeypatch: pytest.MonkeyPatch, **options: Any) -> HubSpotEmulator:
    emulator = HubSpotEmulator(token=TOKEN, search_index_delay_s=0.2, **options).start()
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("BISS_HUBSPOT_HOST", emulator.base_url)
    return emulator


@pytest.fixture
def hubspot(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotEmulator]:
    """A fresh portal (faults off until the test turns them on), and the pipeline's env pointing at it."""
    emulator = start_hubspot(monkeypatch)
    try:
        yield emulator
    finally:
        emulator.stop()


# -------------------------------------------------------------------------------- warehouse


def table_rows(url: str, names: tuple[str, ...] = COMPARED_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """The practice's rows per table, sorted (a multiset: a duplicated row shows)."""
    warehouse = WarehouseResource(url=url).get()
    result: dict[str, list[tuple[Any, ...]]] = {}
    for name in names:
        table = schema.metadata.tables[name]
        rows = warehouse.read_rows(sa.select(table).where(table.c.practice_id == PRACTICE))
        result[name] = sorted(tuple(str(r[c.name]) for c in table.columns) for r in rows)
    return result


def copy_warehouse(source_url: str, target_url: str,
                   skip: tuple[str, ...] = ("hubspot_ledger", "extraction_runs")) -> None:
    """Everything the sync reads, from one warehouse into a fresh one (migrated by its first use):
    the input of a sync-only case, without the ledger of the reference portal."""
    source = WarehouseResource(url=source_url).get()
    target = WarehouseResource(url=target_url).get()
    with target.transaction() as connection:
        for table in schema.metadata.sorted_tables:
            if table.name in skip:
                continue
            rows = source.read_rows(sa.select(table))
            aware = [c.name for c in table.columns
                     if isinstance(c.type, sa.DateTime) and c.type.timezone]
            for row in rows:  # SQLite returns naive UTC datetimes
                for column in aware:
                    value = row[column]
                    if isinstance(value, dt.datetime) and value.tzinfo is None:
                        row[column] = value.replace(tzinfo=dt.UTC)
            connection.execute(table.delete())
            if rows:
                connection.execute(table.insert(), rows)


def ledger(url: str) -> list[dict[str, Any]]:
    warehouse = WarehouseResource(url=url).get()
    return warehouse.read_rows(sa.select(schema.hubspot_ledger))


# -------------------------------------------------------------------------------- HubSpot, normalised


def portal_snapshot(emu: HubSpotEmulator) -> dict[str, Any]:
    """The portal by Ivoris key: objects with their properties (stage and pipeline by label), the
    associations as key pairs with their type, the deal pipelines, and any key held by several
    objects (`duplicates`) or objects without a key (`unkeyed`). HubSpot ids and timestamps are left
    out, so two portals built from the same input compare equal."""
    pipelines = emu.state.pipelines["deals"]
    stage_labels = {s["id"]: s["label"] for pl in pipelines.values() for s in pl["stages"]}
    pipeline_labels = {pid: pl["label"] for pid, pl in pipelines.items()}
    snapshot: dict[str, Any] = {"duplicates": {}, "unkeyed": {}}
    key_of: dict[str, dict[str, str]] = {}
    for name, key_property in KEY_PROPERTIES.items():
        objects = emu.objects(name)
        per_key = Counter(o["properties"].get(key_property) for o in objects)
        snapshot["duplicates"][name] = {k: n for k, n in per_key.items() if k and n > 1}
        snapshot["unkeyed"][name] = per_key.get(None, 0) + per_key.get("", 0)
        by_key: dict[str, dict[str, str]] = {}
        for obj in objects:
            props = {k: v for k, v in obj["properties"].items() if k not in VOLATILE and v not in (None, "")}
            if "dealstage" in props:
                props["dealstage"] = stage_labels.get(props["dealstage"], props["dealstage"])
            if "pipeline" in props:
                props["pipeline"] = pipeline_labels.get(props["pipeline"], props["pipeline"])
            if props.get(key_property):
                by_key[props[key_property]] = props
        snapshot[name] = by_key
        key_of[name] = {o["id"]: o["properties"].get(key_property) or f"<unkeyed {name}>" for o in objects}
    for source, target in ASSOCIATION_DIRECTIONS:
        snapshot[f"{source}->{target}"] = sorted(
            (key_of[source].get(f, f"<gone {f}>"), key_of[target].get(t, f"<gone {t}>"), type_id)
            for f, t, type_id in emu.associations(source, target))
    snapshot["pipelines"] = sorted(
        (pl["label"], tuple((s["label"], s.get("metadata", {}).get("probability"))
                            for s in pl["stages"] if not s.get("archived")))
        for pl in pipelines.values() if not pl.get("archived"))
    return snapshot


def snapshot_counts(snapshot: dict[str, Any]) -> dict[str, int]:
    return {name: len(value) for name, value in snapshot.items()
            if name not in ("duplicates", "unkeyed", "pipelines")}


def desired(emu: HubSpotEmulator, warehouse_url: str, mapping_file: Path) -> tuple[DesiredState, PortalState]:
    """What the warehouse wants in HubSpot, with the portal's pipeline, stage and association type ids
    (as the sync computes it; read-only)."""
    snapshot = read_snapshot(WarehouseResource(url=warehouse_url).get(), PRACTICE)
    mapping = SyncMapping.from_mapping(MappingResource(path=str(mapping_file)).load())
    portal = ensure_portal(HubSpotClient(TOKEN, emu.base_url),
                           portal_spec(mapping, snapshot.buckets, snapshot.categories), dry_run=True)
    assert not portal.planned, f"the portal is incomplete: {portal.planned}"
    return desired_state(snapshot, mapping, portal.pipeline_id, portal.stage_ids), portal


# -------------------------------------------------------------------------------- the verdict


@dataclass
class Reference:
    """A fault-free run of the window: the portal it left, and the warehouse it built (SQLite)."""

    portal: dict[str, Any]
    warehouse_url: str
    mapping_file: Path
    tables: dict[str, list[tuple[Any, ...]]]
    ivoris_requests: int
    hubspot_write_calls: int

    @property
    def counts(self) -> dict[str, int]:
        return snapshot_counts(self.portal)


def assert_matches_reference(emu: HubSpotEmulator, warehouse_url: str, mapping_file: Path,
                             reference: Reference) -> dict[str, int]:
    """The end state every fault case must reach; returns what was compared (for the report)."""
    emu.faults.clear()
    portal = portal_snapshot(emu)
    # zero duplicates per Ivoris key, no object without a key
    assert portal["duplicates"] == {name: {} for name in KEY_PROPERTIES}, f"duplicates {portal['duplicates']}"
    assert portal["unkeyed"] == {name: 0 for name in KEY_PROPERTIES}, f"unkeyed objects {portal['unkeyed']}"
    # identical to the fault-free run, section by section (a readable diff on failure)
    for section in reference.portal:
        assert portal[section] == reference.portal[section], f"HubSpot {section} differ from the reference"
    assert portal == reference.portal

    # zero lost records: everything the warehouse holds and wants in HubSpot is there
    want, portal_state = desired(emu, warehouse_url, mapping_file)
    for kind in OBJECT_KINDS:
        assert set(want.records[kind.name]) == set(portal[kind.name]), f"lost or stray {kind.name}"
    warehouse = WarehouseResource(url=warehouse_url).get()
    deal_keys = {r["deal_key"] for r in warehouse.read_rows(
        sa.select(schema.deals.c.deal_key).where(schema.deals.c.practice_id == PRACTICE))}
    assert deal_keys and deal_keys == set(portal["deals"])

    # the ledger: one confirmed row per record and pair, pointing at HubSpot's object of that key,
    # holding the hash of the payload the warehouse wants sent
    rows = ledger(warehouse_url)
    assert Counter(r["practice_id"] for r in rows) == Counter({PRACTICE: len(rows)})
    by_type: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        assert row["record_key"] not in by_type.get(row["object_type"], {}), "ledger row twice"
        by_type.setdefault(row["object_type"], {})[row["record_key"]] = row
    bad = [(r["object_type"], r["record_key"], r["status"], r["last_error"]) for r in rows
           if r["status"] not in CONFIRMED_STATUSES or r["attempts"]]
    assert not bad, f"ledger rows not confirmed: {bad[:5]}"
    for kind in OBJECT_KINDS:
        objects = {o["id"]: o["properties"].get(kind.id_property) for o in emu.objects(kind.name)}
        entries = by_type.get(kind.name, {})
        assert set(entries) == set(want.records[kind.name]), f"ledger {kind.name} keys"
        for key, row in entries.items():
            assert objects.get(row["hubspot_id"]) == key, f"ledger {kind.name} {key} points elsewhere"
            assert row["content_hash"] == want.records[kind.name][key].content_hash, f"{kind.name} {key} hash"
    for kind in ASSOCIATION_KINDS:
        association = portal_state.association(kind)  # the type id the portal's labels name
        pairs = {(f, t) for f, t, type_id in emu.associations(association.source.name,
                                                              association.target.name)
                 if type_id == association.type_id}
        entries = by_type.get(association.name, {})
        wanted = {association_key(s, t) for s, t in want.pairs[association.name]}
        assert set(entries) == wanted, f"ledger {association.name} keys"
        for row in entries.values():
            source_id, target_id = row["hubspot_id"].split(">", 1)
            assert (source_id, target_id) in pairs, f"ledger {association.name} {row['record_key']} missing"
            assert row["content_hash"] == association_hash(source_id, target_id, association.type_id)
    return {**snapshot_counts(portal), "ledger_rows": len(rows)}


# -------------------------------------------------------------------------------- the reference


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """One fault-free run of refresh_reference_data + pipeline_mb over WINDOW, on emulators of its
    own (so it does not matter which test asks first)."""
    directory = tmp_path_factory.mktemp("fault_reference")
    url = f"sqlite:///{directory / 'warehouse.sqlite'}"
    ivoris = IvorisEmulator(seed=7, size="tiny").start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for site in ivoris.sites:
                mp.setenv(f"TEST_IVORIS_KEY_{site.site_id.upper()}", site.api_key)
            mp.setenv("BISS_WAREHOUSE_URL", url)
            hubspot = start_hubspot(mp)
            try:
                mapping_file = write_mapping_for(ivoris, directory / "mapping.yaml")
                with instance_for_test() as instance:
                    result = run_pipeline(fault_definitions(mapping_file), instance)
                metadata = sync_metadata(result)
                portal = portal_snapshot(hubspot)
                counts = assert_matches_reference(
                    hubspot, url, mapping_file,
                    Reference(portal, url, mapping_file, {}, 0, 0))  # self-consistency of the reference
                requests = ivoris_requests(ivoris)
            finally:
                hubspot.stop()
    finally:
        ivoris.stop()
    assert counts["deals"] > 10 and counts["appointments"] > 10 and counts["contacts"] > 10
    print(f"\nfault suite reference: {counts}, ivoris requests {requests}, "
          f"hubspot write calls {metadata['write_calls']}")
    yield Reference(portal, url, mapping_file, table_rows(url), requests, int(metadata["write_calls"]))
    dispose_engine(url)


@pytest.fixture
def sync_input(reference: Reference, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An SQLite warehouse holding what the reference run computed (staging, deals, roll-ups) and
    no ledger: the input of a sync-only case, which then runs against a fresh portal."""
    copy_warehouse(reference.warehouse_url, sqlite_url)
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    return sqlite_url
