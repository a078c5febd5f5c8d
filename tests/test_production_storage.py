"""The production configuration: `dagster.prod.yaml` on PostgreSQL end to end, and the deployment
files kept consistent with each other (docs/deployment.md).

The end-to-end test loads the real `dagster.prod.yaml` (copied into a temporary DAGSTER_HOME,
connection fields from DAGSTER_PG_*), runs the reference data and one practice's pipeline against
the Ivoris and HubSpot emulators with the warehouse on PostgreSQL too, then reads the run and its
events back from Dagster's tables with plain SQL.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, DagsterInvalidConfigError, DagsterRunStatus, Definitions, RunsFilter
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import ProductionConfigError, WarehouseResource
from tests.assets.test_ivoris_raw import range_tags
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_admin

PROD_YAML = PROJECT_ROOT / "dagster.prod.yaml"
DEV_YAML = PROJECT_ROOT / "dagster.yaml"
HELM_VALUES = PROJECT_ROOT / "deploy" / "helm" / "values.yaml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DEPLOYMENT_DOC = PROJECT_ROOT / "docs" / "deployment.md"
WINDOW = (dt.date(2026, 6, 17), dt.date(2026, 6, 30))
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def env_vars_referenced(node: Any) -> set[str]:
    """Every `{env: NAME}` in a parsed Dagster YAML document."""
    if isinstance(node, dict):
        found = {node["env"]} if isinstance(node.get("env"), str) else set()
        return found.union(*(env_vars_referenced(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(env_vars_referenced(item) for item in node))
    return set()


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


# --- the deployment files (cheap, no server) ---------------------------------------------------


def test_prod_yaml_reads_every_connection_field_from_documented_env_vars() -> None:
    prod = load_yaml(PROD_YAML)
    postgres_db = prod["storage"]["postgres"]["postgres_db"]
    # Credentials only from the environment: no literal host, user, password or database name.
    for field in ("hostname", "port", "username", "password", "db_name"):
        assert set(postgres_db[field]) == {"env"}, f"postgres_db.{field} must come from an env var"
    names = env_vars_referenced(prod)
    assert names == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD",
                     "DAGSTER_PG_DB"}
    doc = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    undocumented = sorted(name for name in names if not re.search(rf"\b{name}\b", doc))
    assert not undocumented, f"docs/deployment.md does not mention {undocumented}"


def test_prod_and_helm_keep_the_development_concurrency_limits() -> None:
    dev, prod, helm = load_yaml(DEV_YAML), load_yaml(PROD_YAML), load_yaml(HELM_VALUES)
    assert prod["concurrency"] == dev["concurrency"]
    assert prod["telemetry"] == dev["telemetry"] == {"enabled": False}
    assert helm["concurrency"]["enabled"] is True
    pools, runs = dev["concurrency"]["pools"], dev["concurrency"]["runs"]
    assert helm["concurrency"]["pools"]["defaultLimit"] == pools["default_limit"]
    assert helm["concurrency"]["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert helm["telemetry"]["enabled"] is False
    # The chart refuses a queue limit in both places; Dagster rejects it next to `concurrency`.
    queued = helm["dagsterDaemon"]["runCoordinator"].get("config", {}).get("queuedRunCoordinator", {})
    assert queued.get("maxConcurrentRuns") is None


def test_helm_values_match_the_image_and_external_postgres() -> None:
    helm, prod = load_yaml(HELM_VALUES), load_yaml(PROD_YAML)
    assert helm["postgresql"]["enabled"] is False and helm["generatePostgresqlPasswordSecret"] is False
    assert helm["postgresql"]["postgresqlScheme"] == prod["storage"]["postgres"]["postgres_db"]["scheme"]
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"

    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    cmd_line = next(line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
                    if line.startswith("CMD "))
    cmd = json.loads(cmd_line.removeprefix("CMD "))
    assert cmd[:3] == ["dagster", "api", "grpc"]
    port = int(cmd[cmd.index("--port") + 1])
    assert deployment["port"] == port
    assert f"EXPOSE {port}" in DOCKERFILE.read_text(encoding="utf-8")
    args = deployment["dagsterApiGrpcArgs"]
    module, attribute = args[args.index("-m") + 1], args[args.index("-a") + 1]
    assert [module, attribute] == [cmd[cmd.index("-m") + 1], cmd[cmd.index("-a") + 1]]
    assert isinstance(getattr(importlib.import_module(module), attribute), Definitions)

    # Run pods get the code server's credentials even with includeConfigInLaunchedRuns off.
    secrets = {s["name"] for s in deployment["envSecrets"]}
    launcher = helm["runLauncher"]["config"]["k8sRunLauncher"]
    assert secrets and secrets <= {s["name"] for s in launcher["envSecrets"]}


# --- end to end on PostgreSQL -------------------------------------------------------------------


@pytest.fixture
def dagster_storage_url() -> Iterator[str]:
    """A second fresh database, for Dagster's own tables: they cannot share one with the warehouse,
    since both keep their Alembic revision in a table named `alembic_version`."""
    admin = _postgres_admin()
    name = f"biss_test_dagster_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def prod_dagster_home(dagster_storage_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding a copy of the real dagster.prod.yaml, its DAGSTER_PG_* set."""
    url = sa.make_url(dagster_storage_url)
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_USER", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")  # trust auth on the test server
    monkeypatch.setenv("DAGSTER_PG_DB", url.database or "")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROD_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.mark.postgres
def test_pipeline_runs_on_the_production_instance(
        prod_dagster_home: Path, dagster_storage_url: str, postgres_url: str, mapping_file: Path,
        ivoris: IvorisEmulator, hubspot: HubSpotEmulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_WAREHOUSE_URL", postgres_url)  # the warehouse on PostgreSQL as well
    monkeypatch.setenv("BISS_DATA_DIR", str(tmp_path / "data"))  # KPI report files
    defs = build_definitions(mapping_file)

    with DagsterInstance.from_config(str(prod_dagster_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        reference = defs.resolve_job_def("refresh_reference_data").execute_in_process(
            instance=instance, run_config=QUIET)
        assert reference.success
        result = defs.resolve_job_def("pipeline_mb").execute_in_process(
            instance=instance, tags=range_tags(*WINDOW), run_config=QUIET)
        assert result.success
        run_id = result.run_id

    # What a webserver or daemon in another process would see: the rows in PostgreSQL.
    engine = sa.create_engine(dagster_storage_url)
    try:
        with engine.connect() as connection:
            runs = dict(connection.execute(sa.text("SELECT run_id, status FROM runs")).all())
            materializations = connection.execute(sa.text(
                "SELECT count(*) FROM event_logs WHERE run_id = :run_id "
                "AND dagster_event_type = 'ASSET_MATERIALIZATION'"), {"run_id": run_id}).scalar_one()
            run_end = connection.execute(sa.text(
                "SELECT count(*) FROM event_logs WHERE run_id = :run_id "
                "AND dagster_event_type = 'PIPELINE_SUCCESS'"), {"run_id": run_id}).scalar_one()
    finally:
        engine.dispose()
    assert runs == {reference.run_id: DagsterRunStatus.SUCCESS.value, run_id: DagsterRunStatus.SUCCESS.value}
    assert materializations > 0 and run_end == 1

    with DagsterInstance.from_config(str(prod_dagster_home)) as reopened:
        run = reopened.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS

    mb_deals = [d for d in hubspot.objects("deals")
                if d["properties"].get("ivoris_deal_key", "").startswith("MB_")]
    warehouse = WarehouseResource(url=postgres_url).get()
    assert len(mb_deals) == warehouse.count_rows(schema.deals, "mb") > 0


# --- production fails fast ------------------------------------------------------------------------


def test_a_production_code_location_without_its_settings_fails_at_load(
        mapping_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISS_ENVIRONMENT", "production")
    monkeypatch.delenv("BISS_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    with pytest.raises(ProductionConfigError, match="BISS_WAREHOUSE_URL, HUBSPOT_ACCESS_TOKEN are not set"):
        build_definitions(mapping_file)
    monkeypatch.setenv("BISS_WAREHOUSE_URL", "postgresql+psycopg2://warehouse.example/biss")
    with pytest.raises(ProductionConfigError, match="HUBSPOT_ACCESS_TOKEN is not set"):
        build_definitions(mapping_file)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "set-by-the-deployment")
    assert build_definitions(mapping_file).resolve_job_def("pipeline_mb") is not None
    monkeypatch.setenv("BISS_ENVIRONMENT", "development")
    monkeypatch.delenv("BISS_WAREHOUSE_URL")
    assert build_definitions(mapping_file).resolve_job_def("pipeline_mb") is not None


@pytest.mark.postgres
def test_the_production_instance_refuses_the_embedded_warehouse_and_a_missing_token(
        prod_dagster_home: Path, mapping_file: Path, ivoris: IvorisEmulator, hubspot: HubSpotEmulator,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("BISS_DATA_DIR", str(data_dir))
    monkeypatch.delenv("BISS_WAREHOUSE_URL", raising=False)
    defs = build_definitions(mapping_file)
    with DagsterInstance.from_config(str(prod_dagster_home)) as instance:
        result = defs.resolve_job_def("refresh_reference_data").execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_failure)
        assert "BISS_WAREHOUSE_URL is not set" in str(failure.event_specific_data)
        assert not (data_dir / "warehouse.sqlite").exists()  # nothing fell back to a local file

        monkeypatch.setenv("BISS_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
        monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
        defs = build_definitions(mapping_file)
        # The token is an EnvVar: the run is refused at launch, before any step extracts anything.
        with pytest.raises(DagsterInvalidConfigError, match="HUBSPOT_ACCESS_TOKEN"):
            defs.resolve_job_def("pipeline_mb").execute_in_process(
                instance=instance, tags=range_tags(*WINDOW), run_config=QUIET)
        assert not instance.get_runs(filters=RunsFilter(job_name="pipeline_mb"))
