"""The agent image on a real kubelet (containerd + runc): the pod spec, the image and the container boundary.

Every test runs against the ``real_node`` fixture (tests/realnode): a dedicated control plane and one real node
in a network namespace of their own; the agent image is the one ``build-images.sh`` built from the Dockerfile.
Every test that runs the CLI checks that nothing it created is left in that cluster (``no_leftovers``, which
here reads the real node's plane: ``api_client`` is overridden below). No test asserts on the clock: fail-fast
paths give the CLI a timeout far above every wait and assert on the reason reported.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubectl_aicr import __version__
from kubectl_aicr.deploy import spec
from kubectl_aicr.schema import problems
from tests.controlplane.patience import LONG_CLI_TIMEOUT, patience
from tests.controlplane.testkit import unique
from tests.e2e.conftest import REPO, cli_env, measurement, popen_cli, run_cli
from tests.realnode.node import RealNode, RealNodeError

pytestmark = pytest.mark.realnode
OS_SUBTYPES = ("release", "kernel", "grub", "kmod", "sysctl")
#: sysctls that belong to the reader's PID namespace (kernel.pid_max is per namespace on recent kernels).
PID_NS_SYSCTLS = {"/proc/sys/kernel/pid_max", "/proc/sys/kernel/cad_pid", "/proc/sys/kernel/ns_last_pid"}
H100_COUNT = 8  # tests/fixtures/nvidia-smi/gpu.xml, what the injected nvidia-smi prints


@pytest.fixture(scope="module")
def api_client(real_node: RealNode) -> client.ApiClient:
    """The real node's plane (overrides the session plane's for ``namespace`` and ``no_leftovers``)."""
    return real_node.api


@pytest.fixture
def core(real_node: RealNode) -> client.CoreV1Api:
    return client.CoreV1Api(real_node.api)


def snap(node: RealNode, namespace: str, *args: str, image: str = "") -> subprocess.CompletedProcess[str]:
    """A snapshot whose own --timeout is far above every wait: a run that ends did so by itself."""
    return run_cli(
        node.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        image or node.artifacts.agent_image,
        "--timeout",
        LONG_CLI_TIMEOUT,
        *args,
        timeout=patience(60),
    )


def subtype(doc: dict[str, Any], mtype: str, name: str) -> dict[str, Any]:
    return measurement(doc, mtype, name)


def node_containers(node: RealNode) -> list[str]:
    """Containers containerd still has (pods the kubelet has not torn down yet)."""
    out = node.node_exec(["ctr", "--address", str(node.socket), "-n", "k8s.io", "containers", "ls", "-q"]).stdout
    return [c for c in out.split() if c]


def wait_no_pod_containers(node: RealNode, keep: set[str]) -> list[str]:
    """Wait until containerd has no containers besides ``keep``; returns what is still there."""
    deadline = time.monotonic() + patience(30)
    while True:
        left = [c for c in node_containers(node) if c not in keep]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------- the image
def test_the_image_is_the_products(real_node: RealNode, tmp_path: Path) -> None:
    """Built from the Dockerfile: the release checks hold for the image itself, not only for the Dockerfile."""
    from tests.release.test_image import DOCKERFILE, VENV, parse_dockerfile
    from tools.bundle import check_compiled

    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    final = stages[-1]
    inspect = json.loads(real_node.artifacts.inspect_json.read_text())
    config = inspect["OCIv1"]["config"]
    assert config["Entrypoint"] == json.loads(final.all("ENTRYPOINT")[0]) == ["kubectl-aicr"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert config.get("User", "") in ("0:0", "root", "")
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PATH"].split(":")[0] == f"{VENV}/bin"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    # No compiled extension anywhere in the venv: unpack its files from the layers and run the release check.
    venv = tmp_path / "rootfs"
    with tarfile.open(real_node.artifacts.agent_tar) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer)) as lt:
                members = [
                    m
                    for m in lt.getmembers()
                    if m.name.lstrip("./").startswith(VENV.lstrip("/")) and (m.isfile() or m.isdir())
                ]
                lt.extractall(venv, members=members, filter="data")
    assert (venv / VENV.lstrip("/") / "bin" / "kubectl-aicr").is_file()
    check_compiled([venv / VENV.lstrip("/")])  # raises on a .so/.pyd/...
    size = real_node.artifacts.agent_tar.stat().st_size
    print(f"\nagent image {real_node.artifacts.agent_image}: {size / 2**20:.0f} MiB (docker-archive)")
    assert size < 600 * 2**20, "the agent image grew past 600 MiB"


def test_no_hostpath_type_refuses_a_node_without_systemd() -> None:
    """Talos/COS/Bottlerocket have no /run/systemd: a "Directory" hostPath would never mount (FailedMount)."""
    volumes = spec.job(spec.RunSpec(namespace="x", run_id="r"))["spec"]["template"]["spec"]["volumes"]
    types = {v["hostPath"]["path"]: v["hostPath"].get("type", "") for v in volumes if "hostPath" in v}
    assert types["/run/systemd"] == "DirectoryOrCreate"


def test_a_node_that_fails_to_start_leaves_nothing(real_node: RealNode) -> None:
    """The teardown runs on a failed start too: plane, containerd, namespaces and cgroups all gone."""
    broken = RealNode(
        dataclasses.replace(real_node.artifacts, kubelet=Path("/bin/false")),
        real_node.plane_bin_dir,
        name="broken-node",
    )
    with pytest.raises(RealNodeError, match="kubelet exited with 1"):
        broken.start()
    assert broken.leftovers() == []
    assert client.CoreV1Api(real_node.api).read_node(real_node.name).metadata.name == real_node.name  # untouched


# ---------------------------------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("target", ["stdout", "file", "configmap"])
def test_snapshot_through_the_real_pod(
    real_node: RealNode,
    namespace: str,
    tmp_path: Path,
    target: str,
    core: client.CoreV1Api,
    no_leftovers: Callable[[], list[str]],
) -> None:
    out = {"stdout": "-", "file": str(tmp_path / "snap.yaml"), "configmap": f"cm://{namespace}/baseline"}[target]
    r = snap(real_node, namespace, "-o", out)
    assert r.returncode == 0, r.stderr
    if target == "stdout":
        text = r.stdout
    elif target == "file":
        text = (tmp_path / "snap.yaml").read_text()
    else:
        cm = core.read_namespaced_config_map("baseline", namespace)
        assert cm.data["format"] == "yaml"
        text = cm.data["snapshot.yaml"]
        v = run_cli(real_node.kubeconfig, "validate", out)
        assert v.returncode == 0, v.stderr
    doc = yaml.safe_load(text)
    assert problems(doc) == []
    assert doc["metadata"]["source-node"] == real_node.name and doc["metadata"]["mode"] == "agent"
    # nvidia-smi came from the runtime (NVIDIA_VISIBLE_DEVICES=all in the image), not from the image.
    smi = subtype(doc, "GPU", "smi")
    assert smi["context"]["status"] == "ok", smi
    assert smi["data"]["gpu-count"] == H100_COUNT
    assert subtype(doc, "K8s", "node")["data"]["source-node"] == real_node.name
    assert "[aicr] cleaned up" in r.stderr


def test_host_facts_in_the_container_equal_snapshot_local_on_the_node(
    real_node: RealNode, namespace: str, tmp_path: Path, no_leftovers: Callable[[], list[str]]
) -> None:
    """Through the container boundary (its own mount/PID namespaces, the hostPath os-release, the node's network
    namespace) the agent reports the same OS facts as a local capture in that network namespace."""
    assert real_node.node_exec(["test", "-L", "/etc/os-release"], check=False).returncode == 0, (
        "this host shape has /etc/os-release as a symlink"
    )
    r = snap(real_node, namespace, "-o", str(tmp_path / "pod.yaml"))
    assert r.returncode == 0, r.stderr
    local = subprocess.run(
        real_node.netns.exec_prefix()
        + [
            sys.executable,
            "-m",
            "kubectl_aicr",
            "snapshot",  # type: ignore[union-attr]
            "--local",
            "-o",
            str(tmp_path / "local.yaml"),
        ],
        cwd=REPO,
        env=cli_env(real_node.kubeconfig),
        capture_output=True,
        text=True,
        timeout=patience(60),
    )
    assert local.returncode == 0, local.stderr
    pod = yaml.safe_load((tmp_path / "pod.yaml").read_text())
    here = yaml.safe_load((tmp_path / "local.yaml").read_text())
    for name in OS_SUBTYPES:
        a, b = subtype(pod, "OS", name), subtype(here, "OS", name)
        assert a["context"]["status"] == b["context"]["status"], (name, a["context"], b["context"])
        assert a["context"].get("reason") == b["context"].get("reason"), name
        # This VM's kernel has no loadable modules (no /proc/modules): kmod is unavailable on both sides.
        assert a["context"]["status"] == "ok" or name == "kmod", (name, a["context"])
        if name == "sysctl":  # counters and random values move between the two reads
            moving = (
                "/proc/sys/kernel/random/",
                "/proc/sys/fs/",
                "/proc/sys/kernel/ns_last_pid",
                "/proc/sys/kernel/pty/nr",
                "/proc/sys/net/netfilter/nf_conntrack_count",
            )
            a_data = {k: v for k, v in a["data"].items() if not k.startswith(moving)}
            b_data = {k: v for k, v in b["data"].items() if not k.startswith(moving)}
            assert set(a_data) == set(b_data)
            diff = {k: (a_data[k], b_data[k]) for k in a_data if a_data[k] != b_data[k]}
            # With hostPID the pod reads the host's PID namespace: these equal --local's too.
            assert set(diff) <= PID_NS_SYSCTLS, diff
            net = {k for k in a["data"] if k.startswith("/proc/sys/net/")}
            assert net, "the node's net.* sysctls are in the pod's view"
        else:
            assert a["data"] == b["data"], name
    # The release came through the hostPath (runc put it on the image's /usr/lib/os-release, the target of the
    # image's own /etc/os-release symlink) and is the host's.
    host = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    assert subtype(pod, "OS", "release")["data"]["PRETTY_NAME"] == host["PRETTY_NAME"].strip('"')


def test_node_without_systemd_still_runs_the_agent(
    real_node: RealNode, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    """The node's /run has no systemd (as on Talos/COS): the pod starts, systemd is reported unavailable."""
    real_node.node_exec(["rm", "-rf", "/run/systemd"])
    r = snap(real_node, namespace)
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    units = [s for m in doc["measurements"] if m["type"] == "SystemD" for s in m["subtypes"]]
    assert units
    for unit in units:
        assert unit["context"]["status"] == "unavailable", unit
        assert unit["context"].get("reason"), unit


def test_systemd_is_asked_through_the_mounted_socket_of_a_real_systemd(
    real_node: RealNode, namespace: str, core: client.CoreV1Api, no_leftovers: Callable[[], list[str]]
) -> None:
    """systemd runs as PID 1 in a privileged pod of its own, its /run/systemd on the node's; the agent's
    systemctl reaches its private socket through the hostPath. Without SYSTEMD_IGNORE_CHROOT it printed
    "Running in chroot, ignoring command 'show'" and exited 0, so every unit read as not installed.

    Both ends check the other's credentials on that socket (SO_PEERCRED), and a peer in a PID namespace the
    reader cannot see has PID 0. Without hostPID the agent's systemctl refused the connection itself ("Failed to
    connect to bus: No data available"): on a real node the host's systemd is PID 1 of the root namespace, which
    only a hostPID pod shares, so the agent runs with hostPID. Here the manager is PID 1 of a pod's own PID
    namespace, which no other pod can share: it sees the agent as PID 0 and drops the connection (or is not
    up yet), so only the client side, the part the agent controls, can be checked here: no chroot refusal and
    no credential refusal by the agent's own systemctl."""
    real_node.node_exec(["rm", "-rf", "/run/systemd"])
    name = unique("systemd")
    core.create_namespaced_pod(namespace, systemd_pod(name, real_node))
    try:
        deadline = time.monotonic() + patience(30)
        while real_node.node_exec(["test", "-S", "/run/systemd/private"], check=False).returncode != 0:
            pod = core.read_namespaced_pod(name, namespace)
            assert time.monotonic() < deadline, f"systemd did not come up: {pod.status}"
            time.sleep(0.5)
        r = snap(real_node, namespace)
        assert r.returncode == 0, r.stderr
        doc = yaml.safe_load(r.stdout)
        units = {s["subtype"]: s for m in doc["measurements"] if m["type"] == "SystemD" for s in m["subtypes"]}
        assert units
        for unit in units.values():
            reason = unit["context"].get("reason") or ""
            assert "chroot" not in reason and "No data available" not in reason, unit
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        real_node.node_exec(["sh", "-c", "umount -R /run/systemd 2>/dev/null; rm -rf /run/systemd"], check=False)


def systemd_pod(name: str, node: RealNode) -> dict[str, Any]:
    """systemd as PID 1 (the agent image ships it), privileged: runc gives it its own cgroup mount."""
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node.name,
            "hostNetwork": True,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "systemd",
                    "image": node.artifacts.agent_image,
                    "command": ["/lib/systemd/systemd"],
                    "env": [{"name": "container", "value": "containerd"}],
                    "securityContext": {"privileged": True},
                    "volumeMounts": [
                        {"name": "run", "mountPath": "/run"},
                        {"name": "run-systemd", "mountPath": "/run/systemd"},
                    ],
                }
            ],
            "volumes": [
                {"name": "run", "emptyDir": {"medium": "Memory"}},
                {"name": "run-systemd", "hostPath": {"path": "/run/systemd", "type": "DirectoryOrCreate"}},
            ],
        },
    }


def test_no_nvidia_runtime_reports_nvidia_smi_unavailable(
    real_node: RealNode, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    real_node.set_nvidia(None)
    try:
        r = snap(real_node, namespace)
    finally:
        real_node.set_nvidia(real_node.nvidia_xml)
    assert r.returncode == 0, r.stderr
    smi = subtype(yaml.safe_load(r.stdout), "GPU", "smi")
    assert smi["context"]["status"] != "ok" and smi["context"].get("reason"), smi


# ---------------------------------------------------------------------------------------------- failures
def test_bad_image_fails_fast_with_the_pull_error(
    real_node: RealNode, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    r = snap(real_node, namespace, image="localhost/aicr/no-such-image:v0")
    assert r.returncode != 0
    assert "ErrImagePull" in r.stderr or "ImagePullBackOff" in r.stderr, r.stderr
    assert "localhost/aicr/no-such-image:v0" in r.stderr
    assert "did not finish within" not in r.stderr


def test_image_without_the_agent_fails_fast_with_the_runtime_cause(
    real_node: RealNode, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    """The pause image has no kubectl-aicr: runc cannot exec it; the CLI says so instead of waiting."""
    r = snap(real_node, namespace, image=real_node.artifacts.pause_image)
    assert r.returncode != 0
    assert "did not finish within" not in r.stderr
    assert "kubectl-aicr" in r.stderr and ("executable file not found" in r.stderr or "no such file" in r.stderr), (
        r.stderr
    )


def test_os_release_that_is_not_a_file_fails_fast_with_failed_mount(
    real_node: RealNode, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    """A node whose /etc/os-release resolves to something else than a file: the kubelet's hostPath check
    refuses it (FailedMount, only an event); the CLI reports that event instead of waiting for its timeout."""
    target = real_node.node_exec(["readlink", "-f", "/etc/os-release"]).stdout.strip()
    real_node.node_exec(["mount", "--bind", "/dev/null", target])
    try:
        r = snap(real_node, namespace)
    finally:
        real_node.node_exec(["umount", target])
    assert r.returncode != 0
    assert "did not finish within" not in r.stderr
    assert "FailedMount" in r.stderr and "/etc/os-release is not a file" in r.stderr, r.stderr


def test_sigint_during_container_creating_cleans_up(
    real_node: RealNode, namespace: str, no_leftovers: Callable[[], list[str]]
) -> None:
    before = set(node_containers(real_node))
    with real_node.holding_container_creation():
        p = popen_cli(
            real_node.kubeconfig,
            "snapshot",
            "-n",
            namespace,
            "--image",
            real_node.artifacts.agent_image,
            "--timeout",
            LONG_CLI_TIMEOUT,
        )
        assert p.stderr is not None
        seen = ""
        deadline = time.monotonic() + patience(30)
        while "ContainerCreating" not in seen and time.monotonic() < deadline:
            line = p.stderr.readline()
            if not line:
                break
            seen += line
        assert "ContainerCreating" in seen, seen
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=patience(30))
        assert p.returncode == 130, seen + err
        assert "interrupted" in err
    assert wait_no_pod_containers(real_node, before) == [], "the kubelet left the agent's containers"


# ---------------------------------------------------------------------------------------------- the kubelet
@pytest.fixture
def pod_runner(real_node: RealNode, namespace: str, core: client.CoreV1Api) -> Iterator[Callable[..., Any]]:
    """Run one pod on the real node to its end; returns the final pod."""
    made: list[str] = []

    def run(container: dict[str, Any]) -> Any:
        name = unique("p")
        made.append(name)
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "nodeName": real_node.name,
                    "hostNetwork": True,
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", **container}],
                },
            },
        )
        deadline = time.monotonic() + patience(30)
        while True:
            pod = core.read_namespaced_pod(name, namespace)
            if pod.status.phase in ("Succeeded", "Failed"):
                return pod
            assert time.monotonic() < deadline, pod.status
            time.sleep(0.3)

    yield run
    for name in made:
        try:
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException:
            pass


def test_exit_code_and_logs_through_the_real_pods_log(
    real_node: RealNode, core: client.CoreV1Api, namespace: str, pod_runner: Callable[..., Any]
) -> None:
    pod = pod_runner(
        {
            "image": real_node.artifacts.pause_image,
            "command": ["/bin/sh", "-c", "echo first line; echo to stderr >&2; echo last line; exit 3"],
        }
    )
    term = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed" and term.exit_code == 3 and term.reason == "Error"
    lines = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="c").splitlines()
    # Both streams are in the log; each keeps its order, but stdout and stderr arrive through separate pipes.
    assert sorted(lines) == ["first line", "last line", "to stderr"]
    assert [x for x in lines if x != "to stderr"] == ["first line", "last line"]
    tail = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="c", tail_lines=1).splitlines()
    assert len(tail) == 1 and tail[0] == lines[-1]


def test_the_agent_fits_its_own_memory_limit(
    real_node: RealNode, core: client.CoreV1Api, namespace: str, pod_runner: Callable[..., Any]
) -> None:
    """The Job's resources, enforced by the real kubelet (cgroup v1 here): a full local capture in the agent
    image stays under the memory limit, and the limit is what the spec says."""
    (container,) = spec.job(spec.RunSpec(namespace=namespace, run_id="r"))["spec"]["template"]["spec"]["containers"]
    limit = container["resources"]["limits"]["memory"]
    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; kubectl-aicr snapshot --local -o /tmp/s.yaml && "
        "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes /sys/fs/cgroup/memory/memory.failcnt"
    )
    pod = pod_runner(
        {
            "image": real_node.artifacts.agent_image,
            "command": ["sh", "-c", script],
            "resources": container["resources"],
            "securityContext": container["securityContext"],
        }
    )
    log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="c")
    assert pod.status.phase == "Succeeded", log
    got_limit, peak, failcnt = (int(x) for x in log.split()[-3:])
    assert limit == "512Mi" and got_limit == 512 * 2**20
    assert 0 < peak < got_limit and failcnt == 0
    print(f"\nagent peak memory in its container: {peak / 2**20:.0f} MiB of {limit}")
