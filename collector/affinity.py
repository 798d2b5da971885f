"""GPU-NIC affinity from the sysfs PCI tree (measurement ``Network``, subtype ``gpu-nic-affinity``).

What ``nvidia-smi topo -m`` prints for GPU/NIC pairs, derived without the driver: sysfs lays PCI functions out as
their bridges nest (``/sys/devices/pci0000:10/0000:10:01.0/0000:11:00.0/.../0000:14:00.0``), so the path each
GPU and NIC resolves to tells which bridges and which root complex they share. For GPU ``g`` and NIC ``n`` (a NIC is
named by its RDMA device when it has one, as ``topo -m``'s legend does, else by its netdev):

``PIX``   same PCIe switch: their deepest common ancestor is a PCI bridge at most two levels above each of them
          (a switch's upstream port, its downstream ports, the devices);
``PXB``   a common PCI bridge further up (several switches, no host bridge crossed);
``PHB``   only the root complex (``pci<domain>:<bus>``) in common;
``NODE``  different root complexes, same NUMA node;
``SYS``   different NUMA nodes (or unknown).

Keys: ``<gpu>.<nic>`` (one of the above), ``<gpu>.numa-node``, ``<gpu>.nics-same-switch`` and
``<gpu>.nics-same-numa`` (comma lists, ``""`` when none), ``gpu-count``, ``nic-count``, ``nvswitch-count`` (NVIDIA
class ``0x0680`` functions: the NVSwitches of an HGX board; their link state is in ``GPU/gpu-<i>``'s ``nvlink-*``
keys from ``nvidia-smi nvlink -s``). ``<gpu>`` is the sysfs bus address. ``unavailable`` without GPUs or without NICs.
"""

from __future__ import annotations

import os
import re

from collector._util import as_int, join, try_read_line
from collector.model import Scalar, Subtype, missing, reading

__all__ = ["collect_affinity", "relation"]

_PCI_ADDR = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
_ROOT = re.compile(r"pci[0-9a-f]{4}:[0-9a-f]{2}")


def _chain(path: str) -> list[str]:
    """``/sys/devices/pci0000:10/0000:10:01.0/0000:11:00.0`` -> ``["pci0000:10", "0000:10:01.0", "0000:11:00.0"]``."""
    parts = [p for p in path.split("/") if p]
    for i, p in enumerate(parts):
        if _ROOT.fullmatch(p):
            return [p, *[q for q in parts[i + 1 :] if _PCI_ADDR.fullmatch(q)]]
    return []


def relation(a: list[str], b: list[str], numa_a: int | None, numa_b: int | None) -> str:
    """The ``topo -m`` word for two devices given their PCI chains (see the module docstring)."""
    common = 0
    for x, y in zip(a, b):
        if x != y:
            break
        common += 1
    if common >= 2:  # a shared PCI bridge below the root complex
        return "PIX" if max(len(a), len(b)) - common <= 2 else "PXB"
    if common == 1:
        return "PHB"
    if numa_a is not None and numa_a >= 0 and numa_a == numa_b:
        return "NODE"
    return "SYS"


def _devices(sys_root: str) -> dict[str, str]:
    base = join(sys_root, "bus/pci/devices")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return {}
    return {n: os.path.realpath(os.path.join(base, n)) for n in names}


def _nics(sys_root: str) -> dict[str, str]:
    """NIC name -> PCI address: RDMA devices first, then netdevs on functions without one."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for cls in ("class/infiniband", "class/net"):
        base = join(sys_root, cls)
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            dev = os.path.join(base, name, "device")
            if not os.path.exists(dev):
                continue
            addr = os.path.basename(os.path.realpath(dev))
            if _PCI_ADDR.fullmatch(addr) and addr not in seen:
                seen.add(addr)
                out[name] = addr
    return out


def collect_affinity(sys_root: str = "/sys") -> Subtype:
    devices = _devices(sys_root)
    if not devices:
        return missing(
            "gpu-nic-affinity",
            source="/sys/bus/pci/devices",
            reason=f"{join(sys_root, 'bus/pci/devices')} not found or empty",
        )
    gpus: list[str] = []
    nvswitches = 0
    for bus, real in devices.items():
        vendor = try_read_line(os.path.join(real, "vendor"))
        cls = (try_read_line(os.path.join(real, "class")) or "").lower()
        if vendor != "0x10de":
            continue
        if cls.startswith("0x03"):
            gpus.append(bus)
        elif cls.startswith("0x0680"):
            nvswitches += 1
    nics = _nics(sys_root)
    if not gpus:
        return missing("gpu-nic-affinity", source="/sys/bus/pci/devices", reason="no NVIDIA GPU on the PCI bus")
    if not nics:
        return missing(
            "gpu-nic-affinity",
            source="/sys/class/net, /sys/class/infiniband",
            reason="no PCI network device to relate the GPUs to",
        )

    def numa(bus: str) -> int | None:
        return as_int(try_read_line(os.path.join(devices[bus], "numa_node"))) if bus in devices else None

    data: dict[str, Scalar] = {"gpu-count": len(gpus), "nic-count": len(nics), "nvswitch-count": nvswitches}
    for gpu in gpus:
        g_chain, g_numa = _chain(devices[gpu]), numa(gpu)
        same_switch: list[str] = []
        same_numa: list[str] = []
        for name, addr in nics.items():
            n_numa = numa(addr)
            rel = relation(g_chain, _chain(devices.get(addr, "")), g_numa, n_numa)
            data[f"{gpu}.{name}"] = rel
            if rel in ("PIX", "PXB"):
                same_switch.append(name)
            if g_numa is not None and g_numa >= 0 and g_numa == n_numa:
                same_numa.append(name)
        if g_numa is not None:
            data[f"{gpu}.numa-node"] = g_numa
        data[f"{gpu}.nics-same-switch"] = ",".join(same_switch)
        data[f"{gpu}.nics-same-numa"] = ",".join(same_numa)
    return reading("gpu-nic-affinity", data, source="/sys/bus/pci/devices, /sys/class/{net,infiniband}")
