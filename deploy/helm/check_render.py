"""Render Dagster's Helm chart with deploy/helm/values.yaml and check what comes out.

    python deploy/helm/check_render.py [--release NAME] [--namespace NS] [--chart CHART --version V]
    helm template ... | python deploy/helm/check_render.py --rendered -

Needs helm (3 or 4) on PATH unless `--rendered` gives the manifests. Checks, for any release name:

1. the instance config the chart writes (the `<fullname>-instance` ConfigMap): run monitoring on
   with nonzero slot freeing, the same `concurrency` block as dagster.yaml, no queue limit under
   `run_coordinator`, the K8sRunLauncher;
2. every pod the chart renders (Deployments, Jobs, hook pods), init containers included, against
   Pod Security "restricted": runAsNonRoot, allowPrivilegeEscalation false, capabilities drop ALL,
   seccompProfile RuntimeDefault (a container's own context overriding its pod's, as Kubernetes
   applies them);
3. the run pods, which helm does not render (the K8sRunLauncher creates them at run time): their
   container config is computed the way dagster-k8s does it, the run launcher's config merged with
   each code location's container context (`DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT`, set by the chart
   when `includeConfigInLaunchedRuns` is on). With dagster-k8s installed its own
   `K8sContainerContext.merge` does it; without, a copy of its rule (the code location's
   `container_config` wins key by key). The resulting resources must be the run launcher's.

Exit status 0 when every check passes; the relevant pieces are printed either way.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DEV_YAML = ROOT / "dagster.yaml"
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9,
            "T": 10**12, "m": 0.001}


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes quantity ("2Gi", "500m", "1G") as a number of bytes or cores."""
    match = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(text).strip())
    if not match or (match.group(2) and match.group(2) not in SUFFIXES):
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(match.group(1)) * SUFFIXES.get(match.group(2), 1)


def camel(node: Any) -> Any:
    """dagster-k8s keeps k8s config snake_case (`run_as_non_root`); the checks read camelCase."""
    if isinstance(node, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), str(k)): camel(v) for k, v in node.items()}
    if isinstance(node, list):
        return [camel(item) for item in node]
    return node


def pod_violations(ctx: dict[str, Any]) -> list[str]:
    """What Pod Security "restricted" refuses in a pod-level securityContext taken on its own."""
    ctx = camel(ctx or {})
    found = []
    if ctx.get("runAsNonRoot") is not True:
        found.append("runAsNonRoot is not true")
    if ctx.get("runAsUser") == 0:
        found.append("runAsUser is 0 (root)")
    if (ctx.get("seccompProfile") or {}).get("type") not in ALLOWED_SECCOMP:
        found.append("seccompProfile.type is not RuntimeDefault/Localhost")
    return found


def container_violations(ctx: dict[str, Any]) -> list[str]:
    """What Pod Security "restricted" refuses in a container securityContext taken on its own."""
    ctx = camel(ctx or {})
    found = pod_violations(ctx)
    if ctx.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    capabilities = ctx.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append("capabilities.drop lacks ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        found.append("capabilities.add beyond NET_BIND_SERVICE")
    if ctx.get("privileged"):
        found.append("privileged")
    return found


def effective_violations(pod_ctx: dict[str, Any], container_ctx: dict[str, Any]) -> list[str]:
    """A container as Kubernetes runs it: its own context over its pod's (for the fields both have)."""
    pod_ctx, container_ctx = camel(pod_ctx or {}), camel(container_ctx or {})
    merged = {**{k: pod_ctx[k] for k in ("runAsNonRoot", "runAsUser", "seccompProfile") if k in pod_ctx},
              **container_ctx}
    return container_violations(merged)


def pod_specs(documents: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in documents:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind in POD_KINDS:
            yield f"{kind}/{name}", doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield f"{kind}/{name}", doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield f"{kind}/{name}", doc["spec"]


def check_pods(documents: list[dict[str, Any]]) -> list[str]:
    problems = []
    for where, spec in pod_specs(documents):
        pod_ctx = spec.get("securityContext") or {}
        for section in ("initContainers", "containers"):
            for container in spec.get(section) or []:
                found = effective_violations(pod_ctx, container.get("securityContext") or {})
                status = "ok" if not found else "; ".join(found)
                print(f"  {where} {section}[{container['name']}]: {status}")
                problems += [f"{where} {container['name']}: {item}" for item in found]
    return problems


def instance_config(documents: list[dict[str, Any]]) -> dict[str, Any]:
    found = [doc for doc in documents if doc.get("kind") == "ConfigMap"
             and doc["metadata"]["name"].endswith("-instance") and "dagster.yaml" in doc.get("data", {})]
    if len(found) != 1:
        raise SystemExit(f"expected one <fullname>-instance ConfigMap, found {len(found)}")
    print(f"instance ConfigMap: {found[0]['metadata']['name']}")
    return yaml.safe_load(found[0]["data"]["dagster.yaml"])


def check_instance(config: dict[str, Any]) -> list[str]:
    problems = []
    monitoring = config.get("run_monitoring") or {}
    print("  run_monitoring: " + json.dumps(monitoring))
    if monitoring.get("enabled") is not True:
        problems.append("run_monitoring is not enabled")
    for key in ("free_slots_after_run_end_seconds", "poll_interval_seconds", "start_timeout_seconds"):
        if not monitoring.get(key):
            problems.append(f"run_monitoring.{key} is {monitoring.get(key)!r} (0 or unset)")
    expected = yaml.safe_load(DEV_YAML.read_text(encoding="utf-8"))["concurrency"]
    print("  concurrency: " + json.dumps(config.get("concurrency")))
    if config.get("concurrency") != expected:
        problems.append(f"concurrency {config.get('concurrency')} differs from dagster.yaml's {expected}")
    queued = ((config.get("run_coordinator") or {}).get("config") or {})
    if queued.get("max_concurrent_runs") is not None:
        problems.append("run_coordinator sets max_concurrent_runs next to the concurrency block")
    if (config.get("run_launcher") or {}).get("class") != "K8sRunLauncher":
        problems.append("the run launcher is not the K8sRunLauncher")
    return problems


def code_location_contexts(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Each code location's container context as its Deployment passes it to runs (None: not passed)."""
    found: dict[str, dict[str, Any] | None] = {}
    for doc in documents:
        labels = doc.get("metadata", {}).get("labels") or {}
        if doc.get("kind") != "Deployment" or labels.get("component") != "user-deployments":
            continue
        env = {e["name"]: e.get("value") for c in doc["spec"]["template"]["spec"]["containers"]
               for e in c.get("env") or []}
        raw = env.get("DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT") or env.get("DAGSTER_CONTAINER_CONTEXT")
        found[doc["metadata"]["name"]] = json.loads(raw) if raw else None
    return found


SECTIONS = ("container_config", "pod_spec_config", "pod_template_spec_metadata", "job_spec_config",
            "job_metadata")


def _side(top: dict[str, Any], run_k8s_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One side of dagster-k8s's merge: top-level fields put into container_config, then the
    side's own run_k8s_config over them (K8sContainerContext.__new__)."""
    container = {key: top[key] for key in ("resources", "security_context") if top.get(key)}
    base = {section: {} for section in SECTIONS}
    base["container_config"] = container
    return {section: {**base[section], **(run_k8s_config.get(section) or {})} for section in SECTIONS}


def merged_run_config(launcher: dict[str, Any], context: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The run pod's k8s config: the run launcher's, then the code location's over it."""
    user = (context or {}).get("k8s") or {}
    try:
        from dagster_k8s.container_context import K8sContainerContext
        from dagster_k8s.job import UserDefinedDagsterK8sConfig
    except ImportError:
        onto = _side(launcher, launcher.get("run_k8s_config") or {})
        over = _side(user, user.get("run_k8s_config") or {})
        # K8sContainerContext._merge_k8s_config, shallow (the default): dict sections key by key
        return {section: {**onto[section], **over[section]} for section in SECTIONS}
    launcher_context = K8sContainerContext(
        resources=launcher.get("resources"), security_context=launcher.get("security_context"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher.get("run_k8s_config") or {}))
    merged = K8sContainerContext().merge(launcher_context)
    if context:
        merged = merged.merge(K8sContainerContext.create_from_config(context))
    as_dict = merged.run_k8s_config.to_dict()
    return {section: as_dict.get(section) or {} for section in SECTIONS}


def check_run_pods(config: dict[str, Any], documents: list[dict[str, Any]],
                   values: dict[str, Any]) -> list[str]:
    launcher = config["run_launcher"]["config"]
    wanted = values["runLauncher"]["config"]["k8sRunLauncher"].get("resources")
    problems = []
    contexts = code_location_contexts(documents)
    if not contexts:
        problems.append("no code-location Deployment rendered")
    implementation = "dagster-k8s" if _have_dagster_k8s() else "copy of dagster-k8s's rule"
    for name, context in contexts.items():
        run = merged_run_config(launcher, context)
        container = run["container_config"]
        pod_spec = run["pod_spec_config"]
        pod_ctx = pod_spec.get("security_context") or pod_spec.get("securityContext")
        print(f"  run pod launched from {name} (merge: {implementation}, container context "
              f"{'passed' if context else 'not passed'}):")
        print(f"    resources: {json.dumps(container.get('resources'))}")
        print(f"    container securityContext: {json.dumps(container.get('security_context'))}")
        print(f"    pod securityContext: {json.dumps(pod_ctx)}")
        if camel(container.get("resources")) != wanted:
            problems.append(f"run pods from {name} get resources {container.get('resources')}, "
                            f"not the run launcher's {wanted}")
        found = effective_violations(pod_ctx or {}, container.get("security_context") or {})
        problems += [f"run pods from {name}: {item}" for item in found]
    return problems


def _have_dagster_k8s() -> bool:
    try:
        import dagster_k8s  # noqa: F401
    except ImportError:
        return False
    return True


def render(args: argparse.Namespace) -> str:
    if args.rendered:
        return sys.stdin.read() if args.rendered == "-" else Path(args.rendered).read_text(encoding="utf-8")
    command = ["helm", "template", args.release, args.chart, "-n", args.namespace, "-f", str(args.values)]
    if args.version and not Path(args.chart).is_dir():
        command += ["--version", args.version]
    print("$ " + " ".join(command))
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", default="dagster", help="release name (any works; default dagster)")
    parser.add_argument("--namespace", default="biss")
    parser.add_argument("--chart", default="dagster/dagster",
                        help="chart reference or a local chart directory")
    parser.add_argument("--version", default="1.13.27", help="chart version (= Dagster's, pyproject.toml)")
    parser.add_argument("--values", type=Path, default=DEFAULT_VALUES)
    parser.add_argument("--rendered",
                        help="read rendered manifests from this file ('-': stdin) instead of helm")
    args = parser.parse_args(argv)

    values = yaml.safe_load(args.values.read_text(encoding="utf-8"))
    documents = [doc for doc in yaml.safe_load_all(render(args)) if isinstance(doc, dict)]
    print(f"{len(documents)} manifests rendered")
    config = instance_config(documents)
    problems = check_instance(config)
    print("pods (Pod Security restricted):")
    problems += check_pods(documents)
    print("run pods (K8sRunLauncher):")
    problems += check_run_pods(config, documents, values)
    for problem in problems:
        print(f"FAIL {problem}")
    print("all checks passed" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
