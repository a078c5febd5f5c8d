"""The catch-up sensor against real failed runs: extraction runs that failed on an emulated Ivoris outage."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterInvalidConfigError,
    DagsterRunStatus,
    Definitions,
    EnvVar,
    RetryPolicy,
    build_sensor_context,
)
from dagster._core.test_utils import create_run_for_test

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.assets import ivoris as ivoris_assets
from biss_pipeline.definitions import build_definitions, pipeline_job_name
from biss_pipeline.domain.mapping.config import MappingConfig
from biss_pipeline.keys import PORTAL_SETUP_KEY, window_tags
from biss_pipeline.resources import ivoris_resource
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.sensors.catch_up import (
    CatchUpPlan,
    CatchUpSettings,
    FailedWindow,
    build_catch_up_sensor,
    build_catch_up_sensors,
)

JUNE_1, JUNE_2, JUNE_5 = dt.date(2026, 6, 1), dt.date(2026, 6, 2), dt.date(2026, 6, 5)


@pytest.fixture
def defs(mapping_file: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Definitions:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    # The raw assets' step retries wait 30 s and more between attempts: right for production, far too
    # slow for a test that only needs the run to fail.
    monkeypatch.setattr(ivoris_assets, "IVORIS_RETRY_POLICY", RetryPolicy(max_retries=0))
    return build_definitions(mapping_file)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    # In memory (runs, events): quicker than a temporary instance on disk, same storage API.
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def mapping(mapping_file: Path) -> MappingConfig:
    return MappingResource(path=str(mapping_file)).load()


def extract(defs: Definitions, instance: DagsterInstance, ivoris: IvorisEmulator, first: dt.date,
            last: dt.date, **tags: str) -> bool:
    """Run `extract_mb` over a window, one attempt per Ivoris request (run config, as an operator would)."""
    client = {"practice_id": "mb", "base_url": ivoris.site_url("mb"),
              "api_key": {"env": "TEST_IVORIS_KEY_MB"}, "max_attempts": 1, "timeout_s": 5.0}
    result = defs.resolve_job_def("extract_mb").execute_in_process(
        instance=instance, raise_on_error=False, tags={**window_tags(first, last), **tags},
        run_config={"resources": {"ivoris_mb": {"config": client}}})
    return result.success


@pytest.fixture
def tick(mapping: MappingConfig, hubspot: HubSpotEmulator):  # type: ignore[no-untyped-def]
    """One sensor evaluation with the code location's Ivoris and HubSpot resources (the probes are
    the resources' own clients)."""
    resources: dict[str, object] = {p.resource_key: ivoris_resource(p) for p in mapping.active_practices}
    resources["hubspot"] = HubSpotResource(access_token=EnvVar("HUBSPOT_ACCESS_TOKEN"), host=hubspot.base_url)

    def evaluate(sensor, instance: DagsterInstance, cursor: str | None = None):  # type: ignore[no-untyped-def]
        context = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return sensor.evaluate_tick(context)

    return evaluate


def test_windows_failed_during_an_outage_are_rerun_once_the_site_answers(tick,
        defs: Definitions, instance: DagsterInstance, ivoris: IvorisEmulator, mapping: MappingConfig,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ivoris.set_outage("mb", mode="503")
    assert not extract(defs, instance, ivoris, JUNE_1, JUNE_2)
    assert not extract(defs, instance, ivoris, JUNE_5, JUNE_5)
    failed_ids = sorted(r.run_id for r in instance.get_runs())
    sensor = build_catch_up_sensor(mapping.practice("mb"), "pipeline_mb")

    down = tick(sensor, instance)
    assert not down.run_requests
    assert "2 failed run(s) over 2026-06-01..2026-06-05 waiting" in down.skip_message
    assert "Ivoris still unavailable (IvorisUnavailableError" in down.skip_message
    assert json.loads(down.cursor)["down"] == ["Ivoris"]

    ivoris.clear_outage("mb")
    monkeypatch.delenv("TEST_IVORIS_KEY_MB")  # the probe uses the key the practice's config names
    # The probe is the resource's client: without its key the tick fails, naming the variable, and
    # requests nothing.
    with pytest.raises(DagsterInvalidConfigError, match="TEST_IVORIS_KEY_MB"):
        tick(sensor, instance, down.cursor)
    monkeypatch.setenv("TEST_IVORIS_KEY_MB", ivoris.api_key("mb"))

    up = tick(sensor, instance, down.cursor)
    [request] = up.run_requests
    # one run of the pipeline job over the union of the failed windows, keyed by the failed runs
    assert sensor.job_name == "pipeline_mb"
    assert request.tags["dagster/asset_partition_range_start"] == "2026-06-01"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-06-05"
    assert request.tags["practice"] == "mb" and request.tags["biss/catch_up"] == "true"
    assert request.run_key == CatchUpPlan(waiting=[
        FailedWindow(run_id, "extract_mb", frozenset(), False) for run_id in failed_ids]).run_key("mb")

    again = tick(sensor, instance, up.cursor)
    assert not again.run_requests
    assert "requested already" in again.skip_message

    # Someone re-ran the first window meanwhile: only the second is still missing.
    assert extract(defs, instance, ivoris, JUNE_1, JUNE_2)
    [narrower] = tick(sensor, instance, up.cursor).run_requests
    assert narrower.tags["dagster/asset_partition_range_start"] == "2026-06-05"
    assert narrower.tags["dagster/asset_partition_range_end"] == "2026-06-05"
    assert narrower.run_key != request.run_key

    # Once the catch-up run is queued or running, the sensor waits for it instead of asking again.
    create_run_for_test(instance, job_name="pipeline_mb", status=DagsterRunStatus.STARTED, tags=narrower.tags)
    waiting = tick(sensor, instance)
    assert not waiting.run_requests
    assert "no failed window waiting" in waiting.skip_message
    assert "1 covered by a queued or running run" in waiting.skip_message
    assert "1 made good by a later run" in waiting.skip_message


def test_failures_that_were_no_outage_and_other_practices_are_left_alone(tick,
        defs: Definitions, instance: DagsterInstance, ivoris: IvorisEmulator, mapping: MappingConfig) -> None:
    # A failed run without an Ivoris outage behind it (a bug would fail the re-run too) ...
    create_run_for_test(instance, job_name="pipeline_mb", status=DagsterRunStatus.FAILURE,
                        tags={**window_tags(JUNE_1, JUNE_2), "practice": "mb"})
    # ... and another practice's outage are not this sensor's business.
    ivoris.set_outage("rb", mode="503")
    assert not defs.resolve_job_def("extract_rb").execute_in_process(
        instance=instance, raise_on_error=False, tags=window_tags(JUNE_5, JUNE_5),
        run_config={"resources": {"ivoris_rb": {"config": {
            "practice_id": "rb", "base_url": ivoris.site_url("rb"), "api_key": {"env": "TEST_IVORIS_KEY_RB"},
            "max_attempts": 1}}}}).success
    result = tick(build_catch_up_sensor(mapping.practice("mb"), "pipeline_mb"), instance)
    assert not result.run_requests
    assert "1 failed for a reason other than an Ivoris outage" in result.skip_message

    ivoris.clear_outage("rb")
    [request] = tick(build_catch_up_sensor(mapping.practice("rb"), "pipeline_rb"), instance).run_requests
    assert request.tags["practice"] == "rb"


def test_a_flapping_site_stops_the_catch_up_after_repeated_failed_attempts(tick,
        defs: Definitions, instance: DagsterInstance, ivoris: IvorisEmulator, mapping: MappingConfig) -> None:
    ivoris.set_outage("mb", mode="503")
    assert not extract(defs, instance, ivoris, JUNE_1, JUNE_1)
    # the catch-up run failed on the outage too
    assert not extract(defs, instance, ivoris, JUNE_1, JUNE_1, **{"biss/catch_up": "true"})
    ivoris.clear_outage("mb")
    # below the limit it asks again (here without waiting out the backoff) ...
    patient = build_catch_up_sensor(mapping.practice("mb"), "pipeline_mb", CatchUpSettings(backoff_base_s=0))
    assert tick(patient, instance).run_requests
    sensor = build_catch_up_sensor(mapping.practice("mb"), "pipeline_mb",
                                   CatchUpSettings(max_catch_up_attempts=1))
    result = tick(sensor, instance)
    assert not result.run_requests
    assert "gave up" in result.skip_message
    assert "1 catch-up runs failed on outages already" in result.skip_message


def test_a_hubspot_outage_is_caught_up_once_hubspot_answers(
        tick, defs: Definitions, instance: DagsterInstance, hubspot: HubSpotEmulator,
        mapping: MappingConfig) -> None:
    hubspot.faults.random_502_rate = 1.0  # every call: 502
    quick = {"resources": {"hubspot": {"config": {"access_token": {"env": "HUBSPOT_ACCESS_TOKEN"},
                                                  "host": hubspot.base_url, "max_retries": 1,
                                                  "backoff_base_s": 0.01, "backoff_max_s": 0.05}}}}
    failed = defs.resolve_job_def("pipeline_mb").execute_in_process(
        instance=instance, raise_on_error=False, asset_selection=[PORTAL_SETUP_KEY],
        tags=window_tags(JUNE_1, JUNE_2), run_config=quick)
    assert not failed.success
    sensor = build_catch_up_sensor(mapping.practice("mb"), "pipeline_mb")

    down = tick(sensor, instance)
    assert not down.run_requests
    assert "waiting (hubspot)" in down.skip_message and "HubSpot still unavailable" in down.skip_message

    hubspot.faults.random_502_rate = 0.0
    [request] = tick(sensor, instance, down.cursor).run_requests
    assert (request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"]) == ("2026-06-01", "2026-06-02")


def test_crashed_runs_and_failed_ui_backfills_are_retried_with_backoff(
        tick, instance: DagsterInstance, mapping: MappingConfig) -> None:
    # A run whose worker died (the monitoring marks it failed; no step failed) ...
    crashed = create_run_for_test(instance, job_name="pipeline_mb", status=DagsterRunStatus.STARTED,
                                  tags={**window_tags(JUNE_1, JUNE_1), "practice": "mb"})
    instance.report_run_failed(crashed)
    # ... and a backfill launched from the UI over the practice's assets (no practice tag).
    backfill = create_run_for_test(instance, job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED,
                                   tags=window_tags(JUNE_5, JUNE_5),
                                   asset_selection=frozenset({AssetKey(["mb", "raw_appointments"])}))
    instance.report_run_failed(backfill)
    # Another practice's backfill is not this sensor's business.
    other = create_run_for_test(instance, job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED,
                                tags=window_tags(JUNE_2, JUNE_2),
                                asset_selection=frozenset({AssetKey(["rb", "raw_appointments"])}))
    instance.report_run_failed(other)
    sensor = build_catch_up_sensor(mapping.practice("mb"), "pipeline_mb")

    [request] = tick(sensor, instance).run_requests
    assert (request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"]) == ("2026-06-01", "2026-06-05")

    # The catch-up run crashed too: the sensor waits (backoff) before asking again.
    retry = create_run_for_test(instance, job_name="pipeline_mb", status=DagsterRunStatus.STARTED,
                                tags=request.tags)
    instance.report_run_failed(retry)
    backing_off = tick(sensor, instance)
    assert not backing_off.run_requests
    assert "backing off after 1 failed catch-up run(s), next attempt after" in backing_off.skip_message
    impatient = build_catch_up_sensor(mapping.practice("mb"), "pipeline_mb",
                                      CatchUpSettings(backoff_base_s=0.0))
    [again] = tick(impatient, instance).run_requests
    assert again.run_key != request.run_key


def test_one_sensor_per_practice_targets_its_pipeline_job() -> None:
    sensors = build_catch_up_sensors(MappingResource().load().active_practices, pipeline_job_name)
    assert {(s.name, s.job_name) for s in sensors} == {
        (f"{p}_catch_up", f"pipeline_{p}") for p in ("mb", "rb", "le")}
