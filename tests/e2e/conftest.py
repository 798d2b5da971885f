"""Helpers for end-to-end tests of the plugin: run the CLI as a user would, and find what a run left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.patience import patience
from tests.procs import terminal_signals

REPO = Path(__file__).resolve().parents[2]
#: Every object a run creates carries its run id; a requested output ConfigMap (cm://) does not, it is the result.
MANAGED = "aicr.nvidia.com/run-id"


def cli_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "AICR_"))}
    env.update(KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(
    kubeconfig: Path, *args: str, timeout: float = patience(60), stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``kubectl aicr ARGS`` as a subprocess (the real entry point, exit code and stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "kubectl_aicr", *args],
        cwd=REPO,
        env=cli_env(kubeconfig, **env),
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=terminal_signals,
    )


def popen_cli(kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    """The CLI running in the background; SIGABRT makes it print every thread's stack (see :func:`stuck_report`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "kubectl_aicr", *args],
        cwd=REPO,
        env=cli_env(kubeconfig, PYTHONFAULTHANDLER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal_signals,
    )


def stuck_report(p: subprocess.Popen[str]) -> str:
    """End a CLI that did not exit in time and return its stderr, with the stack of every thread at that moment
    (faulthandler, enabled by :func:`popen_cli`), so a failure says where it hung."""
    p.send_signal(signal.SIGABRT)
    try:
        _, err = p.communicate(timeout=patience(5))
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return err


def leftovers(api: client.ApiClient) -> list[str]:
    """Every object any kubectl-aicr run created that still exists (pods included), cluster-wide."""
    core, batch, rbac = client.CoreV1Api(api), client.BatchV1Api(api), client.RbacAuthorizationV1Api(api)
    found: list[str] = []
    for kind, fn in [
        ("Job", batch.list_job_for_all_namespaces),
        ("Pod", core.list_pod_for_all_namespaces),
        ("ServiceAccount", core.list_service_account_for_all_namespaces),
        ("ConfigMap", core.list_config_map_for_all_namespaces),
        ("Role", rbac.list_role_for_all_namespaces),
        ("RoleBinding", rbac.list_role_binding_for_all_namespaces),
        ("ClusterRole", rbac.list_cluster_role),
        ("ClusterRoleBinding", rbac.list_cluster_role_binding),
    ]:
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
    if after:
        _sweep(api_client)  # report this test's leak once; the next test starts clean
    assert after == [], f"the run left objects behind: {after}"


def _sweep(api: client.ApiClient) -> None:
    """Delete every object a run left behind (by the run-id label), so one failure does not fail the tests after."""
    core, batch, rbac = client.CoreV1Api(api), client.BatchV1Api(api), client.RbacAuthorizationV1Api(api)
    kinds: list[tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]] = [
        (batch.list_job_for_all_namespaces, batch.delete_namespaced_job, {"propagation_policy": "Background"}),
        (core.list_pod_for_all_namespaces, core.delete_namespaced_pod, {"grace_period_seconds": 0}),
        (core.list_service_account_for_all_namespaces, core.delete_namespaced_service_account, {}),
        (core.list_config_map_for_all_namespaces, core.delete_namespaced_config_map, {}),
        (rbac.list_role_for_all_namespaces, rbac.delete_namespaced_role, {}),
        (rbac.list_role_binding_for_all_namespaces, rbac.delete_namespaced_role_binding, {}),
        (rbac.list_cluster_role, rbac.delete_cluster_role, {}),
        (rbac.list_cluster_role_binding, rbac.delete_cluster_role_binding, {}),
        (core.list_namespace, core.delete_namespace, {}),
    ]
    for lister, deleter, options in kinds:
        for o in lister(label_selector=MANAGED).items:
            where = (o.metadata.namespace,) if o.metadata.namespace else ()
            try:
                deleter(o.metadata.name, *where, **options)
            except ApiException as exc:
                if exc.status != 404:
                    raise
    deadline = time.monotonic() + patience(15)
    while leftovers(api) and time.monotonic() < deadline:
        time.sleep(0.5)


def measurement(doc: dict[str, Any], mtype: str, subtype: str) -> dict[str, Any]:
    for m in doc["measurements"]:
        if m["type"] == mtype:
            for s in m.get("subtypes") or []:
                if s["subtype"] == subtype:
                    return s
    raise AssertionError(f"{mtype}/{subtype} not in snapshot")
