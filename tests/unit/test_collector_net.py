"""Network, Runtime and kernel-config facts on fixture trees (tests/fixtures/host/build_net_trees.py).

``dgx-h100-net`` is generated from the source texts under tests/fixtures/host/sources/ (ibstat, topo -m, a kernel
config); ``no-gpu`` (a CPU-only VM) has none of it, so every source must say it is unavailable and why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from collector import runtime
from collector.affinity import collect_affinity, relation
from collector.host import collect_host
from collector.kernel_config import collect_hugepages, collect_iommu, collect_kernel_config, parse_kernel_config
from collector.model import build_snapshot
from collector.net import collect_infiniband, collect_nics, collect_rdma_modules
from collector.runtime import TOML_NEEDS, collect_cdi, collect_containerd, collect_kubelet, collect_toolkit
from kubectl_aicr.diff import DiffOptions, diff_snapshots
from kubectl_aicr.schema import validate

HOST = Path(__file__).resolve().parents[1] / "fixtures" / "host"
DGX = HOST / "dgx-h100-net"
BARE = HOST / "no-gpu"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_net_trees", HOST / "build_net_trees.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_net_trees"] = mod
    spec.loader.exec_module(mod)
    return mod


GEN = _generator()


def roots(tree: Path) -> dict[str, str]:
    return {"proc_root": str(tree / "proc"), "sys_root": str(tree / "sys"), "etc_root": str(tree / "etc")}


def snapshot(tree: Path) -> dict[str, Any]:
    ms = collect_host(
        nvidia_smi=str(tree / "no-nvidia-smi"),
        systemctl=str(tree / "no-systemctl"),
        units=[],
        timeout=5.0,
        **roots(tree),
    )
    return build_snapshot({"timestamp": "2026-12-02T00:00:00Z", "version": "test", "source-node": "dgx"}, ms)


def test_committed_tree_is_what_the_generator_writes(tmp_path: Path) -> None:
    fresh = GEN.build(tmp_path)

    def listing(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): (
                f"-> {p.readlink()}"
                if p.is_symlink()
                else hashlib.sha256(p.read_bytes()).hexdigest()
                if p.is_file()
                else "dir"
            )
            for p in sorted(root.rglob("*"))
        }

    assert listing(fresh) == listing(DGX)


# ---------------------------------------------------------------------------------------------------- NICs / IB


def test_nics_skip_virtual_netdevs_and_read_each_physical_one() -> None:
    sub = collect_nics(str(DGX / "sys"))
    assert sub.context == {"source": "/sys/class/net", "status": "ok"}
    assert sub.data["nic-count"] == 10
    names = {k.split(".", 1)[0] for k in sub.data if k != "nic-count"}
    assert "lo" not in names and "docker0" not in names and "veth3f1b2c0" not in names and "bond0" not in names
    assert len(names) == 10
    ib = {k.split(".", 1)[1]: v for k, v in sub.data.items() if k.startswith("ibp21s0.")}
    assert ib == {
        "pci-address": "0000:15:00.0",
        "driver": "mlx5_core",
        "numa-node": 0,
        "mtu": 4092,
        "speed-mbps": 400000,
        "sriov-totalvfs": 16,
        "sriov-numvfs": 0,
        "carrier-changes": 2,
        "operstate": "up",
        "type": "infiniband",
        "mac": "20:00:10:5a:10:00",
        "rdma-device": "mlx5_0",
        "firmware-version": "28.39.1002",
    }
    assert sub.data["enp144s0np0.type"] == "ether" and sub.data["enp144s0np0.sriov-numvfs"] == 4
    assert not any("rx_bytes" in k or "statistics" in k for k in sub.data)


def test_infiniband_matches_the_ibstat_source() -> None:
    sub = collect_infiniband(str(DGX / "sys"))
    assert sub.context["status"] == "ok"
    cas = GEN.parse_ibstat((HOST / "sources" / "dgx-h100-ibstat.txt").read_text())
    assert {k.split(".", 1)[0] for k in sub.data} == set(cas)
    for ca, f in cas.items():
        assert sub.data[f"{ca}.fw-ver"] == f["Firmware version"]
        assert sub.data[f"{ca}.hca-type"] == f["CA type"]
        assert sub.data[f"{ca}.node-guid"].replace(":", "") == f["Node GUID"][2:]
        assert sub.data[f"{ca}.port-1.state"] == f["port1.State"].upper()
        assert sub.data[f"{ca}.port-1.phys-state"] == f["port1.Physical state"]
        assert str(sub.data[f"{ca}.port-1.rate"]).startswith(f["port1.Rate"] + " Gb/sec")
        assert sub.data[f"{ca}.port-1.link-layer"] == f["port1.Link layer"]
        assert int(str(sub.data[f"{ca}.port-1.lid"]), 16) == int(f["port1.Base lid"])
    assert sub.data["mlx5_0.netdevs"] == "ibp21s0" and sub.data["mlx5_8.port-1.link-layer"] == "Ethernet"
    assert not any("counter" in k or "gid" in k for k in sub.data)


def test_rdma_modules_loaded_with_versions() -> None:
    sub = collect_rdma_modules(str(DGX / "proc"), str(DGX / "sys"))
    assert sub.data["nvidia_peermem"] is True and sub.data["nvidia_peermem.version"] == "570.86.15"
    assert sub.data["mlx5_core"] is True and sub.data["mlx5_core.version"] == "24.10-1.1.4"
    assert sub.data["ib_core"] is True and sub.data["nv_peer_mem"] is False and sub.data["gdrdrv"] is False


# ---------------------------------------------------------------------------------------------------- affinity


def test_affinity_from_sysfs_matches_nvidia_smi_topo_m() -> None:
    gpus, nics, rel, numa, legend = GEN.parse_topo((HOST / "sources" / "dgx-h100-topo-m.txt").read_text())
    sub = collect_affinity(str(DGX / "sys"))
    assert sub.context["status"] == "ok"
    assert (sub.data["gpu-count"], sub.data["nic-count"], sub.data["nvswitch-count"]) == (8, 10, 4)
    buses = sorted(k.split(".mlx5_0")[0] for k in sub.data if k.endswith(".mlx5_0"))
    assert len(buses) == len(gpus)
    # GPU<i> is the i-th GPU by bus address, as nvidia-smi numbers them (PCI bus order).
    for g, bus in zip(gpus, buses):
        for n in nics:
            assert sub.data[f"{bus}.{legend[n]}"] == rel[(g, n)], (g, n)
        assert sub.data[f"{bus}.numa-node"] == numa[g]
        assert sub.data[f"{bus}.nics-same-switch"] == ",".join(legend[n] for n in nics if rel[(g, n)] in ("PIX", "PXB"))
    assert sub.data["0000:14:00.0.nics-same-numa"] == "mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_8"


@pytest.mark.parametrize(
    "a, b, na, nb, want",
    [
        (["pci0000:00", "0000:00:01.0", "0000:01:00.0"], ["pci0000:00", "0000:00:01.0", "0000:02:00.0"], 0, 0, "PIX"),
        (["pci0000:00", "0000:00:01.0", "0000:01:00.0"], ["pci0000:00", "0000:00:02.0", "0000:02:00.0"], 0, 0, "PHB"),
        (["pci0000:00", "0000:00:01.0"], ["pci0000:40", "0000:40:01.0"], 0, 0, "NODE"),
        (["pci0000:00", "0000:00:01.0"], ["pci0000:40", "0000:40:01.0"], 0, 1, "SYS"),
        (["pci0000:00", "0000:00:01.0"], ["pci0000:40", "0000:40:01.0"], -1, -1, "SYS"),
    ],
)
def test_relation_words(a: list[str], b: list[str], na: int, nb: int, want: str) -> None:
    assert relation(a, b, na, nb) == want


# ---------------------------------------------------------------------------------------------------- runtime


def test_runtime_allow_listed_facts() -> None:
    etc = str(DGX / "etc")
    ctr = collect_containerd(etc).data
    assert ctr["default-runtime"] == "nvidia" and ctr["snapshotter"] == "overlayfs" and ctr["version"] == 2
    assert ctr["runtime.nvidia.binary"] == "/usr/local/nvidia/toolkit/nvidia-container-runtime"
    assert ctr["runtime.nvidia.systemd-cgroup"] is True and ctr["enable-cdi"] is True
    assert ctr["runtime.nvidia-cdi.binary"] == "<redacted>"  # allowed key, secret-looking value (user:pass@)
    assert not any("registry" in k or "auth" in k or "sandbox" in k for k in ctr)
    tk = collect_toolkit(etc).data
    assert tk["nvidia-container-runtime.modes.cdi.default-kind"] == "nvidia.com/gpu"
    assert tk["nvidia-container-cli.root"] == "/run/nvidia/driver" and "nvidia-container-cli.environment" not in tk
    assert collect_cdi(etc).data == {
        "/etc/cdi": "nvidia-imex.yaml,nvidia.yaml",
        "/var/run/cdi": "k8s.device-plugin.nvidia.com-gpu.json",
        "spec-count": 3,
    }
    kl = collect_kubelet(etc).data
    assert kl["cgroupDriver"] == "systemd" and kl["topologyManagerPolicy"] == "single-numa-node"
    assert kl["maxPods"] == 110 and kl["evictionHard.memory.available"] == "500Mi"
    assert kl["featureGates.DynamicResourceAllocation"] is True and kl["enforceNodeAllocatable"] == "pods"
    assert not any(k.startswith(("authentication", "tls", "staticPod", "bootstrap")) for k in kl)


def test_no_secret_of_the_runtime_configs_reaches_the_snapshot() -> None:
    text = json.dumps(snapshot(DGX)) + yaml.safe_dump(snapshot(DGX))
    for secret in GEN.SECRETS:
        assert secret not in text
    for fragment in ("hunter2", "oauthtoken", "identitytoken", "eyJhbGci", "planted", "Bearer"):
        assert fragment not in text


def test_python_3_10_without_a_toml_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` now raises ImportError, as on 3.10
    monkeypatch.setitem(sys.modules, "tomli", None)
    for sub in (collect_containerd(str(DGX / "etc")), collect_toolkit(str(DGX / "etc"))):
        assert sub.context["status"] == "unavailable" and sub.context["reason"] == TOML_NEEDS
    assert runtime._toml_loads() is None


def test_broken_configs_are_errors_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "etc/containerd").mkdir(parents=True)
    (tmp_path / "etc/containerd/config.toml").write_text("version = 2\n[plugins\n")
    (tmp_path / "var/lib/kubelet").mkdir(parents=True)
    (tmp_path / "var/lib/kubelet/config.yaml").write_text("- just\n- a list\n")
    ctr = collect_containerd(str(tmp_path / "etc"))
    assert ctr.context["status"] == "error" and ctr.context["reason"].startswith(
        "/etc/containerd/config.toml: not valid TOML"
    )
    kl = collect_kubelet(str(tmp_path / "etc"))
    assert kl.context == {
        "source": "/var/lib/kubelet/config.yaml",
        "status": "error",
        "reason": "/var/lib/kubelet/config.yaml: not a YAML mapping",
    }


def test_containerd_2_config_version_3(tmp_path: Path) -> None:
    (tmp_path / "etc/containerd").mkdir(parents=True)
    (tmp_path / "etc/containerd/config.toml").write_text(
        'version = 3\n[plugins."io.containerd.cri.v1.images"]\nsnapshotter = "overlayfs"\n'
        '[plugins."io.containerd.cri.v1.runtime"]\nenable_cdi = true\n'
        '[plugins."io.containerd.cri.v1.runtime".containerd]\ndefault_runtime_name = "nvidia"\n'
        '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]\nruntime_type = "io.containerd.runc.v2"\n'
        '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia.options]\n'
        'BinaryName = "/usr/bin/nvidia-container-runtime"\n'
        '[plugins."io.containerd.cri.v1.images".registry.configs."nvcr.io".auth]\npassword = "hunter2"\n'
    )
    assert collect_containerd(str(tmp_path / "etc")).data == {
        "version": 3,
        "default-runtime": "nvidia",
        "snapshotter": "overlayfs",
        "enable-cdi": True,
        "runtime.nvidia.type": "io.containerd.runc.v2",
        "runtime.nvidia.binary": "/usr/bin/nvidia-container-runtime",
    }


# ---------------------------------------------------------------------------------------------------- kernel


def test_kernel_config_from_proc_config_gz() -> None:
    sub = collect_kernel_config(str(DGX / "proc"), str(DGX / "etc"))
    assert sub.context == {"source": "/proc/config.gz", "status": "ok"}
    src = (HOST / "sources" / "config-5.15.0-1048-nvidia").read_bytes()
    assert sub.data["digest"] == "sha256:" + hashlib.sha256(src).hexdigest()
    assert sub.data["CONFIG_INFINIBAND"] == "m" and sub.data["CONFIG_PCI_P2PDMA"] == "y"
    assert sub.data["CONFIG_IOMMU_DEFAULT_PASSTHROUGH"] == "n" and sub.data["CONFIG_HZ"] == 250
    assert sub.data["CONFIG_LOCALVERSION"] == ""
    assert "CONFIG_EXT4_FS" not in sub.data and "CONFIG_CC_VERSION_TEXT" not in sub.data
    assert sub.data["options-set"] == parse_kernel_config(src.decode())[1] == 71


def test_kernel_config_falls_back_to_boot(tmp_path: Path) -> None:
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.8.0-45-generic\n")
    (tmp_path / "etc").mkdir()
    sub = collect_kernel_config(str(tmp_path / "proc"), str(tmp_path / "etc"))
    assert sub.context["status"] == "unavailable"
    assert sub.context["reason"] == (
        "/proc/config.gz not found (CONFIG_IKCONFIG_PROC off, or module configs not "
        "loaded); /boot/config-6.8.0-45-generic not found (is /boot mounted?)"
    )
    (tmp_path / "boot").mkdir()
    shutil.copy(HOST / "sources" / "config-5.15.0-1048-nvidia", tmp_path / "boot/config-6.8.0-45-generic")
    sub = collect_kernel_config(str(tmp_path / "proc"), str(tmp_path / "etc"))
    assert sub.context == {"source": "/boot/config-6.8.0-45-generic", "status": "ok"}
    assert sub.data["CONFIG_VFIO_PCI"] == "m"


def test_iommu_and_hugepages() -> None:
    io = collect_iommu(str(DGX / "proc"), str(DGX / "sys"))
    assert io.data == {
        "cmdline.intel_iommu": "on",
        "cmdline.iommu": "pt",
        "units": 4,
        "groups": 12,
        "domain-types": "identity",
    }
    hp = collect_hugepages(str(DGX / "sys"))
    assert hp.data == {
        "2048kb.total": 0,
        "2048kb.overcommit": 0,
        "1048576kb.total": 16,
        "1048576kb.overcommit": 0,
        "node0.2048kb.total": 0,
        "node0.1048576kb.total": 8,
        "node1.2048kb.total": 0,
        "node1.1048576kb.total": 8,
        "thp.shmem-enabled": "never",
        "thp.use-zero-page": 1,
        "thp.khugepaged-defrag": 1,
    }


# ---------------------------------------------------------------------------------------------------- wiring


def test_host_emits_network_and_runtime_and_the_schema_accepts_them() -> None:
    doc = snapshot(DGX)
    assert validate(doc, source="dgx")
    types = {m["type"]: [s["subtype"] for s in m["subtypes"]] for m in doc["measurements"]}
    assert types["Network"] == ["nic", "infiniband", "rdma-modules", "gpu-nic-affinity"]
    assert types["Runtime"] == ["containerd", "container-toolkit", "cdi", "kubelet"]
    assert types["OS"][-3:] == ["kernel-config", "iommu", "hugepages"]
    statuses = {
        s["subtype"]: s["context"]["status"]
        for m in doc["measurements"]
        if m["type"] in ("Network", "Runtime")
        for s in m["subtypes"]
    }
    assert set(statuses.values()) == {"ok"}


def test_a_host_with_none_of_it_says_why_for_each_source() -> None:
    doc = snapshot(BARE)
    got = {
        (m["type"], s["subtype"]): (s["context"]["status"], s["context"].get("reason", ""))
        for m in doc["measurements"]
        for s in m["subtypes"]
        if m["type"] in ("Network", "Runtime") or s["subtype"] in ("kernel-config", "iommu", "hugepages")
    }
    sys_root = BARE / "sys"
    assert got == {
        ("Network", "nic"): ("unavailable", f"{sys_root}/class/net not found (sysfs not mounted?)"),
        ("Network", "infiniband"): ("unavailable", f"{sys_root}/class/infiniband not found (no RDMA core loaded)"),
        ("Network", "rdma-modules"): ("ok", ""),
        ("Network", "gpu-nic-affinity"): ("unavailable", "no NVIDIA GPU on the PCI bus"),
        ("Runtime", "containerd"): ("unavailable", "/etc/containerd/config.toml not found"),
        ("Runtime", "container-toolkit"): ("unavailable", "/etc/nvidia-container-runtime/config.toml not found"),
        ("Runtime", "cdi"): ("unavailable", "neither /etc/cdi nor /var/run/cdi exists"),
        ("Runtime", "kubelet"): (
            "unavailable",
            (
                "/var/lib/kubelet/config.yaml not found (kubelet configured by flags only, or another path; the agent "
                "pod does not mount it: run 'snapshot --local' on the node)"
            ),
        ),
        ("OS", "kernel-config"): (
            "unavailable",
            "/proc/config.gz not found (CONFIG_IKCONFIG_PROC off, or module "
            "configs not loaded); /boot/config-6.1.0-28-cloud-amd64 not found (is /boot mounted?)",
        ),
        ("OS", "iommu"): ("unavailable", f"{sys_root}/class/iommu not found (kernel without IOMMU support?)"),
        ("OS", "hugepages"): (
            "unavailable",
            f"{sys_root}/kernel/mm/hugepages not found or empty (kernel without CONFIG_HUGETLBFS?)",
        ),
    }
    rdma = next(
        s
        for m in doc["measurements"]
        if m["type"] == "Network"
        for s in m["subtypes"]
        if s["subtype"] == "rdma-modules"
    )
    assert not any(rdma["data"].values())  # nothing RDMA is loaded on that VM


# ---------------------------------------------------------------------------------------------------- diff


def test_two_captures_with_different_counters_diff_clean(tmp_path: Path) -> None:
    a = snapshot(GEN.build(tmp_path / "a", counters=0))
    b = snapshot(GEN.build(tmp_path / "b", counters=5))
    result = diff_snapshots(a, b)
    assert not result.drift, [(c.path, c.base, c.current) for c in result.changes]
    assert result.ignored >= 10 + 10 * 2  # carrier-changes per NIC, lid + sm-lid per IB port
    shown = diff_snapshots(a, b, DiffOptions(include_volatile=True))
    assert {c.path for c in shown.changes if c.path.startswith("Network/")} >= {
        "Network/nic/ibp21s0.carrier-changes",
        "Network/infiniband/mlx5_0.port-1.lid",
    }
    # a real change is still found
    mtu = GEN.build(tmp_path / "c", counters=5) / "sys/class/net/ibp21s0/mtu"
    mtu.write_text("2044\n")
    changed = diff_snapshots(a, snapshot(tmp_path / "c" / GEN.TREE))
    assert [c.path for c in changed.changes] == ["Network/nic/ibp21s0.mtu"]


def test_guids_and_macs_are_identity(tmp_path: Path) -> None:
    a = snapshot(DGX)
    tree = GEN.build(tmp_path)
    (tree / "sys/class/infiniband/mlx5_3/node_guid").write_text("0000:0000:0000:0001\n")
    (tree / "sys/class/net/ibp21s0/address").write_text("20:00:10:ff:ff:ff\n")
    b = snapshot(tree)
    assert sorted(c.path for c in diff_snapshots(a, b).changes) == [
        "Network/infiniband/mlx5_3.node-guid",
        "Network/nic/ibp21s0.mac",
    ]
    assert not diff_snapshots(a, b, DiffOptions(ignore_identity=True)).drift
