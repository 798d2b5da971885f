"""GPU facts that need no nvidia-smi: kernel driver, PCI bus, /proc/driver/nvidia, node labels, and a cross-check.

These subtypes join ``smi``/``gpu-<i>`` (see :mod:`collector.gpu_smi`) in the one ``GPU`` measurement.

``driver``        the NVIDIA kernel driver, from ``/proc/driver/nvidia/version`` and ``/sys/module``:
                  ``kernel-module-version`` (``"570.86.15"``), ``kernel-module-type`` (``open``/``proprietary``),
                  ``kernel-module-gcc-version``; for each module of :data:`DRIVER_MODULES`
                  ``module.<name>`` (bool: loaded) and ``module.<name>.version`` (``/sys/module/<name>/version``).
``driver-params`` ``/proc/driver/nvidia/params``: the driver's registry parameters under their own names
                  (``EnableGpuFirmware: 18``, ``RegistryDwords: ""``), ints as ints.
``driver-gpus``   ``/proc/driver/nvidia/gpus/<bus>/information``: ``gpu-count`` and ``<bus>.model``, ``<bus>.uuid``,
                  ``<bus>.vbios-version``, ``<bus>.bus-type``, ``<bus>.dma-size``, ``<bus>.dma-mask``,
                  ``<bus>.device-minor`` (int), ``<bus>.excluded`` (bool), ``<bus>.firmware-version``. (IRQ is left out:
                  it may change at every boot.)
``pci``           NVIDIA (vendor ``0x10de``) functions under ``/sys/bus/pci/devices`` that are GPUs (class ``0x03xxxx``)
                  or NVSwitches (class ``0x0680xx``); audio/USB/UCSI functions of consumer cards are ignored.
                  ``gpu-count``, ``nvswitch-count``, ``gpu-device-ids`` (sorted, comma-separated), and per device
                  ``<bus>.kind`` (``gpu``/``nvswitch``), ``<bus>.device-id``, ``<bus>.subsystem-vendor-id``,
                  ``<bus>.subsystem-id``, ``<bus>.class``, ``<bus>.numa-node`` (int; -1 = none), ``<bus>.local-cpus``,
                  ``<bus>.driver`` (bound kernel driver; absent when none), ``<bus>.link-speed-{max,current}-gts``
                  (float GT/s), ``<bus>.link-gen-{max,current}`` (int, derived from the speed),
                  ``<bus>.link-width-{max,current}`` (int lanes).
``labels``        the node's GPU labels as given by the caller (``node_labels``): every ``nvidia.com/*`` label and the
                  NFD ``feature.node.kubernetes.io/pci-10de*`` ones, as strings, under their own keys, except the
                  volatile ``*.timestamp`` and ``nvidia.com/gpu-driver-upgrade-state``.
``consistency`` (the same facts from every source side by side) is :mod:`collector.gpu_consistency`'s.

Bus addresses ``<bus>`` are in sysfs form everywhere (``0000:04:00.0``) so keys line up across sources.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

from collector._util import as_int, collapse_ws, colon_pairs, join, normalize_bus_id, try_read, try_read_line, typed
from collector.keys import VOLATILE, matcher
from collector.model import STATUS_PARTIAL, STATUS_UNAVAILABLE, Scalar, Subtype, missing, reading

__all__ = [
    "DRIVER_MODULES",
    "GPU_HOST_SUBTYPES",
    "collect_driver",
    "collect_driver_gpus",
    "collect_driver_params",
    "collect_gpu_host",
    "collect_pci",
    "labels_subtype",
    "parse_driver_params",
    "parse_driver_version",
    "parse_gpu_information",
]

NVIDIA_VENDOR = "0x10de"

#: Kernel modules reported by ``driver`` (loaded or not): the driver stack, GPUDirect pieces, and nouveau (a conflict).
DRIVER_MODULES: tuple[str, ...] = (
    "nvidia",
    "nvidia_uvm",
    "nvidia_modeset",
    "nvidia_drm",
    "nvidia_peermem",
    "nv_peer_mem",
    "nvidia_fs",
    "gdrdrv",
    "nvidia_vgpu_vfio",
    "nouveau",
)

_GT_TO_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6, 128.0: 7}

_INFO_KEYS = {
    "model": "model",
    "gpu uuid": "uuid",
    "video bios": "vbios-version",
    "bus type": "bus-type",
    "dma size": "dma-size",
    "dma mask": "dma-mask",
    "device minor": "device-minor",
    "gpu excluded": "excluded",
    "gpu firmware": "firmware-version",
}
_INFO_SKIP = {"irq", "bus location"}

#: Volatile labels (``*.timestamp``, the driver upgrade state): the key registry's (:mod:`collector.keys`).
_VOLATILE_LABELS = matcher("GPU", "labels", VOLATILE)


# ------------------------------------------------------------------------------------------------------ parsers


def parse_driver_version(text: str) -> dict[str, Scalar]:
    """``/proc/driver/nvidia/version`` -> ``kernel-module-version``, ``kernel-module-type``,
    ``kernel-module-gcc-version``.

    ``NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (...)  <date>`` or
    ``NVRM version: NVIDIA UNIX x86_64 Kernel Module  460.73.01  <date>``; then ``GCC version:  gcc version 12.3.0
    (...)``.
    """
    out: dict[str, Scalar] = {}
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            rest = line.split(":", 1)[1]
            m = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", rest)
            if m:
                out["kernel-module-version"] = m.group(1)
            out["kernel-module-type"] = "open" if "Open Kernel Module" in rest else "proprietary"
        elif line.startswith("GCC version:"):
            m = re.search(r"gcc version (\S+)", line)
            if m:
                out["kernel-module-gcc-version"] = m.group(1)
    return out


def parse_gpu_information(text: str) -> dict[str, Scalar]:
    """One ``/proc/driver/nvidia/gpus/<bus>/information`` file -> kebab-case keys (see the module docstring)."""
    out: dict[str, Scalar] = {}
    for label, value in colon_pairs(text):
        label = collapse_ws(label).lower()
        value = collapse_ws(value)
        if label in _INFO_SKIP:
            continue
        key = _INFO_KEYS.get(label) or re.sub(r"[^a-z0-9]+", "-", label).strip("-")
        if not key:
            continue
        if key == "excluded" and value.lower() in ("yes", "no"):
            out[key] = value.lower() == "yes"
        elif key == "device-minor":
            out[key] = typed(value)
        else:
            out[key] = value
    return out


def parse_driver_params(text: str) -> dict[str, Scalar]:
    """``/proc/driver/nvidia/params`` (``Name: value`` lines) -> ``{Name: int | str}``; quotes
    around strings removed."""
    out: dict[str, Scalar] = {}
    for name, value in colon_pairs(text):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            out[name] = value[1:-1]
        else:
            out[name] = typed(value)
    return out


def _parse_speed(text: str | None) -> float | None:
    """``"16.0 GT/s PCIe"`` / ``"8 GT/s"`` -> 16.0 / 8.0; ``"Unknown"`` -> None."""
    if not text:
        return None
    m = re.match(r"\s*([0-9.]+)\s*GT/s", text)
    return float(m.group(1)) if m else None


# ------------------------------------------------------------------------------------------------------ readers


def _loaded_modules(proc_root: str) -> set[str] | None:
    text = try_read(join(proc_root, "modules"))
    if text is None:
        return None
    return {line.split()[0] for line in text.splitlines() if line.split()}


def collect_driver(proc_root: str = "/proc", sys_root: str = "/sys") -> Subtype:
    data: dict[str, Scalar] = {}
    version_text = try_read(join(proc_root, "driver/nvidia/version"))
    if version_text:
        data.update(parse_driver_version(version_text))
    loaded = _loaded_modules(proc_root)
    for mod in DRIVER_MODULES:
        mod_dir = join(sys_root, "module", mod)
        is_loaded = (mod in loaded) if loaded is not None else os.path.isdir(mod_dir)
        data[f"module.{mod}"] = is_loaded
        if is_loaded:
            ver = try_read_line(os.path.join(mod_dir, "version"))
            if ver:
                data[f"module.{mod}.version"] = ver
    source = "/proc/driver/nvidia/version, /proc/modules, /sys/module"
    if not version_text and not data.get("module.nvidia"):
        reason = "NVIDIA kernel driver not loaded (no /proc/driver/nvidia/version, module nvidia not loaded)"
        if data.get("module.nouveau"):
            reason += "; the nouveau driver is loaded"
        return reading("driver", data, source=source, status=STATUS_UNAVAILABLE, reason=reason)
    if not version_text:
        return reading(
            "driver", data, source=source, status=STATUS_PARTIAL, reason="/proc/driver/nvidia/version not readable"
        )
    return reading("driver", data, source=source)


def collect_driver_params(proc_root: str = "/proc") -> Subtype:
    path = join(proc_root, "driver/nvidia/params")
    text = try_read(path)
    if text is None:
        return missing(
            "driver-params", source="/proc/driver/nvidia/params", reason="not readable (NVIDIA driver not loaded?)"
        )
    return reading("driver-params", parse_driver_params(text), source="/proc/driver/nvidia/params")


def _listdir(path: str) -> tuple[list[str] | None, str]:
    """Sorted entries of ``path``, or (None, why it could not be listed)."""
    try:
        return sorted(os.listdir(path)), ""
    except OSError as e:
        return None, "not found" if isinstance(e, FileNotFoundError) else (e.strerror or str(e))


def collect_driver_gpus(proc_root: str = "/proc") -> Subtype:
    base = join(proc_root, "driver/nvidia/gpus")
    source = "/proc/driver/nvidia/gpus/*/information"
    entries, why = _listdir(base)
    if entries is None:
        return missing(
            "driver-gpus", source=source, reason=f"/proc/driver/nvidia/gpus: {why} (NVIDIA driver not loaded?)"
        )
    data: dict[str, Scalar] = {}
    unreadable: list[str] = []
    count = 0
    for entry in entries:
        text = try_read(os.path.join(base, entry, "information"))
        if text is None:
            unreadable.append(entry)
            continue
        count += 1
        bus = normalize_bus_id(entry)
        for k, v in parse_gpu_information(text).items():
            data[f"{bus}.{k}"] = v
    data["gpu-count"] = count
    if unreadable:
        return reading(
            "driver-gpus", data, source=source, status=STATUS_PARTIAL, reason="unreadable: " + ", ".join(unreadable)
        )
    return reading("driver-gpus", data, source=source)


def _pci_kind(cls: str) -> str | None:
    c = cls.lower().removeprefix("0x")
    if c.startswith("03"):
        return "gpu"
    if c.startswith("0680"):
        return "nvswitch"
    return None


def collect_pci(sys_root: str = "/sys") -> Subtype:
    base = join(sys_root, "bus/pci/devices")
    source = "/sys/bus/pci/devices"
    entries, why = _listdir(base)
    if entries is None:
        return missing("pci", source=source, reason=f"PCI bus not visible: /sys/bus/pci/devices: {why}")
    data: dict[str, Scalar] = {}
    gpus = nvswitches = 0
    device_ids: set[str] = set()
    for entry in entries:
        dev = os.path.join(base, entry)
        vendor = (try_read_line(os.path.join(dev, "vendor")) or "").lower()
        if vendor != NVIDIA_VENDOR:
            continue
        cls = (try_read_line(os.path.join(dev, "class")) or "").lower()
        kind = _pci_kind(cls)
        if kind is None:
            continue
        bus = normalize_bus_id(entry)
        device_id = (try_read_line(os.path.join(dev, "device")) or "").lower()
        data[f"{bus}.kind"] = kind
        data[f"{bus}.device-id"] = device_id
        data[f"{bus}.class"] = cls
        for key, name in (("subsystem-vendor-id", "subsystem_vendor"), ("subsystem-id", "subsystem_device")):
            v = try_read_line(os.path.join(dev, name))
            if v:
                data[f"{bus}.{key}"] = v.lower()
        numa = as_int(try_read_line(os.path.join(dev, "numa_node")))
        if numa is not None:
            data[f"{bus}.numa-node"] = numa
        cpus = try_read_line(os.path.join(dev, "local_cpulist"))
        if cpus:
            data[f"{bus}.local-cpus"] = cpus
        driver_link = os.path.join(dev, "driver")
        if os.path.islink(driver_link):
            data[f"{bus}.driver"] = os.path.basename(os.readlink(driver_link))
        for which in ("max", "current"):
            raw_speed = try_read_line(os.path.join(dev, f"{which}_link_speed"))
            if raw_speed is not None:
                speed = _parse_speed(raw_speed)
                data[f"{bus}.link-speed-{which}-gts"] = speed
                data[f"{bus}.link-gen-{which}"] = _GT_TO_GEN.get(speed) if speed is not None else None
            width = try_read_line(os.path.join(dev, f"{which}_link_width"))
            if width is not None:
                data[f"{bus}.link-width-{which}"] = as_int(width)
        if kind == "gpu":
            gpus += 1
            device_ids.add(device_id)
        else:
            nvswitches += 1
    data["gpu-count"] = gpus
    data["nvswitch-count"] = nvswitches
    if gpus:
        data["gpu-device-ids"] = ",".join(sorted(device_ids))
        return reading("pci", data, source=source)
    return reading(
        "pci",
        data,
        source=source,
        status=STATUS_UNAVAILABLE,
        reason="no NVIDIA GPU (vendor 0x10de, class 0x03xxxx) on the PCI bus",
    )


def labels_subtype(node_labels: Mapping[str, str] | None) -> Subtype:
    """The node's GPU-related labels (see the module docstring). ``None`` means the caller could not fetch them."""
    source = "node labels"
    if node_labels is None:
        return missing("labels", source=source, reason="node labels not provided (no Kubernetes access)")
    data: dict[str, Scalar] = {}
    for key, value in node_labels.items():
        if not (key.startswith("nvidia.com/") or key.startswith("feature.node.kubernetes.io/pci-10de")):
            continue
        if key in _VOLATILE_LABELS:
            continue
        data[key] = str(value)
    if not data:
        return reading(
            "labels",
            {},
            source=source,
            status=STATUS_UNAVAILABLE,
            reason="no nvidia.com/* or NFD pci-10de labels on the node (GPU feature discovery not running?)",
        )
    return reading("labels", data, source=source)


#: What :func:`collect_gpu_host` yields, in that order.
GPU_HOST_SUBTYPES = ("driver", "driver-params", "driver-gpus", "pci", "labels")


def collect_gpu_host(
    *, proc_root: str = "/proc", sys_root: str = "/sys", node_labels: Mapping[str, str] | None = None
) -> list[Subtype]:
    """:data:`GPU_HOST_SUBTYPES`. Never raises for a missing source."""
    return [
        collect_driver(proc_root, sys_root),
        collect_driver_params(proc_root),
        collect_driver_gpus(proc_root),
        collect_pci(sys_root),
        labels_subtype(node_labels),
    ]
