"""Kernel build configuration, IOMMU mode and hugepages (more subtypes of the ``OS`` measurement).

``kernel-config``  the running kernel's build config, from ``/proc/config.gz`` (``CONFIG_IKCONFIG_PROC``) or else
                   ``/boot/config-<release>``: the options of :data:`CONFIG_NAMES` and :data:`CONFIG_PREFIXES` (the
                   ones that matter for GPU, RDMA, IOMMU/VFIO, hugepage, NUMA and cgroup work) under their own names
                   (``CONFIG_INFINIBAND: "m"``; ``"n"`` for ``# CONFIG_X is not set``; numbers as ints, strings
                   unquoted), ``digest`` (``sha256:<hex>`` of the whole decompressed text, so any other difference
                   still shows) and ``options-set`` (how many options are set at all).
``iommu``          ``units`` (entries of ``/sys/class/iommu``: ``dmar0``, ``ivhd0``...), ``groups`` (of
                   ``/sys/kernel/iommu_groups``), ``domain-types`` (the sorted set of the groups' ``type``:
                   ``identity`` is passthrough, ``DMA``/``DMA-FQ`` translated), and the command-line switches
                   ``cmdline.<param>`` for ``intel_iommu``, ``amd_iommu``, ``iommu``, ``iommu.passthrough``,
                   ``iommu.strict``.
``hugepages``      per pool size ``<size>kb.total`` and ``<size>kb.overcommit``, per NUMA node
                   ``node<N>.<size>kb.total``, and the transparent-hugepage settings not in ``memory``:
                   ``thp.shmem-enabled``, ``thp.use-zero-page``, ``thp.khugepaged-defrag``. (Free/surplus pages are
                   usage, not configuration, and are not read.)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from typing import Any, Callable

from collector._util import as_int, join, read_text, short_error, try_read, try_read_line, typed
from collector.model import STATUS_ERROR, Scalar, Subtype, missing, reading
from collector.os_info import parse_cmdline

__all__ = [
    "CONFIG_NAMES",
    "CONFIG_PREFIXES",
    "collect_hugepages",
    "collect_iommu",
    "collect_kernel_config",
    "parse_kernel_config",
]

#: Whole option names kept.
CONFIG_NAMES: frozenset[str] = frozenset(
    {
        "CONFIG_NUMA",
        "CONFIG_PCI_P2PDMA",
        "CONFIG_PCI_IOV",
        "CONFIG_PCI_ATS",
        "CONFIG_PCI_PRI",
        "CONFIG_PCI_PASID",
        "CONFIG_ZONE_DEVICE",
        "CONFIG_DEVICE_PRIVATE",
        "CONFIG_HMM_MIRROR",
        "CONFIG_MMU_NOTIFIER",
        "CONFIG_DMA_SHARED_BUFFER",
        "CONFIG_MEMCG",
        "CONFIG_CGROUPS",
        "CONFIG_CPUSETS",
        "CONFIG_BPF_SYSCALL",
        "CONFIG_HZ",
        "CONFIG_NO_HZ_FULL",
        "CONFIG_X86_5LEVEL",
        "CONFIG_LOCALVERSION",
        "CONFIG_DRM_NOUVEAU",
        "CONFIG_SECURITY_LOCKDOWN_LSM",
        "CONFIG_SECURITY_LOCKDOWN_LSM_EARLY",
        "CONFIG_IKCONFIG_PROC",
        "CONFIG_NET_DEVLINK",
        "CONFIG_OVERLAY_FS",
        "CONFIG_BRIDGE_NETFILTER",
        "CONFIG_USER_NS",
    }
)
#: Option name prefixes kept.
CONFIG_PREFIXES: tuple[str, ...] = (
    "CONFIG_IOMMU_",
    "CONFIG_INTEL_IOMMU",
    "CONFIG_AMD_IOMMU",
    "CONFIG_ARM_SMMU",
    "CONFIG_VFIO",
    "CONFIG_HUGETLB",
    "CONFIG_TRANSPARENT_HUGEPAGE",
    "CONFIG_INFINIBAND",
    "CONFIG_MLX5_",
    "CONFIG_MLX4_",
    "CONFIG_RDMA",
    "CONFIG_NUMA_BALANCING",
    "CONFIG_PCIEASPM",
    "CONFIG_CGROUP_",
    "CONFIG_MODULE_SIG",
    "CONFIG_PREEMPT",
    "CONFIG_LOCK_DOWN_",
)
_SET = re.compile(r"(CONFIG_[A-Za-z0-9_]+)=(.*)")
_UNSET = re.compile(r"# (CONFIG_[A-Za-z0-9_]+) is not set")
_IOMMU_PARAMS = ("intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict")


def _wanted(name: str) -> bool:
    return name in CONFIG_NAMES or name.startswith(CONFIG_PREFIXES)


def parse_kernel_config(text: str) -> tuple[dict[str, Scalar], int]:
    """``.config`` text -> (the kept options, how many options are set in all)."""
    out: dict[str, Scalar] = {}
    total = 0
    for raw in text.splitlines():
        line = raw.strip()
        m = _SET.fullmatch(line)
        if m:
            total += 1
            if _wanted(m.group(1)):
                value = m.group(2)
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    out[m.group(1)] = value[1:-1]
                else:
                    out[m.group(1)] = typed(value)
            continue
        m = _UNSET.fullmatch(line)
        if m and _wanted(m.group(1)):
            out[m.group(1)] = "n"
    return out, total


def _release(proc_root: str, uname: Callable[[], Any]) -> str | None:
    rel = try_read_line(join(proc_root, "sys/kernel/osrelease"))
    if rel:
        return rel
    try:
        return str(uname().release)
    except Exception:  # noqa: BLE001 - an injected uname may fail
        return None


def collect_kernel_config(
    proc_root: str = "/proc", etc_root: str = "/etc", uname: Callable[[], Any] = os.uname
) -> Subtype:
    host_root = os.path.dirname(os.path.normpath(os.path.abspath(etc_root))) or "/"
    problems: list[str] = []
    gz = join(proc_root, "config.gz")
    raw: bytes | None = None
    shown = "/proc/config.gz"
    try:
        with gzip.open(gz, "rb") as fh:
            raw = fh.read(16 << 20)
    except FileNotFoundError:
        problems.append("/proc/config.gz not found (CONFIG_IKCONFIG_PROC off, or module configs not loaded)")
    except (OSError, EOFError) as e:
        problems.append(f"/proc/config.gz: {short_error(e)}")
    if raw is None:
        release = _release(proc_root, uname)
        if release is None:
            return missing(
                "kernel-config",
                source="/proc/config.gz, /boot/config-<release>",
                reason="; ".join([*problems, "kernel release unknown"]),
            )
        shown = f"/boot/config-{release}"
        try:
            raw = read_text(join(host_root, shown), 16 << 20).encode()
        except FileNotFoundError:
            problems.append(f"{shown} not found (is /boot mounted?)")
        except OSError as e:
            problems.append(short_error(e))
    if raw is None:
        return missing("kernel-config", source="/proc/config.gz, /boot/config-<release>", reason="; ".join(problems))
    text = raw.decode("utf-8", errors="replace")
    options, total = parse_kernel_config(text)
    if not total:
        return missing("kernel-config", source=shown, status=STATUS_ERROR, reason=f"{shown}: no CONFIG_ lines")
    data: dict[str, Scalar] = dict(options)
    data["digest"] = "sha256:" + hashlib.sha256(raw).hexdigest()
    data["options-set"] = total
    return reading("kernel-config", data, source=shown)


def _listdir(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def collect_iommu(proc_root: str = "/proc", sys_root: str = "/sys") -> Subtype:
    data: dict[str, Scalar] = {}
    cmdline = try_read(join(proc_root, "cmdline"))
    if cmdline is not None:
        params = parse_cmdline(cmdline.replace("\x00", " "))
        for p in _IOMMU_PARAMS:
            if p in params:
                data[f"cmdline.{p}"] = params[p]
    units = _listdir(join(sys_root, "class/iommu"))
    if units is None:
        return missing(
            "iommu",
            source="/sys/class/iommu",
            reason=f"{join(sys_root, 'class/iommu')} not found (kernel without IOMMU support?)",
        )
    data["units"] = len(units)
    groups_dir = join(sys_root, "kernel/iommu_groups")
    groups = _listdir(groups_dir) or []
    data["groups"] = len(groups)
    types = {t for g in groups if (t := try_read_line(os.path.join(groups_dir, g, "type")))}
    data["domain-types"] = ",".join(sorted(types))
    return reading("iommu", data, source="/sys/class/iommu, /sys/kernel/iommu_groups, /proc/cmdline")


def _pools(path: str) -> dict[str, str]:
    """``hugepages-2048kB`` dirs under ``path`` -> ``{"2048": dir}``."""
    out: dict[str, str] = {}
    for name in _listdir(path) or []:
        m = re.fullmatch(r"hugepages-(\d+)kB", name)
        if m:
            out[m.group(1)] = os.path.join(path, name)
    return out


def collect_hugepages(sys_root: str = "/sys") -> Subtype:
    base = join(sys_root, "kernel/mm/hugepages")
    pools = _pools(base)
    if not pools:
        return missing(
            "hugepages",
            source="/sys/kernel/mm/hugepages",
            reason=f"{base} not found or empty (kernel without CONFIG_HUGETLBFS?)",
        )
    data: dict[str, Scalar] = {}
    for size, pool_dir in sorted(pools.items(), key=lambda kv: int(kv[0])):
        for key, rel in (("total", "nr_hugepages"), ("overcommit", "nr_overcommit_hugepages")):
            pages = as_int(try_read_line(os.path.join(pool_dir, rel)))
            if pages is not None:
                data[f"{size}kb.{key}"] = pages
    nodes_dir = join(sys_root, "devices/system/node")
    for node in _listdir(nodes_dir) or []:
        if not re.fullmatch(r"node\d+", node):
            continue
        for size, pool_dir in _pools(os.path.join(nodes_dir, node, "hugepages")).items():
            pages = as_int(try_read_line(os.path.join(pool_dir, "nr_hugepages")))
            if pages is not None:
                data[f"{node}.{size}kb.total"] = pages
    thp = join(sys_root, "kernel/mm/transparent_hugepage")
    for key, rel in (
        ("thp.shmem-enabled", "shmem_enabled"),
        ("thp.use-zero-page", "use_zero_page"),
        ("thp.khugepaged-defrag", "khugepaged/defrag"),
    ):
        text = try_read_line(os.path.join(thp, rel))
        if text is not None:
            m = re.search(r"\[([^\]]+)\]", text)
            data[key] = m.group(1) if m else typed(text)
    return reading("hugepages", data, source="/sys/kernel/mm/hugepages, /sys/devices/system/node")
