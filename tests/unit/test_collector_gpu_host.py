"""collector.gpu_host: GPU facts without nvidia-smi (sysfs PCI, /proc/driver/nvidia, /sys/module, node labels) and the
consistency cross-check, on the fixture host trees built from the nvidia-smi XML fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from collector.gpu_consistency import build_consistency
from collector.gpu_host import (
    DRIVER_MODULES,
    collect_driver,
    collect_driver_gpus,
    collect_driver_params,
    collect_gpu_host,
    collect_pci,
    labels_subtype,
    parse_driver_version,
)
from collector.gpu_smi import parse_smi_xml
from collector.model import Subtype, missing

FIX = Path(__file__).resolve().parents[1] / "fixtures"
HOST = FIX / "host"
SMI = FIX / "nvidia-smi"

H100_BUSES = [
    "0000:04:00.0",
    "0000:05:00.0",
    "0000:0b:00.0",
    "0000:0c:00.0",
    "0000:84:00.0",
    "0000:85:00.0",
    "0000:8b:00.0",
    "0000:8c:00.0",
]

GFD_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.family": "hopper",
    "nvidia.com/gpu.compute.major": "9",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/cuda.driver.major": "570",
    "nvidia.com/cuda.driver.minor": "86",
    "nvidia.com/cuda.driver.rev": "15",
    "nvidia.com/cuda.runtime.major": "12",
    "nvidia.com/cuda.runtime.minor": "8",
    "nvidia.com/mig.capable": "true",
    "nvidia.com/mig.strategy": "single",
    "nvidia.com/gfd.timestamp": "1732690000",
    "nvidia.com/gpu-driver-upgrade-state": "upgrade-done",
    "feature.node.kubernetes.io/pci-10de.present": "true",
    "feature.node.kubernetes.io/kernel-version.full": "5.15.0-1048-nvidia",
    "kubernetes.io/hostname": "dgx-h100-017",
}


def tree(name: str) -> tuple[str, str]:
    return str(HOST / name / "proc"), str(HOST / name / "sys")


def smi(xml_name: str) -> list[Subtype]:
    return parse_smi_xml((SMI / xml_name).read_text())


def host(name: str, labels: dict[str, str] | None = None) -> list[Subtype]:
    proc, sys_ = tree(name)
    return collect_gpu_host(proc_root=proc, sys_root=sys_, node_labels=labels)


# ------------------------------------------------------------------------------------------------------ driver


def test_parse_driver_version_open_and_proprietary() -> None:
    open_ = (
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  "
        "(dvs-builder@U16-I3-B03-4-3)  Thu Jan 23 22:50:16 UTC 2025\nGCC version:  gcc version 12.3.0 (Ubuntu)\n"
    )
    assert parse_driver_version(open_) == {
        "kernel-module-version": "570.86.15",
        "kernel-module-type": "open",
        "kernel-module-gcc-version": "12.3.0",
    }
    prop = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  460.73.01  Thu Apr  1 21:40:36 UTC 2021\n"
    assert parse_driver_version(prop) == {"kernel-module-version": "460.73.01", "kernel-module-type": "proprietary"}
    arm = "NVRM version: NVIDIA UNIX aarch64 Kernel Module  550.54.15  Tue Mar  5 22:15:33 UTC 2024\n"
    assert parse_driver_version(arm)["kernel-module-version"] == "550.54.15"


def test_driver_h100() -> None:
    sub = collect_driver(*tree("h100x8"))
    assert sub.context["status"] == "ok"
    assert sub.data == {
        "kernel-module-version": "570.86.15",
        "kernel-module-type": "open",
        "kernel-module-gcc-version": "12.3.0",
        "module.nvidia": True,
        "module.nvidia.version": "570.86.15",
        "module.nvidia_uvm": True,
        "module.nvidia_uvm.version": "570.86.15",
        "module.nvidia_modeset": True,
        "module.nvidia_modeset.version": "570.86.15",
        "module.nvidia_drm": True,
        "module.nvidia_drm.version": "570.86.15",
        "module.nvidia_peermem": True,
        "module.nv_peer_mem": False,
        "module.nvidia_fs": False,
        "module.gdrdrv": False,
        "module.nvidia_vgpu_vfio": False,
        "module.nouveau": False,
    }


def test_driver_v100_proprietary() -> None:
    d = collect_driver(*tree("v100sx8")).data
    assert (d["kernel-module-version"], d["kernel-module-type"], d["module.nvidia_peermem"]) == (
        "460.73.01",
        "proprietary",
        False,
    )


def test_driver_absent_and_nouveau(tmp_path: Path) -> None:
    sub = collect_driver(*tree("no-gpu"))
    assert sub.context["status"] == "unavailable"
    assert sub.data == {f"module.{m}": False for m in DRIVER_MODULES}
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/modules").write_text("nouveau 2285568 0 - Live 0x0\ndrm 1 2 - Live 0x0\n")
    sub = collect_driver(str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert sub.data["module.nouveau"] is True
    assert "nouveau driver is loaded" in sub.context["reason"]


def test_driver_without_proc_modules_uses_sys_module(tmp_path: Path) -> None:
    (tmp_path / "sys/module/nvidia").mkdir(parents=True)
    (tmp_path / "sys/module/nvidia/version").write_text("535.129.03\n")
    sub = collect_driver(str(tmp_path / "proc"), str(tmp_path / "sys"))
    assert sub.data["module.nvidia"] is True and sub.data["module.nvidia.version"] == "535.129.03"
    assert sub.context["status"] == "partial"


def test_driver_params() -> None:
    sub = collect_driver_params(tree("h100x8")[0])
    assert len(sub.data) == 42
    params = (sub.data["EnableGpuFirmware"], sub.data["ResmanDebugLevel"], sub.data["RegistryDwords"])
    assert params == (18, 4294967295, "")
    assert (sub.data["NvLinkDisable"], sub.data["DeviceFileMode"]) == (0, 438)
    assert collect_driver_params(tree("no-gpu")[0]).context["status"] == "unavailable"


def test_driver_gpus_h100() -> None:
    sub = collect_driver_gpus(tree("h100x8")[0])
    assert sub.data["gpu-count"] == 8
    gpu0 = {k.split(".", 3)[-1]: v for k, v in sub.data.items() if k.startswith("0000:04:00.0.")}
    assert gpu0 == {
        "model": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-ab6ab95d-8259-5551-5962-e4a7a710fbae",
        "vbios-version": "96.00.a5.00.01",
        "bus-type": "PCIe",
        "dma-size": "47 bits",
        "dma-mask": "0x7fffffffffff",
        "device-minor": 0,
        "firmware-version": "570.86.15",
        "excluded": False,
    }
    assert sub.data["0000:8c:00.0.device-minor"] == 7
    assert not any(k.endswith(".irq") for k in sub.data)


# --------------------------------------------------------------------------------------------------------- pci


def test_pci_h100_gpus_nvswitches_not_nics() -> None:
    sub = collect_pci(tree("h100x8")[1])
    d = sub.data
    assert sub.context == {"source": "/sys/bus/pci/devices", "status": "ok"}
    assert (d["gpu-count"], d["nvswitch-count"], d["gpu-device-ids"]) == (8, 4, "0x2330")
    assert sorted(b[:-5] for b in d if b.endswith(".kind") and d[b] == "gpu") == H100_BUSES
    assert "0000:0e:00.0.kind" not in d and "0000:00:00.0.kind" not in d  # ConnectX, host bridge
    g = {k[len("0000:84:00.0.") :]: v for k, v in d.items() if k.startswith("0000:84:00.0.")}
    assert g == {
        "kind": "gpu",
        "device-id": "0x2330",
        "class": "0x030200",
        "subsystem-vendor-id": "0x10de",
        "subsystem-id": "0x16c1",
        "numa-node": 1,
        "local-cpus": "2-3,6-7",
        "driver": "nvidia",
        "link-speed-max-gts": 32.0,
        "link-gen-max": 5,
        "link-speed-current-gts": 16.0,
        "link-gen-current": 4,
        "link-width-max": 16,
        "link-width-current": 16,
    }
    assert d["0000:c5:00.0.kind"] == "nvswitch" and d["0000:c5:00.0.device-id"] == "0x22a3"
    assert "0000:c5:00.0.driver" not in d  # unbound


@pytest.mark.parametrize(
    "name, count, device_id, first_bus, gen_max, width_cur",
    [
        ("a100-mig", 1, "0x20b0", "0000:00:04.0", 4, 16),
        ("v100sx8", 8, "0x1df6", "0000:00:0d.0", 3, 16),  # old kernel format "8 GT/s"
        ("t4", 1, "0x1eb8", "0000:00:1e.0", 3, 8),
        ("geforce", 1, "0x1b82", "0000:09:00.0", 3, 16),
    ],
)
def test_pci_other_trees(name: str, count: int, device_id: str, first_bus: str, gen_max: int, width_cur: int) -> None:
    d = collect_pci(tree(name)[1]).data
    assert (d["gpu-count"], d["nvswitch-count"], d["gpu-device-ids"]) == (count, 0, device_id)
    assert d[f"{first_bus}.link-gen-max"] == gen_max
    assert d[f"{first_bus}.link-width-current"] == width_cur


def test_pci_geforce_audio_function_ignored() -> None:
    d = collect_pci(tree("geforce")[1]).data
    assert d["0000:09:00.0.class"] == "0x030000"
    assert not any(k.startswith("0000:09:00.1.") for k in d)


def test_pci_no_gpu_and_no_bus(tmp_path: Path) -> None:
    sub = collect_pci(tree("no-gpu")[1])
    assert sub.data == {"gpu-count": 0, "nvswitch-count": 0}
    assert sub.context["status"] == "unavailable" and "no NVIDIA GPU" in sub.context["reason"]
    sub = collect_pci(str(tmp_path))
    assert sub.data == {} and sub.context["status"] == "unavailable"
    assert "/sys/bus/pci/devices: not found" in sub.context["reason"]


# ------------------------------------------------------------------------------------------------------ labels


def test_labels_filtered_and_volatile_dropped() -> None:
    sub = labels_subtype(GFD_LABELS)
    assert "kubernetes.io/hostname" not in sub.data
    assert "feature.node.kubernetes.io/kernel-version.full" not in sub.data
    assert "nvidia.com/gfd.timestamp" not in sub.data and "nvidia.com/gpu-driver-upgrade-state" not in sub.data
    assert sub.data["nvidia.com/gpu.count"] == "8"
    assert sub.data["feature.node.kubernetes.io/pci-10de.present"] == "true"
    assert len(sub.data) == 15
    assert labels_subtype(None).context["status"] == "unavailable"
    none = labels_subtype({"kubernetes.io/os": "linux"})
    assert none.data == {} and none.context["status"] == "unavailable" and "feature discovery" in none.context["reason"]


def test_collect_gpu_host_order() -> None:
    assert [s.name for s in host("h100x8")] == ["driver", "driver-params", "driver-gpus", "pci", "labels"]


# ------------------------------------------------------------------------------------------------- consistency


def test_consistency_all_sources_agree() -> None:
    sub = build_consistency(smi("gpu.xml"), host("h100x8", GFD_LABELS), GFD_LABELS)
    assert sub.context["status"] == "ok"
    assert sub.context["sources"] == "label,pci,procfs,smi,sysfs"
    assert sub.data == {
        "gpu-count.smi": 8,
        "gpu-count.smi-attached": 8,
        "gpu-count.pci": 8,
        "gpu-count.procfs": 8,
        "gpu-count.label": 8,
        "gpu-count.mismatch": False,
        "driver-version.smi": "570.86.15",
        "driver-version.procfs": "570.86.15",
        "driver-version.sysfs": "570.86.15",
        "driver-version.label": "570.86.15",
        "driver-version.mismatch": False,
        "cuda-version.smi": "12.8",
        "cuda-version.label": "12.8",
        "cuda-version.mismatch": False,
        "gpu-model.smi": "NVIDIA H100 80GB HBM3",
        "gpu-model.procfs": "NVIDIA H100 80GB HBM3",
        "gpu-model.label": "NVIDIA-H100-80GB-HBM3",
        "gpu-model.mismatch": False,
        "gpu-memory-mib.smi": 81559,
        "gpu-memory-mib.label": 81559,
        "gpu-memory-mib.mismatch": False,
        "bus-ids.mismatch": False,
        "uuid.mismatch": False,
        "vbios-version.mismatch": False,  # /proc says 96.00.a5.00.01, nvidia-smi 96.00.A5.00.01: same
        "consistent": True,
        "mismatched-facts": "",
    }


def test_consistency_gpu_missing_from_the_bus(tmp_path: Path) -> None:
    shutil.copytree(HOST / "h100x8", tmp_path / "h", symlinks=True)
    (tmp_path / "h/sys/bus/pci/devices/0000:8c:00.0").unlink()  # fell off the bus
    labels = dict(GFD_LABELS, **{"nvidia.com/cuda.driver.rev": "16"})  # and the label is stale
    hs = collect_gpu_host(proc_root=str(tmp_path / "h/proc"), sys_root=str(tmp_path / "h/sys"), node_labels=labels)
    sub = build_consistency(smi("gpu.xml"), hs, labels)
    d = sub.data
    assert (d["gpu-count.smi"], d["gpu-count.pci"], d["gpu-count.procfs"], d["gpu-count.label"]) == (8, 7, 8, 8)
    assert d["gpu-count.mismatch"] is True
    assert d["bus-ids.mismatch"] is True and d["bus-ids.missing-in-pci"] == "0000:8c:00.0"
    assert "bus-ids.missing-in-smi" not in d
    assert d["driver-version.label"] == "570.86.16" and d["driver-version.mismatch"] is True
    assert d["consistent"] is False
    assert d["mismatched-facts"] == "gpu-count,driver-version,bus-ids"


def test_consistency_uuid_and_vbios_per_bus(tmp_path: Path) -> None:
    shutil.copytree(HOST / "h100x8", tmp_path / "h", symlinks=True)
    info = tmp_path / "h/proc/driver/nvidia/gpus/0000:0b:00.0/information"
    info.write_text(info.read_text().replace("96.00.a5.00.01", "96.00.99.00.01").replace("GPU-31e3", "GPU-ffff"))
    hs = collect_gpu_host(proc_root=str(tmp_path / "h/proc"), sys_root=str(tmp_path / "h/sys"))
    d = build_consistency(smi("gpu.xml"), hs).data
    assert d["uuid.mismatch"] is True and d["uuid.mismatch-bus-ids"] == "0000:0b:00.0"
    assert d["vbios-version.mismatch"] is True and d["vbios-version.mismatch-bus-ids"] == "0000:0b:00.0"
    assert d["mismatched-facts"] == "uuid,vbios-version"


def test_consistency_without_nvidia_smi_issue_8() -> None:
    no_smi = [missing("smi", source="nvidia-smi -q -x", reason="nvidia-smi not found")]
    sub = build_consistency(no_smi, host("h100x8", GFD_LABELS), GFD_LABELS)
    d = sub.data
    assert sub.context["status"] == "ok" and sub.context["sources"] == "label,pci,procfs,sysfs"
    counts = (d["gpu-count.pci"], d["gpu-count.procfs"], d["gpu-count.label"], d["gpu-count.mismatch"])
    assert counts == (8, 8, 8, False)
    assert d["driver-version.procfs"] == d["driver-version.sysfs"] == d["driver-version.label"] == "570.86.15"
    assert d["gpu-model.procfs"] == "NVIDIA H100 80GB HBM3" and d["gpu-model.mismatch"] is False
    assert "gpu-count.smi" not in d and d["bus-ids.mismatch"] is False and d["consistent"] is True


@pytest.mark.parametrize(
    "product, mismatch",
    [
        ("NVIDIA-H100-80GB-HBM3-SHARED", False),
        ("NVIDIA-H100-80GB-HBM3-MIG-1g.10gb", False),
        ("NVIDIA-A100-SXM4-80GB", True),
        ("NVIDIA-H100", True),
    ],
)
def test_label_model_normalisation(product: str, mismatch: bool) -> None:
    labels = {"nvidia.com/gpu.product": product}
    d = build_consistency(smi("gpu.xml"), host("h100x8", labels), labels).data
    assert d["gpu-model.mismatch"] is mismatch


def test_newer_gfd_version_labels() -> None:
    labels = {"nvidia.com/cuda.driver-version.full": "570.86.15", "nvidia.com/cuda.runtime-version.full": "12.9"}
    d = build_consistency(smi("gpu.xml"), host("h100x8", labels), labels).data
    assert d["driver-version.mismatch"] is False
    assert (d["cuda-version.smi"], d["cuda-version.label"], d["cuda-version.mismatch"]) == ("12.8", "12.9", True)


def test_consistency_attached_vs_listed() -> None:
    d = build_consistency(smi("a100-sxm4-80gb-x1-535.54.03.xml"), []).data
    assert (d["gpu-count.smi"], d["gpu-count.smi-attached"], d["gpu-count.mismatch"]) == (1, 4, True)


def test_no_nvidia_anywhere_is_unavailable_not_an_exception() -> None:
    no_smi = [missing("smi", source="nvidia-smi -q -x", reason="nvidia-smi not found")]
    hs = host("no-gpu", {"kubernetes.io/os": "linux"})
    assert [s.context["status"] for s in hs] == ["unavailable"] * 5
    sub = build_consistency(no_smi, hs, {"kubernetes.io/os": "linux"})
    assert sub.context["status"] == "unavailable" and sub.context["reason"] == "no source found an NVIDIA GPU"
    assert sub.data == {"gpu-count.pci": 0, "consistent": True, "mismatched-facts": ""}
    empty = build_consistency(no_smi, [missing("pci", source="/sys/bus/pci/devices", reason="x")])
    assert empty.data == {} and empty.context["status"] == "unavailable"


@pytest.mark.parametrize(
    "tree_name, xml_name",
    [
        ("a100-mig", "a100-sxm4-40gb-x1-510.47.03.xml"),
        ("v100sx8", "v100s-pcie-32gb-x8-460.73.01.xml"),
        ("t4", "tesla-t4-x1-515.105.01.xml"),
        ("geforce", "gtx1070ti-x1-470.82.00.xml"),
    ],
)
def test_trees_agree_with_their_xml(tree_name: str, xml_name: str) -> None:
    sub = build_consistency(smi(xml_name), host(tree_name))
    assert sub.data["consistent"] is True, sub.data
    assert sub.data["gpu-count.pci"] == sub.data["gpu-count.smi"] == sub.data["gpu-count.procfs"]
