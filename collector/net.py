"""Network facts of the host (measurement type ``Network``): NICs, InfiniBand/RoCE devices, RDMA modules.

Everything is read from sysfs/procfs under the given roots; nothing is written and no tool (``ibstat``, ``ethtool``)
is run. Subtypes, in emitted order:

``nic``           one block of keys per physical netdev under ``/sys/class/net`` (virtual ones, whose sysfs path is
                  under ``/sys/devices/virtual/`` or that have no ``device`` link, are skipped; so are netdevs without
                  a PCI parent). ``<if>.driver``, ``<if>.pci-address``, ``<if>.numa-node`` (int, -1 = none),
                  ``<if>.mtu`` (int), ``<if>.speed-mbps`` (int; absent while the link is down: the kernel refuses to
                  read it), ``<if>.operstate``, ``<if>.type`` (``ether``/``infiniband``/the ARPHRD number),
                  ``<if>.sriov-totalvfs`` / ``<if>.sriov-numvfs`` (int, when the function supports SR-IOV),
                  ``<if>.firmware-version`` (the RDMA device's ``fw_ver`` on the same PCI function: sysfs has no
                  firmware file for a plain netdev), ``<if>.rdma-device``, ``<if>.mac`` (identity) and
                  ``<if>.carrier-changes`` (a counter: volatile). ``nic-count`` counts them.
``infiniband``    one block per device under ``/sys/class/infiniband``: ``<dev>.fw-ver``, ``<dev>.board-id``,
                  ``<dev>.hca-type``, ``<dev>.node-type``, ``<dev>.pci-address``, ``<dev>.netdevs`` (comma list),
                  ``<dev>.node-guid`` / ``<dev>.sys-image-guid`` (identity), and per port ``<dev>.port-<n>.state``
                  (``ACTIVE``...), ``.phys-state`` (``LinkUp``...), ``.rate`` (``400 Gb/sec (4X NDR)``),
                  ``.link-layer`` (``InfiniBand``/``Ethernet``: RoCE), ``.lid`` / ``.sm-lid`` (assigned by the subnet
                  manager: volatile). Counters (``ports/*/counters``, ``hw_counters``) are never read.
``rdma-modules``  for each module of :data:`RDMA_MODULES`: ``<name>`` (bool: loaded, from ``/proc/modules``) and
                  ``<name>.version`` (``/sys/module/<name>/version`` when the module declares one).

Each subtype is ``unavailable`` with the reason when its source is absent (no ``/sys/class/net``, no RDMA device...).
"""

from __future__ import annotations

import os
import re

from collector._util import as_int, join, try_read, try_read_line
from collector.model import Scalar, Subtype, missing, reading
from collector.os_info import parse_modules

__all__ = ["RDMA_MODULES", "collect_infiniband", "collect_nics", "collect_rdma_modules"]

#: RDMA / GPUDirect kernel modules reported by ``rdma-modules`` (loaded or not).
RDMA_MODULES: tuple[str, ...] = (
    "ib_core",
    "ib_uverbs",
    "ib_umad",
    "ib_ipoib",
    "rdma_cm",
    "rdma_ucm",
    "iw_cm",
    "ib_cm",
    "mlx5_core",
    "mlx5_ib",
    "mlx4_core",
    "mlx4_ib",
    "irdma",
    "bnxt_re",
    "efa",
    "nvidia_peermem",
    "nv_peer_mem",
    "gdrdrv",
    "nvme_rdma",
    "rpcrdma",
)

#: ARPHRD numbers (``/sys/class/net/<if>/type``) worth naming.
_ARPHRD = {1: "ether", 32: "infiniband", 772: "loopback"}
_PCI_ADDR = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def _listdir(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def _pci_address(dev_link: str) -> str | None:
    """The PCI function a ``device`` link points at (``.../0000:1b:00.0``), or None for a non-PCI parent."""
    try:
        target = os.path.realpath(dev_link)
    except OSError:
        return None
    name = os.path.basename(target)
    return name if _PCI_ADDR.fullmatch(name) else None


def _driver(dev_link: str) -> str | None:
    path = os.path.join(dev_link, "driver")
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def _rdma_of_function(dev_link: str) -> list[str]:
    return _listdir(os.path.join(dev_link, "infiniband")) or []


def collect_nics(sys_root: str = "/sys") -> Subtype:
    base = join(sys_root, "class/net")
    names = _listdir(base)
    if names is None:
        return missing("nic", source="/sys/class/net", reason=f"{base} not found (sysfs not mounted?)")
    data: dict[str, Scalar] = {}
    count = 0
    for name in names:
        path = os.path.join(base, name)
        dev = os.path.join(path, "device")
        if "/devices/virtual/" in os.path.realpath(path) or not os.path.exists(dev):
            continue  # lo, bridges, veth, bonds, vxlan, tunnels: no device of their own
        addr = _pci_address(dev)
        if addr is None:
            continue
        count += 1
        data[f"{name}.pci-address"] = addr
        drv = _driver(dev)
        if drv:
            data[f"{name}.driver"] = drv
        for key, rel in (
            ("numa-node", "device/numa_node"),
            ("mtu", "mtu"),
            ("speed-mbps", "speed"),
            ("sriov-totalvfs", "device/sriov_totalvfs"),
            ("sriov-numvfs", "device/sriov_numvfs"),
            ("carrier-changes", "carrier_changes"),
        ):
            value = as_int(try_read_line(os.path.join(path, rel)))
            if value is not None and not (key == "speed-mbps" and value < 0):
                data[f"{name}.{key}"] = value
        oper = try_read_line(os.path.join(path, "operstate"))
        if oper:
            data[f"{name}.operstate"] = oper
        kind = as_int(try_read_line(os.path.join(path, "type")))
        if kind is not None:
            data[f"{name}.type"] = _ARPHRD.get(kind, str(kind))
        mac = try_read_line(os.path.join(path, "address"))
        if mac:
            data[f"{name}.mac"] = mac
        rdma = _rdma_of_function(dev)
        if rdma:
            data[f"{name}.rdma-device"] = ",".join(rdma)
            fw = try_read_line(os.path.join(dev, "infiniband", rdma[0], "fw_ver"))
            if fw:
                data[f"{name}.firmware-version"] = fw
    if not count:
        return missing("nic", source="/sys/class/net", reason="no physical (PCI) network device under /sys/class/net")
    data["nic-count"] = count
    return reading("nic", data, source="/sys/class/net")


def _state(text: str | None) -> str | None:
    """``"4: ACTIVE"`` -> ``"ACTIVE"``; ``"5: LinkUp"`` -> ``"LinkUp"``."""
    if text is None:
        return None
    return text.split(":", 1)[1].strip() if ":" in text else text.strip()


def collect_infiniband(sys_root: str = "/sys") -> Subtype:
    base = join(sys_root, "class/infiniband")
    names = _listdir(base)
    if not names:
        why = (
            "no RDMA device (no InfiniBand/RoCE adapter, or its driver is not loaded)"
            if names is not None
            else (f"{base} not found (no RDMA core loaded)")
        )
        return missing("infiniband", source="/sys/class/infiniband", reason=why)
    data: dict[str, Scalar] = {}
    for dev in names:
        path = os.path.join(base, dev)
        for key, rel in (
            ("fw-ver", "fw_ver"),
            ("board-id", "board_id"),
            ("hca-type", "hca_type"),
            ("node-guid", "node_guid"),
            ("sys-image-guid", "sys_image_guid"),
        ):
            value = try_read_line(os.path.join(path, rel))
            if value:
                data[f"{dev}.{key}"] = value
        node_type = _state(try_read_line(os.path.join(path, "node_type")))
        if node_type:
            data[f"{dev}.node-type"] = node_type
        addr = _pci_address(os.path.join(path, "device"))
        if addr:
            data[f"{dev}.pci-address"] = addr
        netdevs = _listdir(os.path.join(path, "device", "net"))
        if netdevs:
            data[f"{dev}.netdevs"] = ",".join(netdevs)
        for port in _listdir(os.path.join(path, "ports")) or []:
            pdir = os.path.join(path, "ports", port)
            pre = f"{dev}.port-{port}"
            for key, rel, fn in (
                ("state", "state", _state),
                ("phys-state", "phys_state", _state),
                ("rate", "rate", None),
                ("link-layer", "link_layer", None),
                ("lid", "lid", None),
                ("sm-lid", "sm_lid", None),
            ):
                raw = try_read_line(os.path.join(pdir, rel))
                value = fn(raw) if fn else raw
                if value:
                    data[f"{pre}.{key}"] = value
    return reading("infiniband", data, source="/sys/class/infiniband")


def collect_rdma_modules(proc_root: str = "/proc", sys_root: str = "/sys") -> Subtype:
    text = try_read(join(proc_root, "modules"))
    if text is None:
        return missing(
            "rdma-modules",
            source="/proc/modules",
            reason=f"{join(proc_root, 'modules')} not readable (kernel without loadable modules?)",
        )
    loaded = parse_modules(text)
    data: dict[str, Scalar] = {}
    for mod in RDMA_MODULES:
        data[mod] = mod in loaded
        version = try_read_line(join(sys_root, "module", mod, "version"))
        if version:
            data[f"{mod}.version"] = version
    return reading("rdma-modules", data, source="/proc/modules, /sys/module/*/version")
