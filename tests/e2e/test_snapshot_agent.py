"""``kubectl aicr snapshot`` end to end on the real control plane: RBAC, Job, pod, ConfigMap, wait, cleanup.

Every test also checks (fixture ``no_leftovers``) that nothing the run created is left in the cluster.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from kubernetes import client

from kubectl_aicr.schema import problems
from tests.controlplane.files import write_atomic
from tests.controlplane.handle import ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.patience import LONG_CLI_TIMEOUT, patience
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import measurement, popen_cli, run_cli, stuck_report

pytestmark = pytest.mark.controlplane
DEFAULT_GPU_NODES = {"gpu-h100-1", "gpu-h100-2", "gpu-b200-1", "gpu-h100-tainted"}


def snap(cluster: TestCluster, namespace: str, *args: str, timeout: float = patience(60)) -> Any:
    """A snapshot run whose own --timeout is far above any wait here: a run that ends did so by itself, so
    fail-fast tests assert on the reason (a timeout would say "did not finish"), never on the clock."""
    return run_cli(
        cluster.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        LONG_CLI_TIMEOUT,
        *args,
        timeout=timeout,
    )


def test_snapshot_to_stdout_lands_on_a_gpu_node_and_is_valid(
    cluster: TestCluster, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    r = snap(cluster, namespace)
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert problems(doc) == []
    node = doc["metadata"]["source-node"]
    assert node in DEFAULT_GPU_NODES, "no selector: the agent must prefer GPU nodes"
    assert doc["metadata"]["mode"] == "agent" and doc["metadata"]["version"]
    smi = measurement(doc, "GPU", "smi")
    assert smi["context"]["status"] == "ok"
    assert smi["data"]["gpu-count"] == 8 and smi["data"]["driver"] in ("570.86.15", "560.35.03")
    k8s_node = measurement(doc, "K8s", "node")["data"]
    assert k8s_node["source-node"] == node and k8s_node["gpu-capacity"] == 8
    labels = measurement(doc, "K8s", "labels")["data"]
    assert labels["nvidia.com/gpu.present"] == "true"
    server = measurement(doc, "K8s", "server")["data"]
    assert server["version"].startswith("v1.")
    assert "[aicr] cleaned up" in r.stderr


def test_snapshot_to_file_json_with_selector(
    cluster: TestCluster, namespace: str, tmp_path: Path, no_leftovers: Callable[[], list[str]]
) -> None:
    out = tmp_path / "snap.json"
    r = snap(
        cluster, namespace, "--node-selector", "kubernetes.io/hostname=gpu-b200-1", "--format", "json", "-o", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["metadata"]["source-node"] == "gpu-b200-1"
    assert measurement(doc, "GPU", "smi")["data"]["gpu.model"] == "NVIDIA B200"
    assert measurement(doc, "GPU", "smi")["data"]["driver"] == "560.35.03"


def test_snapshot_to_configmap_in_another_namespace(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient, no_leftovers: Callable[[], list[str]]
) -> None:
    core = client.CoreV1Api(api_client)
    target_ns = unique("aicr-out")
    core.create_namespace({"metadata": {"name": target_ns}})
    try:
        r = snap(cluster, namespace, "-o", f"cm://{target_ns}/baseline")
        assert r.returncode == 0, r.stderr
        cm = core.read_namespaced_config_map("baseline", target_ns)
        assert cm.data["format"] == "yaml" and "timestamp" in cm.data
        assert cm.metadata.labels["app.kubernetes.io/component"] == "Snapshot"
        doc = yaml.safe_load(cm.data["snapshot.yaml"])
        assert problems(doc) == []
        # The output ConfigMap is the user's, not a leftover: remove it before the leftovers check.
        v = run_cli(cluster.kubeconfig, "validate", f"cm://{target_ns}/baseline")
        assert v.returncode == 0 and "valid Snapshot" in v.stdout
    finally:
        core.delete_namespace(target_ns)
        for _ in range(50):
            if not core.list_namespaced_config_map(target_ns, label_selector="app.kubernetes.io/name=aicr").items:
                break
            time.sleep(0.2)


def test_selector_matching_nothing_fails_fast_creating_nothing(
    cluster: TestCluster, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    r = snap(cluster, namespace, "--node-selector", "nvidia.com/gpu.product=NVIDIA-Z999")
    assert r.returncode == 3
    assert "no node matches --node-selector nvidia.com/gpu.product=NVIDIA-Z999" in r.stderr
    assert "creating Job" not in r.stderr


def test_restricted_tolerations_keep_the_pod_off_a_tainted_node(
    cluster: TestCluster, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    # Only the tainted node selected, its taint not tolerated: refused before anything is created.
    r = snap(
        cluster,
        namespace,
        "--node-selector",
        "kubernetes.io/hostname=gpu-h100-tainted",
        "--toleration",
        "dedicated=ml:NoSchedule",
    )
    assert r.returncode == 3, r.stderr
    assert "carry taints the tolerations do not allow (gpu-h100-tainted: nvidia.com/gpu=present:NoSchedule)" in r.stderr
    # H100 nodes selected, one tainted: with a restricted toleration the agent lands on an untainted one.
    for _ in range(2):
        r = snap(
            cluster,
            namespace,
            "--node-selector",
            "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3",
            "--toleration",
            "dedicated=ml:NoSchedule",
        )
        assert r.returncode == 0, r.stderr
        assert yaml.safe_load(r.stdout)["metadata"]["source-node"] in ("gpu-h100-1", "gpu-h100-2")
    # Tolerating the taint makes the tainted node usable.
    r = snap(
        cluster,
        namespace,
        "--node-selector",
        "kubernetes.io/hostname=gpu-h100-tainted",
        "--toleration",
        "nvidia.com/gpu=present:NoSchedule",
    )
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["metadata"]["source-node"] == "gpu-h100-tainted"


def test_bad_image_fails_fast_naming_the_image(
    cluster: TestCluster, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    r = run_cli(
        cluster.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        "registry.invalid/nope/agent:1",
        "--timeout",
        LONG_CLI_TIMEOUT,
    )
    assert r.returncode == 7, r.stderr  # not 5: it did not wait for the timeout
    assert "cannot pull image 'registry.invalid/nope/agent:1'" in r.stderr


def test_bad_flags_are_refused_before_anything_is_created(
    cluster: TestCluster, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    for args, text in [
        (["--timeout", "5 minutes"], "--timeout"),
        (["--node-selector", "oops"], "must be key=value"),
        (["--toleration", "k=v:Sometimes"], "effect must be one of"),
        (["--job-name", "Bad_Name"], "--job-name"),
        (["-o", "cm://Bad/x"], "not a valid namespace"),
        (["-o", "/nonexistent-dir/x.yaml"], "does not exist"),
        (["--format", "xml"], "Invalid value for '--format'"),
    ]:
        r = snap(cluster, namespace, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert text in r.stderr, (args, r.stderr)
        assert "creating Job" not in r.stderr


def _agent_override(kubelet: ProcessKubelet, node: str, script: str) -> None:
    """Put a stand-in for the image's ``kubectl-aicr`` first on the node's PATH (simulates a broken agent)."""
    write_atomic(kubelet.node_dir(node) / "bin" / "kubectl-aicr", "#!/bin/sh\n" + script, mode=0o755)


@pytest.fixture
def own_node(make_kubelet: Callable[..., ProcessKubelet]) -> tuple[ProcessKubelet, str]:
    name = unique("gpu-own")
    kubelet = make_kubelet([gpu_node(name, H100_XML)])
    return kubelet, name


def test_collector_failure_reports_exit_code_and_log_lines(
    cluster: TestCluster, namespace: str, own_node: Any, no_leftovers: Callable[[], list[str]]
) -> None:
    if not cluster.is_local:
        pytest.skip("needs the process kubelet to break the agent")
    kubelet, node = own_node
    _agent_override(kubelet, node, 'echo "collecting on $NODE_NAME"\necho "fatal: /proc is not mounted" >&2\nexit 3\n')
    r = snap(cluster, namespace, "--node-selector", f"kubernetes.io/hostname={node}")
    assert r.returncode == 7, r.stderr
    assert "exited with code 3" in r.stderr
    assert "fatal: /proc is not mounted" in r.stderr and f"collecting on {node}" in r.stderr


def test_timeout_reports_where_it_was_stuck(
    cluster: TestCluster, namespace: str, own_node: Any, no_leftovers: Callable[[], list[str]]
) -> None:
    if not cluster.is_local:
        pytest.skip("needs the process kubelet to hang the agent")
    kubelet, node = own_node
    _agent_override(kubelet, node, "exec sleep 120\n")
    limit = f"{min(round(patience(5)), 110)}s"  # long enough for the pod to be Running even on a busy machine
    r = run_cli(
        cluster.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        limit,
        "--node-selector",
        f"kubernetes.io/hostname={node}",
    )
    assert r.returncode == 5, r.stderr
    assert f"did not finish within {limit}; last state: " in r.stderr and f"Running on {node}" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_wait_cleans_up(
    cluster: TestCluster, namespace: str, own_node: Any, sig: signal.Signals, no_leftovers: Callable[[], list[str]]
) -> None:
    if not cluster.is_local:
        pytest.skip("needs the process kubelet to hang the agent")
    kubelet, node = own_node
    _agent_override(kubelet, node, "exec sleep 120\n")
    p = popen_cli(
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
    )
    assert p.stderr is not None
    seen = ""
    deadline = time.monotonic() + patience(15)
    while "Running on" not in seen and time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        seen += line
    assert "Running on" in seen, seen
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=patience(15))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the CLI did not exit within {patience(15):.0f}s of {sig.name}:\n{seen}{stuck_report(p)}")
    assert p.returncode == 130, seen + err
    assert "interrupted" in err


def test_two_concurrent_runs_in_one_namespace(
    cluster: TestCluster, namespace: str, tmp_path: Path, no_leftovers: Callable[[], list[str]]
) -> None:
    procs = [
        popen_cli(
            cluster.kubeconfig,
            "snapshot",
            "-n",
            namespace,
            "--image",
            cluster.agent_image,
            "-o",
            str(tmp_path / f"s{i}.yaml"),
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=patience(60)) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    docs = [yaml.safe_load((tmp_path / f"s{i}.yaml").read_text()) for i in range(2)]
    assert all(problems(d) == [] for d in docs)
    runs = [d["metadata"]["run-id"] for d in docs]
    assert runs[0] != runs[1]


def test_user_without_rights_is_told_which_permission_is_missing(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient, no_leftovers: Callable[[], list[str]]
) -> None:
    if not cluster.is_local:
        pytest.skip("needs a client certificate for a non-admin user")
    plane = cluster.kubelet.plane  # type: ignore[union-attr]
    user = unique("alice")
    kubeconfig = plane.make_user_kubeconfig(user)
    rbac = client.RbacAuthorizationV1Api(api_client)
    # 'edit' in the namespace: can create Jobs and ConfigMaps, but no RBAC objects. The run needs nothing
    # cluster-wide (the agent's only grant is a Role), so only the namespaced RBAC is missing.
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "alice-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    r = run_cli(kubeconfig, "snapshot", "-n", namespace, "--image", cluster.agent_image)
    assert r.returncode == 4, r.stderr
    assert "permissions needed to run the snapshot agent" in r.stderr
    assert "missing: create roles.rbac.authorization.k8s.io in namespace" in r.stderr
    assert "cluster-wide" not in r.stderr and "clusterroles" not in r.stderr
    assert "nothing was created" in r.stderr
    # No rights at all (not even to read the namespace).
    r = run_cli(
        plane.make_user_kubeconfig(unique("nobody")), "snapshot", "-n", namespace, "--image", cluster.agent_image
    )
    assert r.returncode == 4 and "create jobs.batch in namespace" in r.stderr


def test_no_cleanup_keeps_objects_and_prints_how_to_delete(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient
) -> None:
    import shlex
    import subprocess

    from tests.e2e.conftest import cli_env, leftovers

    r = snap(cluster, namespace, "--no-cleanup")
    assert r.returncode == 0, r.stderr
    left = leftovers(api_client)
    assert any(x.startswith("Job ") for x in left)
    assert all(x.split(" ", 1)[1].startswith(f"{namespace}/") for x in left), left  # nothing cluster-scoped
    cmds = [
        line.split("[aicr]   ", 1)[1] for line in r.stderr.splitlines() if line.startswith("[aicr]   kubectl delete")
    ]
    assert len(cmds) == 1  # one label-selected delete in the namespace removes everything
    for c in cmds:
        d = subprocess.run(
            shlex.split(c), env=cli_env(cluster.kubeconfig), capture_output=True, text=True, timeout=patience(15)
        )
        assert d.returncode == 0, d.stderr
    deadline = time.monotonic() + patience(10)
    while leftovers(api_client) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert leftovers(api_client) == []


def test_missing_namespace_is_created_and_removed_again(cluster: TestCluster, api_client: client.ApiClient) -> None:
    from tests.e2e.conftest import leftovers

    ns = unique("aicr-new")
    r = run_cli(cluster.kubeconfig, "snapshot", "-n", ns, "--image", cluster.agent_image, "--timeout", LONG_CLI_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["kind"] == "Snapshot"
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + patience(15)
    while any(n.metadata.name == ns for n in core.list_namespace().items):
        assert time.monotonic() < deadline, f"namespace {ns} was not removed"
        time.sleep(0.5)
    assert leftovers(api_client) == []


def test_context_selection_follows_kubectl(
    cluster: TestCluster, namespace: str, tmp_path: Path, no_leftovers: Callable[[], list[str]]
) -> None:
    """KUBECONFIG=a:b -> a's current-context (kubectl's rule); --context picks another; the files are not written."""
    real = yaml.safe_load(cluster.kubeconfig.read_text())
    real_ctx = real["current-context"]
    dead = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "dead", "user": {"token": "x"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead", "namespace": namespace}}],
    }
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(dead))
    b.write_text(cluster.kubeconfig.read_text())
    before = (a.read_bytes(), b.read_bytes())
    import os

    both = f"{a}{os.pathsep}{b}"
    r = run_cli(Path(both), "snapshot", "--image", cluster.agent_image)
    assert r.returncode == 6, r.stderr  # a's current-context 'dead' wins, as in kubectl: unreachable
    assert "cannot reach the cluster at https://127.0.0.1:9" in r.stderr
    r = run_cli(Path(both), "snapshot", "--context", real_ctx, "-n", namespace, "--image", cluster.agent_image)
    assert r.returncode == 0, r.stderr
    r = run_cli(Path(both), "snapshot", "--context", "nope", "--image", cluster.agent_image)
    assert r.returncode == 3 and "context 'nope' not found" in r.stderr
    assert (a.read_bytes(), b.read_bytes()) == before


def test_unschedulable_pod_fails_fast_with_the_schedulers_reason(
    cluster: TestCluster,
    namespace: str,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("needs a node too small for the agent")
    node = unique("gpu-tiny")
    make_kubelet([gpu_node(node, H100_XML, cpu="50m")])  # labels and taints match; 100m CPU requested does not fit
    r = snap(cluster, namespace, "--node-selector", f"kubernetes.io/hostname={node}")
    assert r.returncode == 7, r.stderr  # not 5: said as soon as the scheduler said it
    assert "the agent pod cannot be scheduled: 0/" in r.stderr and "Insufficient cpu" in r.stderr


def test_configmap_too_small_for_a_snapshot_is_compressed_or_refused(
    api_client: client.ApiClient, namespace: str, control_plane: Any
) -> None:
    """Against the real API server's 1 MiB object limit: compressed when it fits, a clear error when it cannot."""
    import os as _os

    from kubectl_aicr import cmstore
    from kubectl_aicr.errors import InvalidInput
    from kubectl_aicr.kube import KubeOptions, connect
    from kubectl_aicr.snapshot_io import ConfigMapRef

    kube = connect(KubeOptions(kubeconfig=str(control_plane.kubeconfig)))
    big = "".join(f"/proc/sys/key/{i}: value-{i % 101}\n" for i in range(150_000))  # ~4 MB, compressible
    ref = ConfigMapRef(namespace, "big")
    cmstore.write(kube, ref, big, "yaml")
    assert cmstore.read(kube, ref).decode() == big
    cm = client.CoreV1Api(api_client).read_namespaced_config_map("big", namespace)
    assert cm.data["encoding"] == "gzip" and "snapshot.yaml.gz" in cm.binary_data
    noise = _os.urandom(3 * 1024 * 1024).hex()
    with pytest.raises(InvalidInput, match="a ConfigMap holds at most"):
        cmstore.write(kube, ConfigMapRef(namespace, "huge"), noise, "yaml")
    names = [c.metadata.name for c in client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items]
    assert "huge" not in names


def test_node_without_nvidia_smi_still_reports_gpu_facts_from_labels(
    cluster: TestCluster,
    namespace: str,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("needs a process-kubelet node without nvidia-smi")
    node = unique("gpu-nosmi")
    make_kubelet([gpu_node(node, H100_XML, nvidia_smi=None)])
    r = snap(cluster, namespace, "--node-selector", f"kubernetes.io/hostname={node}")
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    smi = measurement(doc, "GPU", "smi")
    assert smi["context"]["status"] == "unavailable" and "nvidia-smi" in smi["context"]["reason"]
    labels = measurement(doc, "GPU", "labels")["data"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3" and labels["nvidia.com/gpu.count"] == "8"
    cons = measurement(doc, "GPU", "consistency")["data"]
    # Feature discovery says 8 GPUs, this host's PCI bus shows none: exactly the disagreement users hunt.
    assert cons["gpu-count.label"] == 8 and cons["gpu-count.pci"] == 0 and cons["gpu-count.mismatch"] is True
    assert f"warning: nvidia-smi did not run in the agent pod on node {node}" in r.stderr


def test_existing_service_account_is_used_and_kept(
    cluster: TestCluster, namespace: str, api_client: client.ApiClient, no_leftovers: Callable[[], list[str]]
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "gpu-reader"}})
    r = snap(cluster, namespace, "--service-account-name", "gpu-reader")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["kind"] == "Snapshot"
    assert core.read_namespaced_service_account("gpu-reader", namespace).metadata.name == "gpu-reader"
    # A ServiceAccount that does not exist: the Job cannot create its pod; said at once, not at the timeout.
    r = snap(cluster, namespace, "--service-account-name", "no-such-sa")
    assert r.returncode == 7, r.stderr
    assert "the Job could not create its pod" in r.stderr and "no-such-sa" in r.stderr
