"""Helpers for end-to-end tests of the plugin: run the CLI as a user would, and find what a run left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

from tests.controlplane.patience import patience

REPO = Path(__file__).resolve().parents[2]
#: Every object a run creates carries its run id; a requested output ConfigMap (cm://) does not, it is the result.
MANAGED = "aicr.nvidia.com/run-id"


def cli_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "AICR_"))}
    env.update(KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(kubeconfig: Path, *args: str, timeout: float = patience(60), stdin: bytes | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
    """``kubectl aicr ARGS`` as a subprocess (the real entry point, exit code and stderr)."""
    return subprocess.run([sys.executable, "-m", "kubectl_aicr", *args], cwd=REPO, env=cli_env(kubeconfig, **env),
                          input=stdin.decode() if stdin else None, capture_output=True, text=True, timeout=timeout)


def popen_cli(kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kubectl_aicr", *args], cwd=REPO, env=cli_env(kubeconfig),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def leftovers(api: client.ApiClient) -> list[str]:
    """Every object any kubectl-aicr run created that still exists (pods included), cluster-wide."""
    core, batch, rbac = client.CoreV1Api(api), client.BatchV1Api(api), client.RbacAuthorizationV1Api(api)
    found: list[str] = []
    for kind, fn in [("Job", batch.list_job_for_all_namespaces), ("Pod", core.list_pod_for_all_namespaces),
                     ("ServiceAccount", core.list_service_account_for_all_namespaces),
                     ("ConfigMap", core.list_config_map_for_all_namespaces),
                     ("Role", rbac.list_role_for_all_namespaces),
                     ("RoleBinding", rbac.list_role_binding_for_all_namespaces),
                     ("ClusterRole", rbac.list_cluster_role), ("ClusterRoleBinding", rbac.list_cluster_role_binding)]:
        for o in fn(label_selector=MANAGED).items:
            found.append(f"{kind} {o.metadata.namespace or ''}/{o.metadata.name}")
    for o in core.list_namespace(label_selector=MANAGED).items:
        found.append(f"Namespace {o.metadata.name}")
    return sorted(found)


@pytest.fixture
def no_leftovers(api_client: client.ApiClient) -> Iterator[Callable[[], list[str]]]:
    """Asserts, after the test, that nothing created by the plugin is left in the cluster."""
    before = leftovers(api_client)
    assert before == [], f"objects left by an earlier test: {before}"
    yield lambda: leftovers(api_client)
    after = leftovers(api_client)
    assert after == [], f"the run left objects behind: {after}"


def measurement(doc: dict[str, Any], mtype: str, subtype: str) -> dict[str, Any]:
    for m in doc["measurements"]:
        if m["type"] == mtype:
            for s in m.get("subtypes") or []:
                if s["subtype"] == subtype:
                    return s
    raise AssertionError(f"{mtype}/{subtype} not in snapshot")
