"""The registry of host sources: one row per source, in the order the snapshot lists them.

:func:`collector.host.collect_host` runs every row of :data:`SOURCES` in its own thread and builds one measurement
per type, in the order the types first appear here (``GPU``, ``OS``, ``SystemD``, ``Network``, ``Runtime``); within
a measurement, subtypes come in row order. Then each :data:`SUMMARIES` row adds a subtype computed from what its
measurement's sources gave (``GPU/consistency``).

A :class:`Source` row names

``measurement``  the measurement type its subtypes belong to;
``subtypes``     the subtypes it always yields, in order: its placeholders when it fails (a tuple, or a function of
                 the options when the caller chooses them, as the systemd units). A source may yield more than
                 these (nvidia-smi adds ``gpu-<i>`` after ``smi``);
``read``         the function that reads it: takes the :class:`HostOptions` and picks the ones it needs (its roots,
                 the command runner, the timeout...), returns one :class:`~collector.model.Subtype` or a list;
``placeholder_source``  ``context.source`` of its placeholders (default: the subtype's own name).

A source that raises or overruns the deadline is replaced by its placeholders: empty data, ``status: error`` and
the reason (see :mod:`collector.host`). Adding a source: see :mod:`collector` (the package docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

from collector.affinity import collect_affinity
from collector.gpu_consistency import SOURCE as CONSISTENCY_SOURCE
from collector.gpu_consistency import build_consistency
from collector.gpu_host import GPU_HOST_SUBTYPES, collect_gpu_host
from collector.gpu_smi import SOURCE as SMI_SOURCE
from collector.gpu_smi import collect_gpu_smi
from collector.kernel_config import collect_hugepages, collect_iommu, collect_kernel_config
from collector.model import STATUS_ERROR, Subtype, missing
from collector.net import collect_infiniband, collect_nics, collect_rdma_modules
from collector.os_info import (
    HostRoots,
    collect_cpu,
    collect_grub,
    collect_kernel,
    collect_kmod,
    collect_memory,
    collect_release,
    collect_sysctl,
)
from collector.runner import CommandRunner
from collector.runtime import collect_cdi, collect_containerd, collect_kubelet, collect_toolkit
from collector.systemd import collect_systemd

__all__ = ["MEASUREMENTS", "SOURCES", "SUMMARIES", "HostOptions", "Source", "Summary"]


@dataclass(frozen=True)
class HostOptions:
    """Everything a source may read: where the host's trees are, how to run its commands, and within what time."""

    runner: CommandRunner
    roots: HostRoots
    units: tuple[str, ...]  # systemd units to report, in order
    node_labels: Mapping[str, str] | None  # the node's labels; None when they could not be read
    nvidia_smi: str
    systemctl: str
    timeout: float  # seconds each command gets; the whole collection gets it plus collector.host.GRACE_S
    nvlink: bool  # also run 'nvidia-smi nvlink -s'


SubtypeNames = Union[tuple[str, ...], Callable[[HostOptions], Sequence[str]]]


@dataclass(frozen=True)
class Source:
    """One source of host facts (see the module docstring for the fields)."""

    measurement: str
    subtypes: SubtypeNames
    read: Callable[[HostOptions], Union[Subtype, Sequence[Subtype]]]
    placeholder_source: str = ""

    def names(self, options: HostOptions) -> tuple[str, ...]:
        """The subtypes this source always yields with these options."""
        return self.subtypes if isinstance(self.subtypes, tuple) else tuple(self.subtypes(options))

    def placeholders(self, options: HostOptions, reason: str) -> list[Subtype]:
        """What stands for this source when it failed: each of its subtypes, empty, ``status: error`` and why."""
        return [
            missing(name, source=self.placeholder_source or name, status=STATUS_ERROR, reason=reason)
            for name in self.names(options)
        ]


@dataclass(frozen=True)
class Summary:
    """A subtype computed from the subtypes the sources of ``measurement`` gave (after all of them), appended last.

    ``build`` gets those subtypes in order and the options; ``source`` is its placeholder's ``context.source``.
    """

    measurement: str
    subtype: str
    build: Callable[[Sequence[Subtype], HostOptions], Subtype]
    source: str

    def placeholder(self, reason: str) -> Subtype:
        return missing(self.subtype, source=self.source, status=STATUS_ERROR, reason=reason)


def _roots(read: Callable[[HostRoots], Subtype]) -> Callable[[HostOptions], Subtype]:
    """A file reader of the host's trees only, as a source."""
    return lambda options: read(options.roots)


SOURCES: tuple[Source, ...] = (
    # GPU: nvidia-smi (smi, gpu-<i>), then the driver-free facts.
    Source(
        "GPU",
        ("smi",),
        lambda o: collect_gpu_smi(o.runner, nvidia_smi=o.nvidia_smi, timeout=o.timeout, nvlink=o.nvlink),
        placeholder_source=SMI_SOURCE,
    ),
    Source(
        "GPU",
        GPU_HOST_SUBTYPES,
        lambda o: collect_gpu_host(proc_root=o.roots.proc_root, sys_root=o.roots.sys_root, node_labels=o.node_labels),
    ),
    # OS: collector.os_info (the original tool's four first), then collector.kernel_config.
    Source("OS", ("grub",), _roots(lambda r: collect_grub(r.proc_root))),
    Source("OS", ("sysctl",), _roots(lambda r: collect_sysctl(r.proc_root))),
    Source("OS", ("kmod",), _roots(lambda r: collect_kmod(r.proc_root))),
    Source("OS", ("release",), _roots(lambda r: collect_release(r.etc_root))),
    Source("OS", ("kernel",), _roots(lambda r: collect_kernel(r.proc_root, r.uname))),
    Source("OS", ("cpu",), _roots(lambda r: collect_cpu(r.proc_root, r.sys_root))),
    Source("OS", ("memory",), _roots(lambda r: collect_memory(r.proc_root, r.sys_root))),
    Source("OS", ("kernel-config",), _roots(lambda r: collect_kernel_config(r.proc_root, r.etc_root, r.uname))),
    Source("OS", ("iommu",), _roots(lambda r: collect_iommu(r.proc_root, r.sys_root))),
    Source("OS", ("hugepages",), _roots(lambda r: collect_hugepages(r.sys_root))),
    # SystemD: one subtype per unit asked for, from one systemctl call.
    Source(
        "SystemD",
        lambda o: o.units,
        lambda o: collect_systemd(o.runner, o.units, systemctl=o.systemctl, timeout=o.timeout).subtypes,
    ),
    # Network: collector.net, then collector.affinity.
    Source("Network", ("nic",), _roots(lambda r: collect_nics(r.sys_root))),
    Source("Network", ("infiniband",), _roots(lambda r: collect_infiniband(r.sys_root))),
    Source("Network", ("rdma-modules",), _roots(lambda r: collect_rdma_modules(r.proc_root, r.sys_root))),
    Source("Network", ("gpu-nic-affinity",), _roots(lambda r: collect_affinity(r.sys_root))),
    # Runtime: collector.runtime.
    Source("Runtime", ("containerd",), _roots(lambda r: collect_containerd(r.etc_root))),
    Source("Runtime", ("container-toolkit",), _roots(lambda r: collect_toolkit(r.etc_root))),
    Source("Runtime", ("cdi",), _roots(lambda r: collect_cdi(r.etc_root))),
    Source("Runtime", ("kubelet",), _roots(lambda r: collect_kubelet(r.etc_root))),
)

SUMMARIES: tuple[Summary, ...] = (
    # The GPU subtypes so far are nvidia-smi's (smi, gpu-<i>) and the driver-free ones; only smi's start "gpu-".
    Summary(
        "GPU",
        "consistency",
        lambda subtypes, o: build_consistency(subtypes, (), o.node_labels),
        source=CONSISTENCY_SOURCE,
    ),
)

#: The host's measurement types, in the order they are emitted.
MEASUREMENTS: tuple[str, ...] = tuple(dict.fromkeys(source.measurement for source in SOURCES))
