"""Smoke tests of the local control plane + process kubelet: the loop the snapshot agent relies on.

Each test states a behaviour of a real cluster that the e2e tests of the agent depend on: in-cluster config
from the mounted SA token, RBAC denials, scheduling failures, image pull failures, failed containers with
logs through the apiserver, deletion and teardown leaving no process behind.
"""

from __future__ import annotations

import json
import os
import textwrap
from fnmatch import fnmatchcase
from typing import Any

import pytest
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.controlplane.cluster import ControlPlane, live_group_members
from tests.controlplane.handle import DEFAULT_IMAGE_ALLOWLIST, ProcessKubelet
from tests.controlplane.nodes import GPU_RESOURCE, GPU_TOLERATION, H100_XML, NVIDIA_SMI_FAIL, gpu_node, xml_facts
from tests.controlplane.patience import patience
from tests.controlplane.testkit import KUBELET_LABEL, TestCluster, pod_manifest, unique
from tests.controlplane.waits import job_finished, wait_for, wait_gone

pytestmark = pytest.mark.controlplane

# Runs inside the pod: standard in-cluster config, then acts with the pod's own SA token.
AGENT_SCRIPT = textwrap.dedent("""
    import json, os, subprocess
    from kubernetes import client, config
    config.load_incluster_config()
    core = client.CoreV1Api()
    ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
    review = client.AuthenticationV1Api().create_self_subject_review({"apiVersion": "authentication.k8s.io/v1",
                                                                      "kind": "SelfSubjectReview"})
    try:
        core.list_namespaced_secret(ns)
        secrets = "allowed"
    except client.exceptions.ApiException as exc:
        secrets = str(exc.status)
    smi = subprocess.run(["nvidia-smi", "-q", "-x"], capture_output=True, text=True)
    driver = smi.stdout.split("<driver_version>")[1].split("<")[0] if smi.returncode == 0 else ""
    core.create_namespaced_config_map(ns, {"metadata": {"name": "agent-result"}, "data": {
        "user": review.status.user_info.username, "secrets": secrets, "driver": driver,
        "node": os.environ["NODE_NAME"], "pod": os.environ["POD_NAME"],
        "env": json.dumps(sorted(os.environ))}})
    print("agent done")
""")


def _waiting_reason(pod: client.V1Pod) -> str:
    statuses = pod.status.container_statuses or []
    return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else ""


def test_job_uses_incluster_config_and_rbac_applies(
    api_client: client.ApiClient, process_kubelet: ProcessKubelet, namespace: str
) -> None:
    """(a)+(b) A GPU Job pod authenticates with its own SA token via load_incluster_config(), writes a
    ConfigMap it was granted, is denied secrets (403), sees its node's nvidia-smi and none of our env."""
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "agent"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "agent"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "agent"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}],
        },
    )
    env = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    pod_spec = pod_manifest(
        "agent",
        ["python3", "-c", AGENT_SCRIPT],
        serviceAccountName="agent",
        tolerations=[GPU_TOLERATION],
        nodeSelector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", KUBELET_LABEL: "default"},
        container={"env": env, "resources": {"limits": {GPU_RESOURCE: "8"}}},
    )["spec"]
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "agent"},
            "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 300, "template": {"spec": pod_spec}},
        },
    )

    job = wait_for(batch.list_namespaced_job, namespace, "agent", job_finished, timeout=patience(11))
    pods = core.list_namespaced_pod(namespace, label_selector="batch.kubernetes.io/job-name=agent").items
    logs = core.read_namespaced_pod_log(pods[0].metadata.name, namespace) if pods else "<no pod>"
    assert job.status.succeeded == 1, f"job failed: {job.status}\nlogs:\n{logs}"
    assert "agent done" in logs

    result = core.read_namespaced_config_map("agent-result", namespace).data
    assert result["user"] == f"system:serviceaccount:{namespace}:agent"
    assert result["secrets"] == "403"
    assert result["node"] == pods[0].spec.node_name
    assert result["node"] in ("gpu-h100-1", "gpu-h100-2", "gpu-h100-tainted")
    assert result["pod"] == pods[0].metadata.name
    assert result["driver"] == xml_facts(H100_XML)["driver"]
    env_keys = set(json.loads(result["env"]))
    assert {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "PATH", "HOME"} <= env_keys
    assert not env_keys & {"KUBECONFIG", "PYTHONPATH", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST"}


def test_non_admin_user_is_denied(control_plane: ControlPlane, namespace: str) -> None:
    """(b) A client-certificate user without bindings is denied by RBAC, as SelfSubjectAccessReview agrees."""
    conf = client.Configuration()
    kube_config.load_kube_config(
        config_file=str(control_plane.make_user_kubeconfig("alice", ["dev"])), client_configuration=conf
    )
    user_api = client.ApiClient(conf)
    review = client.AuthorizationV1Api(user_api).create_self_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, "verb": "list", "resource": "pods"}},
        }
    )
    assert review.status.allowed is False
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(user_api).list_namespaced_pod(namespace)
    assert denied.value.status == 403
    assert 'User "alice" cannot list resource "pods"' in json.loads(denied.value.body)["message"]


def test_unschedulable_pod_stays_pending(
    api_client: client.ApiClient, process_kubelet: ProcessKubelet, namespace: str
) -> None:
    """(c) nodeSelector matching no node: the scheduler reports PodScheduled=False/Unschedulable."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, pod_manifest("nowhere", ["true"], nodeSelector={"aicr.test/no-such": "node"}))
    pod = wait_for(
        core.list_namespaced_pod,
        namespace,
        "nowhere",
        lambda p: any(c.type == "PodScheduled" and c.status == "False" for c in p.status.conditions or []),
        timeout=patience(5),
    )
    cond = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert cond.reason == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in cond.message
    assert pod.status.phase == "Pending" and not pod.spec.node_name


def test_image_outside_allowlist_fails_to_pull(
    api_client: client.ApiClient, process_kubelet: ProcessKubelet, namespace: str
) -> None:
    """(d) An image the kubelet may not "pull": ErrImagePull then ImagePullBackOff naming it; pod Pending."""
    core = client.CoreV1Api(api_client)
    image = "docker.io/library/not-allowed:1.0"
    core.create_namespaced_pod(namespace, pod_manifest("badimage", ["true"], image=image))
    pod = wait_for(
        core.list_namespaced_pod,
        namespace,
        "badimage",
        lambda p: _waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"),
        timeout=patience(5),
    )
    assert image in pod.status.container_statuses[0].state.waiting.message
    pod = wait_for(
        core.list_namespaced_pod,
        namespace,
        "badimage",
        lambda p: _waiting_reason(p) == "ImagePullBackOff",
        timeout=patience(5),
    )
    assert pod.status.phase == "Pending"
    assert f'Back-off pulling image "{image}"' == pod.status.container_statuses[0].state.waiting.message


def test_failing_container_reports_exit_code_and_logs(
    api_client: client.ApiClient, process_kubelet: ProcessKubelet, namespace: str
) -> None:
    """(e) Exit 7: phase Failed, terminated Error/7, message = log tail (FallbackToLogsOnError), logs via API."""
    core = client.CoreV1Api(api_client)
    script = "import sys; print('line one', flush=True); print('boom: collector failed', file=sys.stderr); sys.exit(7)"
    core.create_namespaced_pod(
        namespace,
        pod_manifest(
            "fails", ["python3", "-c", script], container={"terminationMessagePolicy": "FallbackToLogsOnError"}
        ),
    )
    pod = wait_for(
        core.list_namespaced_pod,
        namespace,
        "fails",
        lambda p: p.status.phase in ("Succeeded", "Failed"),
        timeout=patience(5),
    )
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (7, "Error")
    assert "boom: collector failed" in term.message
    assert core.read_namespaced_pod_log("fails", namespace, container="main") == "line one\nboom: collector failed\n"
    assert core.read_namespaced_pod_log("fails", namespace, tail_lines=1) == "boom: collector failed\n"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("fails", namespace, container="nope")
    assert missing.value.status == 400


def test_deletion_and_teardown_leave_no_processes(
    api_client: client.ApiClient, make_kubelet: Any, namespace: str
) -> None:
    """(f) Deleting a running pod kills it and removes the object; stopping a kubelet kills its pods and
    deletes its Nodes; a node's nvidia-smi can be made to fail between runs."""
    core = client.CoreV1Api(api_client)
    node = unique("gpu-own")
    kubelet = make_kubelet([gpu_node(node, H100_XML)])
    selector = {"kubernetes.io/hostname": node}
    # A grace period far beyond any wait below: the pod can only be gone in time if SIGTERM ended it.
    core.create_namespaced_pod(
        namespace,
        pod_manifest("sleeper-1", ["sleep", "300"], nodeSelector=selector, terminationGracePeriodSeconds=3600),
    )
    core.create_namespaced_pod(
        namespace, pod_manifest("sleeper-2", ["sh", "-c", "sleep 300 & wait"], nodeSelector=selector)
    )
    for name in ("sleeper-1", "sleeper-2"):
        wait_for(core.list_namespaced_pod, namespace, name, lambda p: p.status.phase == "Running", timeout=patience(5))
    assert len(kubelet.pod_pgids()) == 2

    core.delete_namespaced_pod("sleeper-1", namespace)  # the API's default: the pod's own 3600 s grace
    wait_gone(core.read_namespaced_pod, namespace, "sleeper-1", timeout=patience(10))
    assert len(kubelet.pod_pgids()) == 1

    kubelet.set_nvidia_smi(node, NVIDIA_SMI_FAIL)
    core.create_namespaced_pod(namespace, pod_manifest("smi", ["nvidia-smi", "-q", "-x"], nodeSelector=selector))
    pod = wait_for(
        core.list_namespaced_pod, namespace, "smi", lambda p: p.status.phase == "Failed", timeout=patience(5)
    )
    assert pod.status.container_statuses[0].state.terminated.exit_code == 9
    assert "NVIDIA-SMI has failed" in core.read_namespaced_pod_log("smi", namespace)

    pgids = kubelet.pod_pgids()
    assert len(pgids) == 1
    kubelet.stop()
    assert [pid for pgid in pgids for pid in live_group_members(pgid)] == []
    wait_gone(core.read_node, None, node, timeout=patience(2))


def test_active_deadline_fails_the_pod(
    api_client: client.ApiClient, process_kubelet: ProcessKubelet, namespace: str
) -> None:
    """Pod-level activeDeadlineSeconds: the kubelet kills the pod and reports Failed/DeadlineExceeded."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, pod_manifest("late", ["sleep", "300"], activeDeadlineSeconds=1))
    pod = wait_for(
        core.list_namespaced_pod, namespace, "late", lambda p: p.status.phase == "Failed", timeout=patience(3)
    )
    assert pod.status.reason == "DeadlineExceeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 143  # SIGTERM


def test_cluster_fixture_common_interface(cluster: TestCluster) -> None:
    """``cluster`` gives the same handles on the local plane and on kind (kind: skipped unless enabled)."""
    nodes = client.CoreV1Api(cluster.api_client).list_node().items
    assert nodes and cluster.kubeconfig.is_file()
    if cluster.is_local:
        assert cluster.kubelet is not None
        assert set(cluster.kubelet.node_names) <= {n.metadata.name for n in nodes}
        assert any(fnmatchcase(cluster.agent_image, pattern) for pattern in DEFAULT_IMAGE_ALLOWLIST)


def test_pod_sandbox_volumes_and_env(
    api_client: client.ApiClient, process_kubelet: ProcessKubelet, namespace: str
) -> None:
    """What a container sees: no SA token when automount is off, hostPath/configMap/emptyDir mounts in its own
    mount namespace (invisible outside), downward API and ConfigMap env, the host's /run hidden."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    script = textwrap.dedent("""
        set -e
        test ! -e /var/run/secrets/kubernetes.io/serviceaccount/token
        test -z "$(ls -A /run | grep -v '^secrets$' || true)"
        grep -q '^ID=' /host-etc/os-release
        ! touch /host-etc/aicr-probe 2>/dev/null
        test "$(cat /config/mode)" = fast
        echo scratch > /scratch/file
        echo "ns=$MY_NS mode=$MODE node=$NODE ip=$POD_IP"
    """)
    container = {
        "env": [
            {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        ],
        "volumeMounts": [
            {"name": "host-etc", "mountPath": "/host-etc", "readOnly": True},
            {"name": "config", "mountPath": "/config"},
            {"name": "scratch", "mountPath": "/scratch"},
        ],
    }
    core.create_namespaced_pod(
        namespace,
        pod_manifest(
            "sandbox",
            ["sh", "-c", script],
            automountServiceAccountToken=False,
            container=container,
            nodeSelector={"kubernetes.io/hostname": "cpu-1"},
            volumes=[
                {"name": "host-etc", "hostPath": {"path": "/etc", "type": "Directory"}},
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "scratch", "emptyDir": {}},
            ],
        ),
    )
    pod = wait_for(
        core.list_namespaced_pod,
        namespace,
        "sandbox",
        lambda p: p.status.phase in ("Succeeded", "Failed"),
        timeout=patience(5),
    )
    logs = core.read_namespaced_pod_log("sandbox", namespace)
    assert pod.status.phase == "Succeeded", logs
    assert logs == f"ns={namespace} mode=fast node=cpu-1 ip=127.0.0.1\n"
    assert not os.path.exists("/host-etc"), "mount points created for the pod must be removed after it"
