"""The mapping-change sensor: a changed mapping re-processes exactly the practices it affects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from biss_pipeline.assets.mapping import mapping_config
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource
from biss_pipeline.sensors.config_change import MappingFingerprint, build_config_change_sensor, mapping_change

Tabs = dict[str, list[dict[str, Any]]]
MAPPING = AssetKey(["mapping_config"])
PORTAL = AssetKey(["hubspot", "portal_setup"])


def practice_keys(*practices: str) -> set[AssetKey]:
    return {key for p in practices for key in (AssetKey([p, "deals"]), AssetKey([p, "contact_rollups"]),
                                               AssetKey(["hubspot", p, "sync"]))}


@pytest.fixture
def mapping_path(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.yaml"
    write(path, load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml"))
    return path


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    # In memory: these tests only read and write the mapping asset's materialization.
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


def write(path: Path, tabs: Tabs) -> None:
    path.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")


def edit(path: Path, change: Callable[[Tabs], None]) -> None:
    tabs = load_mapping_tabs(path)
    change(tabs)
    write(path, tabs)


def set_role(path: Path, practice: str, type_id: int, role: str) -> None:
    edit(path, lambda t: row(t, "appointment_types", practice=practice, type_id=type_id).update(
        deal_role=role))


def row(tabs: Tabs, tab: str, **match: Any) -> dict[str, Any]:
    return next(r for r in tabs[tab] if all(r.get(k) == v for k, v in match.items()))


class Sensor:
    """The sensor over the shipped practices, ticked with the cursor it returned last time."""

    def __init__(self, mapping_path: Path, instance: DagsterInstance) -> None:
        self.mapping = MappingResource(path=str(mapping_path))
        self.definition = build_config_change_sensor(self.mapping.load().active_practices)
        self.instance = instance
        self.cursor: str | None = None

    def tick(self):  # type: ignore[no-untyped-def]
        result = self.definition.evaluate_tick(build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"mapping": self.mapping}))
        self.cursor = result.cursor or self.cursor
        return result

    def selection(self) -> set[AssetKey]:
        [request] = self.tick().run_requests
        return set(request.asset_selection)


@pytest.fixture
def sensor(mapping_path: Path, instance: DagsterInstance) -> Sensor:
    watcher = Sensor(mapping_path, instance)
    baseline = watcher.tick()
    assert not baseline.run_requests and "baseline recorded" in baseline.skip_message
    return watcher


def test_an_unchanged_mapping_requests_nothing(sensor: Sensor, mapping_path: Path) -> None:
    # reordered rows and another spelling of the same value are the same mapping
    def reorder(tabs: Tabs) -> None:
        tabs["appointment_types"].reverse()
        row(tabs, "entry_rules", code_pattern="01")["billable"] = "TRUE"

    edit(mapping_path, reorder)
    result = sensor.tick()
    assert not result.run_requests and "unchanged" in result.skip_message


def test_an_appointment_type_change_reprocesses_only_its_practice(sensor: Sensor, mapping_path: Path) -> None:
    set_role(mapping_path, "mb", 2, "lead")
    [request] = sensor.tick().run_requests
    assert set(request.asset_selection) == {MAPPING, *practice_keys("mb")}
    assert request.tags["biss/practices"] == "mb"
    assert request.tags["biss/tabs_changed"] == "appointment_types"
    assert not sensor.tick().run_requests  # the cursor moved on

    edit(mapping_path, lambda t: row(t, "appointment_types", practice="le", type_id=3).update(
        hubspot_label="PZR"))
    assert sensor.selection() == {MAPPING, *practice_keys("le")}


def test_shared_tabs_reprocess_every_practice_and_the_portal(sensor: Sensor, mapping_path: Path) -> None:
    everything = {MAPPING, PORTAL, *practice_keys("mb", "rb", "le")}
    edit(mapping_path, lambda t: row(t, "entry_rules", code_pattern="04").update(billable="nein"))
    assert sensor.selection() == everything
    edit(mapping_path, lambda t: row(t, "settings", key="close_after_days").update(value=90))
    assert sensor.selection() == everything
    edit(mapping_path, lambda t: row(t, "stages", stage="erstberatung").update(stage_label="Beratung"))
    assert sensor.selection() == everything


def test_a_practice_row_change_only_refreshes_the_mapping(sensor: Sensor, mapping_path: Path) -> None:
    edit(mapping_path, lambda t: row(t, "practices", id="rb").update(name="Rümeysa Berlin-Mitte"))
    assert sensor.selection() == {MAPPING}


def test_a_new_practice_asks_for_a_definitions_reload(sensor: Sensor, mapping_path: Path) -> None:
    before = MappingFingerprint.of(sensor.mapping.load())

    def onboard(tabs: Tabs) -> None:
        tabs["practices"].append({**row(tabs, "practices", id="le"), "id": "hl", "name": "Praxis Halle",
                                  "key_prefix": "HL_", "api_key_env": "IVORIS_API_KEY_HL"})
        tabs["appointment_types"].append({**row(tabs, "appointment_types", practice="le", type_id=1),
                                          "practice": "hl"})

    edit(mapping_path, onboard)
    assert sensor.selection() == {MAPPING}  # hl's assets do not exist before the reload
    change = mapping_change(before, MappingFingerprint.of(sensor.mapping.load()), ["mb", "rb", "le"])
    assert change.to_load == ("hl",) and change.practices == ()
    assert "reload the definitions" in change.describe()


def test_a_mapping_edited_back_and_forth_gets_a_run_each_time(sensor: Sensor, mapping_path: Path) -> None:
    original = load_mapping_tabs(mapping_path)
    edited = load_mapping_tabs(mapping_path)
    row(edited, "appointment_types", practice="rb", type_id=5)["deal_role"] = "followup"
    keys = []
    for tabs in (edited, original, edited):
        write(mapping_path, tabs)
        [request] = sensor.tick().run_requests
        assert set(request.asset_selection) == {MAPPING, *practice_keys("rb")}
        keys.append(request.run_key)
    assert len(set(keys)) == 3


def test_an_unreadable_mapping_is_reported_and_not_acted_on(sensor: Sensor, mapping_path: Path) -> None:
    edit(mapping_path, lambda t: t["stages"][0].update(probability="2"))  # a tab every practice shares
    result = sensor.tick()
    assert not result.run_requests
    assert "mapping not readable" in result.skip_message and "ConfigError" in result.skip_message
    assert "probability" in result.skip_message
    edit(mapping_path, lambda t: t["stages"][0].update(probability=load_mapping_tabs(
        PROJECT_ROOT / "config" / "mapping.yaml")["stages"][0]["probability"]))
    assert not sensor.tick().run_requests  # back to what the cursor knows


def test_a_practice_disabled_by_its_rows_gets_no_rerun(sensor: Sensor, mapping_path: Path) -> None:
    set_role(mapping_path, "mb", 2, "vip")
    [request] = sensor.tick().run_requests
    # mapping_config alone, so its practices_valid check shows the row; mb's deals are not rebuilt
    assert set(request.asset_selection) == {MAPPING}


def test_without_a_cursor_the_last_materialization_is_the_baseline(
        mapping_path: Path, instance: DagsterInstance) -> None:
    warehouse = WarehouseResource(url=f"sqlite:///{mapping_path.parent / 'warehouse.sqlite'}")
    assert materialize([mapping_config], instance=instance,
                       resources={"mapping": MappingResource(path=str(mapping_path)),
                                  "warehouse": warehouse}).success
    fresh = Sensor(mapping_path, instance)
    assert "baseline recorded" in fresh.tick().skip_message  # same as materialized

    set_role(mapping_path, "mb", 2, "lead")
    restarted = Sensor(mapping_path, instance)  # e.g. the sensor was reset: no cursor
    [request] = restarted.tick().run_requests
    # The metadata names changed tabs, not practices: every practice counts.
    assert set(request.asset_selection) == {MAPPING, *practice_keys("mb", "rb", "le")}
    assert restarted.cursor is not None and not restarted.tick().run_requests
