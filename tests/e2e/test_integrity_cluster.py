"""Integrity and least privilege on the real control plane (issue 13): forged snapshots are refused, cleanup
touches only our own objects, ``-o cm://`` never clobbers a stranger's ConfigMap, every request times out,
an API outage is survived, the agent holds no cluster-wide permission, a deleted node is named as such, and
``--dry-run`` creates nothing.

Every test also checks (fixture ``no_leftovers``) that nothing the run created is left in the cluster.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.faults import FaultProxy, proxied_kubeconfig
from tests.controlplane.handle import ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.patience import LONG_CLI_TIMEOUT, patience
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import MANAGED, measurement, popen_cli, run_cli

pytestmark = pytest.mark.controlplane
REAL_AGENT = Path(sys.executable).parent / "kubectl-aicr"
FORGED = (
    "kind: Snapshot\napiVersion: aicr.nvidia.com/v1alpha1\nmetadata: {run-id: zzzzzz, source-node: gpu-h100-1}\n"
    "measurements:\n- type: GPU\n  subtypes:\n  - subtype: smi\n    data: {driver: FORGED-999}\n"
)


def _local_only(cluster: TestCluster) -> None:
    if not cluster.is_local:
        pytest.skip("needs the process kubelet and client-certificate users")


def _agent_override(kubelet: ProcessKubelet, node: str, script: str) -> None:
    path = kubelet.node_dir(node) / "bin" / "kubectl-aicr"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def own_node(make_kubelet: Callable[..., ProcessKubelet]) -> tuple[ProcessKubelet, str]:
    name = unique("gpu-int")
    return make_kubelet([gpu_node(name, H100_XML)]), name


def _editor(cluster: TestCluster, api: client.ApiClient, namespace: str) -> client.CoreV1Api:
    """A client for a user holding only the built-in ``edit`` role in ``namespace``."""
    plane = cluster.kubelet.plane  # type: ignore[union-attr]
    user = unique("mallory")
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"{user}-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    conf = client.Configuration()
    from kubernetes import config as kube_config

    kube_config.load_kube_config(config_file=str(plane.make_user_kubeconfig(user)), client_configuration=conf)
    return client.CoreV1Api(client.ApiClient(conf))


def _staging(core: client.CoreV1Api, namespace: str, pred: Callable[[Any], bool], timeout: float) -> Any:
    """Wait for the run's staging ConfigMap to satisfy ``pred``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for cm in core.list_namespaced_config_map(namespace, label_selector=MANAGED).items:
            if cm.metadata.name.endswith("-snapshot") and pred(cm):
                return cm
        time.sleep(0.05)
    raise AssertionError("the staging ConfigMap never reached the expected state")


def _finish(p: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """``communicate``, but a run that hangs fails the test with what it printed."""
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGABRT)  # with PYTHONFAULTHANDLER=1 in the environment: every thread's stack
        time.sleep(1)
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"the CLI did not finish; stderr:\n{err}") from None


def _snap(cluster: TestCluster, namespace: str, node: str, *args: str) -> subprocess.Popen[str]:
    return popen_cli(
        cluster.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        LONG_CLI_TIMEOUT,
        "--node-selector",
        f"kubernetes.io/hostname={node}",
        *args,
    )


# ------------------------------------------------------------------ item 3: forged snapshots


def test_staging_configmap_patched_after_the_agent_wrote_is_refused(
    cluster: TestCluster,
    namespace: str,
    own_node: Any,
    api_client: client.ApiClient,
    no_leftovers: Callable[[], list[str]],
) -> None:
    _local_only(cluster)
    kubelet, node = own_node
    # The real agent, then a pause before the pod ends: the window in which an editor patches the result.
    _agent_override(kubelet, node, f'"{REAL_AGENT}" "$@" || exit $?\nsleep 4\n')
    mallory = _editor(cluster, api_client, namespace)
    p = _snap(cluster, namespace, node)
    cm = _staging(client.CoreV1Api(api_client), namespace, lambda c: "snapshot.yaml" in (c.data or {}), patience(30))
    mallory.patch_namespaced_config_map(cm.metadata.name, namespace, {"data": {"snapshot.yaml": FORGED}})
    out, err = _finish(p, patience(60))
    assert p.returncode == 7, err
    assert "refusing the snapshot" in err and "changed after the agent wrote it" in err
    assert "FORGED" not in out and out == ""


def test_staging_configmap_recreated_by_someone_else_is_refused_and_left_alone(
    cluster: TestCluster,
    namespace: str,
    own_node: Any,
    api_client: client.ApiClient,
    no_leftovers: Callable[[], list[str]],
) -> None:
    _local_only(cluster)
    kubelet, node = own_node
    _agent_override(kubelet, node, f'sleep 3\nexec "{REAL_AGENT}" "$@"\n')  # starts after the swap below
    mallory = _editor(cluster, api_client, namespace)
    p = _snap(cluster, namespace, node)
    cm = _staging(client.CoreV1Api(api_client), namespace, lambda c: "node-facts.json" in (c.data or {}), patience(30))
    name = cm.metadata.name
    mallory.delete_namespaced_config_map(name, namespace)
    # Same name and data (node facts included), a stranger's object: no run label, so not a leftover of ours.
    mallory.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": dict(cm.data)})
    out, err = _finish(p, patience(60))
    assert p.returncode == 7, err
    assert "deleted and re-created by someone else" in err
    assert f"ConfigMap {name} was replaced by someone else; left it alone" in err
    # Our cleanup did not delete the stranger's ConfigMap (UID precondition).
    assert client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace).metadata.uid != cm.metadata.uid


def test_snapshot_names_this_run_and_node_and_the_agent_reads_nothing_cluster_wide(
    cluster: TestCluster,
    namespace: str,
    own_node: Any,
    api_client: client.ApiClient,
    no_leftovers: Callable[[], list[str]],
) -> None:
    _local_only(cluster)
    kubelet, node = own_node
    # Keep the pod (and its RBAC) alive a moment after the write, and ask the API what its SA may do.
    _agent_override(kubelet, node, f'"{REAL_AGENT}" "$@" || exit $?\nsleep 3\n')
    p = _snap(cluster, namespace, node)
    core = client.CoreV1Api(api_client)
    _staging(core, namespace, lambda c: "snapshot.yaml" in (c.data or {}), patience(30))
    sa = next(s.metadata.name for s in core.list_namespaced_service_account(namespace, label_selector=MANAGED).items)
    user = f"system:serviceaccount:{namespace}:{sa}"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    authz = client.AuthorizationV1Api(api_client)

    def may(verb: str, resource: str, ns: str | None = None, group: str = "", name: str | None = None) -> bool:
        review = authz.create_subject_access_review(
            {
                "spec": {
                    "user": user,
                    "groups": groups,
                    "resourceAttributes": {
                        "verb": verb,
                        "resource": resource,
                        "group": group,
                        "namespace": ns,
                        "name": name,
                    },
                }
            }
        )
        return bool(review.status.allowed)

    assert not may("list", "pods"), "the agent must not read pod specs anywhere"
    assert not may("list", "pods", namespace)
    assert not may("get", "nodes", name=node) and not may("list", "nodes")
    assert not may("list", "clusterpolicies", group="nvidia.com")
    assert not may("get", "configmaps", namespace, name="kube-root-ca.crt")
    assert not may("get", "secrets", namespace) and not may("list", "secrets")
    assert may(
        "patch",
        "configmaps",
        namespace,
        name=next(c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector=MANAGED).items),
    )
    rbac = client.RbacAuthorizationV1Api(api_client)
    assert rbac.list_cluster_role(label_selector=MANAGED).items == []
    assert rbac.list_cluster_role_binding(label_selector=MANAGED).items == []
    out, err = _finish(p, patience(60))
    assert p.returncode == 0, err
    doc = yaml.safe_load(out)
    assert doc["metadata"]["source-node"] == node and len(doc["metadata"]["run-id"]) == 6
    # The node facts came from the CLI: this node, its images (status.images, not pod specs), cluster counts.
    assert measurement(doc, "K8s", "node")["data"]["source-node"] == node
    image = measurement(doc, "K8s", "image")
    assert "status.images" in image["context"]["source"] and image["context"]["status"] == "ok"
    assert measurement(doc, "K8s", "cluster")["data"]["node-count"] >= 1


# ------------------------------------------------------------------ item 4: -o cm:// never clobbers


def test_output_configmap_that_is_not_ours_is_refused_unless_overwrite(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient, no_leftovers: Callable[[], list[str]]
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "coredns"}, "data": {"Corefile": ".:53 {}"}})
    r = run_cli(
        cluster.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        LONG_CLI_TIMEOUT,
        "-o",
        f"cm://{namespace}/coredns",
    )
    assert r.returncode == 2, r.stderr
    assert f"cm://{namespace}/coredns exists and is not a kubectl-aicr snapshot (keys: Corefile)" in r.stderr
    assert "creating Job" not in r.stderr, "refused before anything was created"
    assert core.read_namespaced_config_map("coredns", namespace).data == {"Corefile": ".:53 {}"}
    # Our own snapshot ConfigMap is replaced without --overwrite; a stranger's only with it.
    for target, extra in (("mine", ()), ("mine", ()), ("coredns", ("--overwrite",))):
        r = run_cli(
            cluster.kubeconfig,
            "snapshot",
            "-n",
            namespace,
            "--image",
            cluster.agent_image,
            "--timeout",
            LONG_CLI_TIMEOUT,
            "-o",
            f"cm://{namespace}/{target}",
            *extra,
        )
        assert r.returncode == 0, r.stderr
    assert "snapshot.yaml" in core.read_namespaced_config_map("mine", namespace).data
    assert "Corefile" not in core.read_namespaced_config_map("coredns", namespace).data


# ------------------------------------------------------------------ items 2 and 5: timeouts, outages


def test_server_that_accepts_and_never_answers_fails_within_the_timeout(
    cluster: TestCluster, tmp_path: Path, no_leftovers: Callable[[], list[str]]
) -> None:
    with FaultProxy(None) as hole:
        kubeconfig = proxied_kubeconfig(cluster.kubeconfig, hole.url, tmp_path)
        # Without real timeouts both runs hung (400 s and more): the subprocess guard would fire.
        r = run_cli(kubeconfig, "snapshot", "--timeout", "6s", "--request-timeout", "2", timeout=patience(30))
        assert r.returncode in (5, 6), r.stderr
        assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
        assert "did not answer in time" in r.stderr or "deadline (--timeout) passed" in r.stderr
        v = run_cli(kubeconfig, "validate", "cm://default/x", "--request-timeout", "1", timeout=patience(30))
        assert v.returncode == 6 and "did not answer in time" in v.stderr, v.stderr
        assert hole.connections >= 2


@pytest.mark.parametrize("when", ["mid-wait", "at-cleanup"])
def test_api_outage_of_three_seconds_is_survived(
    cluster: TestCluster,
    namespace: str,
    own_node: Any,
    control_plane: Any,
    tmp_path: Path,
    when: str,
    no_leftovers: Callable[[], list[str]],
) -> None:
    """What the CLI sees of an API server restart: refused connections and reset streams for ~3 s."""
    _local_only(cluster)
    kubelet, node = own_node
    _agent_override(kubelet, node, f'sleep 5\nexec "{REAL_AGENT}" "$@"\n')
    with FaultProxy(("127.0.0.1", control_plane.api_port)) as proxy:
        kubeconfig = proxied_kubeconfig(cluster.kubeconfig, proxy.url, tmp_path)
        p = popen_cli(
            kubeconfig,
            "snapshot",
            "-n",
            namespace,
            "--image",
            cluster.agent_image,
            "--timeout",
            LONG_CLI_TIMEOUT,
            "--node-selector",
            f"kubernetes.io/hostname={node}",
            "-o",
            str(tmp_path / "snap.yaml"),
        )
        assert p.stderr is not None
        seen = ""
        trigger = "Running on" if when == "mid-wait" else "written to"
        end = time.monotonic() + patience(30)
        while trigger not in seen and time.monotonic() < end:
            line = p.stderr.readline()
            if not line:
                break
            seen += line
        assert trigger in seen, seen
        proxy.outage(3.0)
        rest = _finish(p, patience(60))[1]
        assert proxy.resets >= 1 or when == "at-cleanup"
    err = seen + rest
    assert p.returncode == 0, err
    assert "cleaned up" in err and "left objects behind" not in err, err
    assert yaml.safe_load((tmp_path / "snap.yaml").read_text())["metadata"]["source-node"] == node


# ------------------------------------------------------------------ item 15: a node that goes away


def test_deleted_node_is_reported_as_gone(
    cluster: TestCluster, namespace: str, own_node: Any, no_leftovers: Callable[[], list[str]]
) -> None:
    _local_only(cluster)
    kubelet, node = own_node
    _agent_override(kubelet, node, "exec sleep 300\n")
    p = _snap(cluster, namespace, node)
    assert p.stderr is not None
    seen = ""
    end = time.monotonic() + patience(30)
    while "Running on" not in seen and time.monotonic() < end:
        seen += p.stderr.readline()
    assert "Running on" in seen, seen
    kubelet.stop()  # the node's kubelet unregisters: the Node is deleted, nobody reports the pod any more
    err = seen + _finish(p, patience(60))[1]
    assert p.returncode == 7, err
    assert f"node {node} went away" in err
    assert "left objects behind" not in err


# ------------------------------------------------------------------ item 6: no credentials from ClusterPolicy


def test_cluster_policy_env_values_and_credentials_are_redacted(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient, no_leftovers: Callable[[], list[str]]
) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    crd_name = "clusterpolicies.nvidia.com"
    try:
        ext.create_custom_resource_definition(
            {
                "metadata": {"name": crd_name},
                "spec": {
                    "group": "nvidia.com",
                    "scope": "Cluster",
                    "names": {"plural": "clusterpolicies", "singular": "clusterpolicy", "kind": "ClusterPolicy"},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    ],
                },
            }
        )
    except ApiException as e:
        if e.status != 409:
            raise
    custom = client.CustomObjectsApi(api_client)
    policy = unique("gpu-policy")
    end = time.monotonic() + patience(10)
    while True:
        try:
            custom.create_cluster_custom_object(
                "nvidia.com",
                "v1",
                "clusterpolicies",
                {
                    "apiVersion": "nvidia.com/v1",
                    "kind": "ClusterPolicy",
                    "metadata": {"name": policy},
                    "spec": {
                        "driver": {
                            "version": "570.86.16",
                            "env": [
                                {"name": "HTTPS_PROXY", "value": "http://proxyuser:S3cretProxyPw@proxy:3128"},
                                {"name": "NGC_API_KEY", "value": "nvapi-TOPSECRET"},
                                {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "ngc", "key": "token"}}},
                            ],
                        },
                        "toolkit": {"repoConfig": {"password": "hunter2", "configMapName": "repo"}},
                    },
                },
            )
            break
        except ApiException as e:
            if e.status != 404 or time.monotonic() > end:
                raise
            time.sleep(0.2)  # the CRD is not served yet
    try:
        r = run_cli(
            cluster.kubeconfig,
            "snapshot",
            "-n",
            namespace,
            "--image",
            cluster.agent_image,
            "--timeout",
            LONG_CLI_TIMEOUT,
            "--format",
            "json",
        )
        assert r.returncode == 0, r.stderr
        for secret in ("S3cretProxyPw", "proxyuser", "TOPSECRET", "hunter2"):
            assert secret not in r.stdout
        data = measurement(json.loads(r.stdout), "K8s", "policy")["data"]
        keys = {k for k in data}
        assert any(k.endswith("driver.env") for k in keys), keys
        env = json.loads(next(v for k, v in data.items() if k.endswith("driver.env")))
        assert [e["name"] for e in env] == ["HTTPS_PROXY", "NGC_API_KEY", "FROM_SECRET"]
        assert env[2]["valueFrom"]["secretKeyRef"]["name"] == "ngc"
        assert next(v for k, v in data.items() if k.endswith("driver.version")) == "570.86.16"
    finally:
        custom.delete_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", policy)


# ------------------------------------------------------------------ extras: --dry-run, --as, --token


def test_dry_run_client_prints_every_manifest_and_creates_nothing(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient, no_leftovers: Callable[[], list[str]]
) -> None:
    r = run_cli(cluster.kubeconfig, "snapshot", "-n", namespace, "--image", cluster.agent_image, "--dry-run=client")
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all(r.stdout))
    assert [d["kind"] for d in docs] == ["Job", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"]
    assert all(d["metadata"]["namespace"] == namespace for d in docs)
    assert "nothing was created" in r.stderr
    assert client.BatchV1Api(api_client).list_namespaced_job(namespace).items == []


def test_dry_run_server_lets_admission_answer_and_creates_nothing(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient, no_leftovers: Callable[[], list[str]]
) -> None:
    r = run_cli(cluster.kubeconfig, "snapshot", "-n", namespace, "--image", cluster.agent_image, "--dry-run=server")
    assert r.returncode == 0, r.stderr
    assert "accepted 5 objects with dryRun=All" in r.stderr
    assert [d["kind"] for d in yaml.safe_load_all(r.stdout)][0] == "Job"
    # A quota that allows no Job: the API server refuses it, and still nothing exists.
    core = client.CoreV1Api(api_client)
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-jobs"}, "spec": {"hard": {"count/jobs.batch": "0"}}}
    )
    end = time.monotonic() + patience(10)
    while True:
        r = run_cli(cluster.kubeconfig, "snapshot", "-n", namespace, "--image", cluster.agent_image, "--dry-run=server")
        if r.returncode != 0 or time.monotonic() > end:
            break
        time.sleep(0.5)  # the quota controller has not computed usage yet
    assert r.returncode == 4, r.stderr
    assert "exceeded quota" in r.stderr and r.stderr.count("error:") == 1
    assert client.BatchV1Api(api_client).list_namespaced_job(namespace).items == []


def test_impersonation_and_token_flags(
    cluster: TestCluster,
    namespace: str,
    api_client: client.ApiClient,
    tmp_path: Path,
    no_leftovers: Callable[[], list[str]],
) -> None:
    core = client.CoreV1Api(api_client)
    r = run_cli(
        cluster.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        LONG_CLI_TIMEOUT,
        "-o",
        f"cm://{namespace}/base",
    )
    assert r.returncode == 0, r.stderr
    src = f"cm://{namespace}/base"
    nobody = unique("nobody")
    r = run_cli(cluster.kubeconfig, "validate", src, "--as", nobody)
    assert r.returncode == 4 and "forbidden" in r.stderr.lower(), r.stderr
    r = run_cli(
        cluster.kubeconfig, "validate", src, "--as", nobody, "--as-group", "dev", "--as-group", "system:masters"
    )
    assert r.returncode == 0, r.stderr
    r = run_cli(cluster.kubeconfig, "validate", src, "--as-group", "system:masters")
    assert r.returncode == 2 and "--as-group needs --as" in r.stderr
    # --token: a ServiceAccount that may read ConfigMaps here, and a bogus token.
    sa = unique("reader")
    core.create_namespaced_service_account(namespace, {"metadata": {"name": sa}})
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": sa},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token(
        sa, namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    plane_cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    # A kubeconfig user without credentials of its own: the token is the only one sent.
    plane_cfg["users"].append({"name": "empty", "user": {}})
    cfg_path = tmp_path / "token.kubeconfig"
    cfg_path.write_text(yaml.safe_dump(plane_cfg))
    r = run_cli(cfg_path, "validate", src, "--user", "empty", "--token", token)
    assert r.returncode == 0, r.stderr
    r = run_cli(cfg_path, "validate", src, "--user", "empty", "--token", "not-a-token")
    assert r.returncode == 4 and "401" in r.stderr, r.stderr
    r = run_cli(cfg_path, "validate", src, "--user", "no-such-user")
    assert r.returncode == 3 and "--user 'no-such-user'" in r.stderr
    core.delete_namespaced_config_map("base", namespace)


# ------------------------------------------------------------------ item 7: collectable after SIGKILL


def test_everything_is_collectable_after_sigkill(
    cluster: TestCluster,
    namespace: str,
    own_node: Any,
    api_client: client.ApiClient,
    no_leftovers: Callable[[], list[str]],
) -> None:
    _local_only(cluster)
    kubelet, node = own_node
    _agent_override(kubelet, node, "exec sleep 300\n")
    p = _snap(cluster, namespace, node)
    assert p.stderr is not None
    seen = ""
    end = time.monotonic() + patience(30)
    while "Running on" not in seen and time.monotonic() < end:
        seen += p.stderr.readline()
    assert "Running on" in seen, seen
    p.kill()  # no cleanup runs
    p.communicate()
    rbac = client.RbacAuthorizationV1Api(api_client)
    assert rbac.list_cluster_role(label_selector=MANAGED).items == []
    assert rbac.list_cluster_role_binding(label_selector=MANAGED).items == []
    # What the Job's TTL (or activeDeadlineSeconds) controller does later, done now: the garbage collector
    # takes every other object with it, because each is owned by the Job.
    batch = client.BatchV1Api(api_client)
    (job,) = batch.list_namespaced_job(namespace, label_selector=MANAGED).items
    batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")
    end = time.monotonic() + patience(30)
    while no_leftovers() and time.monotonic() < end:
        time.sleep(0.3)
    assert no_leftovers() == []
