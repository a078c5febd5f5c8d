"""Practice isolation (issue 16, item 2): one practice's mapping mistake disables that practice only,
visibly; a mapping that cannot be read falls back to the last good one kept in the warehouse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetCheckSeverity,
    DagsterInstance,
    DagsterInvalidConfigError,
    asset,
    build_schedule_context,
    materialize,
)
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.assets.mapping import mapping_config
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.mapping.config import parse_mapping
from biss_pipeline.domain.mapping.isolation import UNREADABLE, parse_isolated
from biss_pipeline.domain.mapping.practices import ConfigError, load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources import mapping_resource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource

SHIPPED = PROJECT_ROOT / "config" / "mapping.yaml"
Tabs = dict[str, Any]
TICK = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)


def shipped_tabs() -> Tabs:
    return load_mapping_tabs(SHIPPED)


def broken_mb(tabs: Tabs) -> Tabs:
    """mb's type 2 (sheet row 3 of appointment_types) gets a deal role that does not exist."""
    row = tabs["appointment_types"][1]
    assert (row["practice"], row["type_id"]) == ("mb", 2)
    row["deal_role"] = "vip"
    return tabs


def write(path: Path, tabs: Tabs) -> Path:
    path.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# --- parsing --------------------------------------------------------------------------------------------


def test_a_bad_appointment_type_row_disables_only_its_practice() -> None:
    state = parse_isolated(broken_mb(shipped_tabs()))
    error = state.disabled["mb"]
    assert (error.tab, error.row, error.column) == ("appointment_types", 3, "deal_role")
    assert set(state.disabled) == {"mb"}
    # mb keeps its practice row (its assets and jobs stay), loses its types; the others are untouched
    assert [p.practice_id for p in state.config.active_practices] == ["mb", "rb", "le"]
    assert not [t for t in state.config.appointment_types if t.practice_id == "mb"]
    intact = parse_mapping(shipped_tabs())
    for practice in ("rb", "le"):
        assert (state.config.practice_hash(practice) == intact.practice_hash(practice))
    with pytest.raises(ConfigError, match=r"practice 'mb' is disabled .*appointment_types', row 3, "
                                          r"column 'deal_role'"):
        state.check_practice("mb")
    state.check_practice("rb")


def test_a_bad_practice_row_takes_that_practice_and_its_types_out() -> None:
    tabs = shipped_tabs()
    tabs["practices"][1]["history_start"] = "next spring"
    state = parse_isolated(tabs)
    error = state.disabled["rb"]
    assert (error.tab, error.row, error.column) == ("practices", 3, "history_start")
    assert [p.practice_id for p in state.config.practices] == ["mb", "le"]
    assert not [t for t in state.config.appointment_types if t.practice_id == "rb"]


def test_a_valid_mapping_disables_nothing_and_a_shared_tab_error_still_raises() -> None:
    assert parse_isolated(shipped_tabs()).disabled == {}
    tabs = shipped_tabs()
    tabs["stages"][0]["probability"] = "2"
    with pytest.raises(ConfigError, match="tab 'stages'"):
        parse_isolated(tabs)


# --- the code location and its schedules ---------------------------------------------------------------


def test_the_location_loads_and_only_the_broken_practice_skips_its_schedule(tmp_path: Path) -> None:
    path = write(tmp_path / "mapping.yaml", broken_mb(shipped_tabs()))
    defs = build_definitions(path)
    assert defs.resolve_job_def("pipeline_rb") and defs.resolve_job_def("pipeline_mb")
    resources = {"mapping": MappingResource(path=str(path))}
    with DagsterInstance.ephemeral() as instance:
        def tick(name: str) -> Any:
            schedule = defs.resolve_schedule_def(name)
            return schedule.evaluate_tick(build_schedule_context(
                instance=instance, scheduled_execution_time=TICK, resources=resources))

        skipped = tick("mb_incremental_sync")
        assert not skipped.run_requests
        assert "mb is disabled" in skipped.skip_message
        assert "tab 'appointment_types', row 3, column 'deal_role'" in skipped.skip_message
        assert len(tick("rb_incremental_sync").run_requests) == 1
        assert len(tick("le_nightly_resync").run_requests) == 1


def test_a_run_of_the_broken_practice_fails_naming_the_row_and_others_run(tmp_path: Path) -> None:
    """The run-time read: the resource raises the practice's error only in that practice's runs."""
    path = write(tmp_path / "mapping.yaml", shipped_tabs())
    seen: list[int] = []

    @asset
    def reads_mapping(mapping: MappingResource) -> None:
        seen.append(len(mapping.load().appointment_types))

    resources = {"mapping": MappingResource(path=str(path))}
    assert materialize([reads_mapping], resources=resources, tags={"practice": "mb"}).success
    write(path, broken_mb(shipped_tabs()))  # the sheet breaks while the location is loaded
    for other in ("rb", "le"):
        assert materialize([reads_mapping], resources=resources, tags={"practice": other}).success
    assert materialize([reads_mapping], resources=resources).success  # a chain-wide run (KPIs)
    failed = materialize([reads_mapping], resources=resources, tags={"practice": "mb"},
                         raise_on_error=False)
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    message = " ".join(part.message for part in (error, error.cause) if part is not None)
    assert "practice 'mb' is disabled" in message and "row 3, column 'deal_role'" in message
    mb_types = sum(1 for t in parse_mapping(shipped_tabs()).appointment_types if t.practice_id == "mb")
    assert seen == [seen[0], *[seen[0] - mb_types] * 3]  # mb's types are out, the others' stay


# --- the last good mapping -----------------------------------------------------------------------------


@pytest.fixture
def warehouse_env(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    yield sqlite_url


def materialize_mapping(resource: MappingResource, url: str, instance: DagsterInstance) -> Any:
    result = materialize([mapping_config], instance=instance,
                         resources={"mapping": resource, "warehouse": WarehouseResource(url=url)})
    assert result.success
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_an_unreadable_mapping_falls_back_to_the_last_good_one_with_a_warning(
        tmp_path: Path, warehouse_env: str) -> None:
    path = write(tmp_path / "mapping.yaml", broken_mb(shipped_tabs()))
    resource = mapping_resource(path)
    with instance_for_test() as instance:
        checks = materialize_mapping(resource, warehouse_env, instance)
        assert checks["sheet_readable"].passed
        valid = checks["practices_valid"]
        assert not valid.passed and valid.severity is AssetCheckSeverity.ERROR
        assert "row 3, column 'deal_role'" in valid.description
        saved = resource.load_state()

        path.unlink()  # the source is gone (for the sheet: an outage, revoked credentials)
        state = resource.load_state()
        assert state.fallback is not None and state.fallback[0] == UNREADABLE
        assert "FileNotFoundError" in state.fallback[1]
        assert state.config.content_hash == saved.config.content_hash
        assert set(state.disabled) == {"mb"}  # still disabled, with its row's error
        # the location keeps loading with the same practices
        defs = build_definitions(path)
        assert defs.resolve_job_def("pipeline_le")
        checks = materialize_mapping(resource, warehouse_env, instance)
        readable = checks["sheet_readable"]
        assert not readable.passed and readable.severity is AssetCheckSeverity.WARN
        assert "last good mapping" in readable.description


def test_missing_sheet_credentials_fall_back_too(tmp_path: Path, warehouse_env: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    local = mapping_resource(write(tmp_path / "mapping.yaml", shipped_tabs()))
    with instance_for_test() as instance:
        materialize_mapping(local, warehouse_env, instance)
    monkeypatch.setenv("BISS_MAPPING_SOURCE", "gsheet")
    monkeypatch.setenv("BISS_GSHEET_ID", "sheet-1")
    monkeypatch.delenv("BISS_GSHEET_CREDENTIALS", raising=False)
    state = mapping_resource().load_state()
    assert state.fallback is not None and "BISS_GSHEET_CREDENTIALS is not set" in state.fallback[1]
    assert state.config.content_hash == parse_mapping(shipped_tabs()).content_hash


def test_without_a_last_good_mapping_the_error_is_raised(tmp_path: Path, warehouse_env: str) -> None:
    with pytest.raises(FileNotFoundError):
        mapping_resource(tmp_path / "nowhere.yaml").load_state()
    with pytest.raises(FileNotFoundError):  # a bare resource never falls back
        MappingResource(path=str(tmp_path / "nowhere.yaml")).load_state()


# --- reference data per practice -----------------------------------------------------------------------


def test_one_practices_unset_key_fails_only_its_reference_refresh(
        mapping_file: Path, ivoris: IvorisEmulator, warehouse_env: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_IVORIS_KEY_MB")
    defs = build_definitions(mapping_file)
    with instance_for_test() as instance:
        for practice in ("rb", "le"):
            assert defs.resolve_job_def(f"refresh_reference_{practice}").execute_in_process(
                instance=instance).success
        # Dagster resolves the key when the run starts: mb's own refresh fails, naming the variable
        with pytest.raises(DagsterInvalidConfigError, match="TEST_IVORIS_KEY_MB"):
            defs.resolve_job_def("refresh_reference_mb").execute_in_process(instance=instance)
    warehouse = WarehouseResource(url=warehouse_env).get()
    assert warehouse.count_rows(schema.chairs, "rb") > 0 and warehouse.count_rows(schema.chairs, "le") > 0
    assert warehouse.count_rows(schema.chairs, "mb") == 0
