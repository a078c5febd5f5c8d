"""`deploy/helm/values.yaml` means what it says, checked without helm or a cluster.

What a render of Dagster's chart makes of these values was checked with a real helm
(`deploy/helm/check_render.py`, docs/deployment.md); these tests hold the values to the properties
that render showed to matter:

- every pod the chart creates (webserver, daemon, code location) and every run pod meets Pod
  Security "restricted";
- run monitoring is on and frees the pool slots of dead runs;
- the run pods' resources are the run launcher's, not silently replaced by the code server's
  (with `includeConfigInLaunchedRuns` dagster-k8s merges the code location's resources over the run
  launcher's), and they are sized for the longest backfill measured in docs/performance.md.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest
import yaml

from biss_pipeline.domain.paths import PROJECT_ROOT

HELM_VALUES = PROJECT_ROOT / "deploy" / "helm" / "values.yaml"
CHECK_RENDER = PROJECT_ROOT / "deploy" / "helm" / "check_render.py"
PERFORMANCE_DOC = PROJECT_ROOT / "docs" / "performance.md"
MIB = 1024 * 1024

# The render script's own checks, loaded from its file (deploy/ is not a package), so the values
# and a real render are held to one definition of "restricted".
_spec = importlib.util.spec_from_file_location("check_render", CHECK_RENDER)
assert _spec is not None and _spec.loader is not None
check_render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_render)
container_violations = check_render.container_violations
pod_violations = check_render.pod_violations
parse_quantity = check_render.parse_quantity


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    document = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def deployments(values: dict[str, Any]) -> list[dict[str, Any]]:
    found = values["dagster-user-deployments"]["deployments"]
    assert found, "no code location in the values"
    return found


def components(values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each kind of pod the values configure: (pod security context, container security context)."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    found = {
        "webserver": (values["dagsterWebserver"].get("podSecurityContext"),
                      values["dagsterWebserver"].get("securityContext")),
        "daemon": (values["dagsterDaemon"].get("podSecurityContext"),
                   values["dagsterDaemon"].get("securityContext")),
        "run pods": (launcher.get("runK8sConfig", {}).get("podSpecConfig", {}).get("securityContext"),
                     launcher.get("securityContext")),
    }
    for deployment in deployments(values):
        found[f"code location {deployment['name']}"] = (deployment.get("podSecurityContext"),
                                                       deployment.get("securityContext"))
    return found


def test_the_restricted_checks_catch_what_the_reviewer_found() -> None:
    # The checks themselves: an empty context (the chart's default) and the old code-server one.
    assert pod_violations({}) and container_violations({})
    old_code_server = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert set(container_violations(old_code_server)) == {
        "runAsNonRoot is not true", "seccompProfile.type is not RuntimeDefault/Localhost"}
    assert pod_violations({"runAsNonRoot": True, "runAsUser": 0,
                           "seccompProfile": {"type": "RuntimeDefault"}}) == ["runAsUser is 0 (root)"]
    unconfined = {**old_code_server, "seccompProfile": {"type": "Unconfined"}, "runAsNonRoot": True}
    assert container_violations(unconfined) == ["seccompProfile.type is not RuntimeDefault/Localhost"]
    assert container_violations({**old_code_server, "runAsNonRoot": True, "privileged": True,
                                 "seccompProfile": {"type": "RuntimeDefault"}}) == ["privileged"]
    # dagster-k8s's snake_case spelling is read the same way
    assert not container_violations({"run_as_non_root": True, "allow_privilege_escalation": False,
                                     "capabilities": {"drop": ["ALL"]},
                                     "seccomp_profile": {"type": "RuntimeDefault"}})


def test_every_component_meets_pod_security_restricted(values: dict[str, Any]) -> None:
    problems = {name: pod_violations(pod or {}) + container_violations(container or {})
                for name, (pod, container) in components(values).items()}
    assert not {name: found for name, found in problems.items() if found}
    # The chart gives a pod's init containers (wait for PostgreSQL / the code server) the same
    # container context as its main one, so nothing else needs to be set for them.


def test_run_monitoring_frees_slots_of_dead_runs(values: dict[str, Any]) -> None:
    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] is True
    monitoring = daemon["runMonitoring"]
    assert monitoring["enabled"] is True
    # The chart renders a missing freeSlotsAfterRunEndSeconds as its default, 0: never freed.
    assert monitoring["freeSlotsAfterRunEndSeconds"] > 0
    assert 0 < monitoring["pollIntervalSeconds"] <= monitoring["freeSlotsAfterRunEndSeconds"]
    assert monitoring["startTimeoutSeconds"] > 0
    assert monitoring["maxResumeRunAttempts"] == 0


def test_run_resources_are_not_replaced_by_the_code_servers(values: dict[str, Any]) -> None:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_resources = launcher["resources"]
    for deployment in deployments(values):
        include = deployment.get("includeConfigInLaunchedRuns", {"enabled": True})  # the chart's default
        if include.get("enabled", True) and deployment.get("resources"):
            assert deployment["resources"] == run_resources, (
                f"{deployment['name']}: with includeConfigInLaunchedRuns its resources replace the "
                "run launcher's in every run pod")
    # Nor by a container_config of the run launcher's own run_k8s_config.
    container_config = launcher.get("runK8sConfig", {}).get("containerConfig", {}) or {}
    assert "resources" not in container_config


def test_runs_still_get_the_code_locations_env_and_secrets(values: dict[str, Any]) -> None:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher_env = dict(item.split("=", 1) for item in launcher.get("envVars", []))
    launcher_secrets = {s["name"] for s in launcher.get("envSecrets", [])}
    for deployment in deployments(values):
        if deployment.get("includeConfigInLaunchedRuns", {"enabled": True}).get("enabled", True):
            continue  # the chart passes them itself
        env = {item["name"]: item["value"] for item in deployment.get("env", [])}
        assert env == launcher_env, f"{deployment['name']}: runs would see other env than the code server"
        assert {s["name"] for s in deployment.get("envSecrets", [])} <= launcher_secrets


def measured_peak_mib() -> float:
    """The largest peak RSS docs/performance.md reports (the 365-day, three-practice backfill)."""
    peaks = [float(m.replace(",", "")) for m in
             re.findall(r"peak RSS ([\d,]+(?:\.\d+)?) MB", PERFORMANCE_DOC.read_text(encoding="utf-8"))]
    assert peaks, "docs/performance.md reports no peak RSS"
    return max(peaks) * 1_000_000 / MIB


def test_run_pods_are_sized_for_the_longest_backfill(values: dict[str, Any]) -> None:
    resources = values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    limit = parse_quantity(resources["limits"]["memory"]) / MIB
    request = parse_quantity(resources["requests"]["memory"]) / MIB
    peak = measured_peak_mib()
    assert peak > 900  # the parse found the 1,056 MB figure, not a smaller one
    assert limit >= 1.5 * peak, f"limit {limit:.0f} MiB leaves too little headroom over {peak:.0f} MiB"
    # Requested what it uses, so the scheduler reserves it and memory pressure does not evict it first.
    assert request == limit
    assert "cpu" not in resources.get("limits", {})  # throttling an hour-long backfill helps nobody


def test_quantities_parse_like_kubernetes() -> None:
    assert parse_quantity("2Gi") == 2 * 1024**3
    assert parse_quantity("512Mi") == 512 * MIB
    assert parse_quantity("1G") == 10**9
    assert parse_quantity("250m") == 0.25
    assert parse_quantity("1") == 1


def test_the_check_render_script_is_documented() -> None:
    doc = (PROJECT_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert "deploy/helm/check_render.py" in doc
    assert CHECK_RENDER.is_file()
