"""The one registry of keys that are not configuration: volatile, identity, cluster-wide and secret keys.

Every rule names keys by ``fnmatch`` patterns (case-sensitive) on the measurement type, the subtype and the key, has
a kind and says why in words. Its full pattern is ``TYPE/SUBTYPE/KEY``, the form ``kubectl aicr diff --ignore``
takes (a sysctl key starts with ``/``, so ``OS/sysctl//proc/sys/fs/file-nr``). ``kubectl aicr diff --list-ignored``
prints this table.

==============  ====================================================================================================
kind            how it is applied
==============  ====================================================================================================
``volatile``    changes between two runs on an unchanged node (counters, PIDs, timestamps, random values). ``diff``
                ignores it unless ``--include-volatile``; the collector does not read the ones it can leave out
                (sysctl: :func:`sysctl_paths` feeds ``collector.os_info.SYSCTL_EXCLUDE``; GPU labels:
                :func:`matcher` is ``collector.gpu_host``'s label filter). Snapshots of the original tool hold them.
``identity``    names this node or this physical device. ``diff`` compares it between two snapshots (a different
                GPU serial is worth seeing), ignores it with ``--ignore-identity`` and always across nodes.
``cluster-wide`` the same fact on every node (API server version, node counts): nodes differ only by when each agent
                ran, so grouping the nodes of a fleet leaves it out.
``secret``      a credential: the collector never writes its value (left out, or kept as ``<redacted>``).
==============  ====================================================================================================

Deliberately *not* volatile: SystemD ``NRestarts``/``ActiveState``/``SubState``, K8s node ``ready``,
``OS/sysctl/kernel/tainted``, GPU retired pages / remapped rows, cluster node counts.

Pure data and a few lookups: no I/O, nothing beyond the standard library.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Pattern

VOLATILE = "volatile"
IDENTITY = "identity"
CLUSTER_WIDE = "cluster-wide"
SECRET = "secret"

#: Every kind, in listing order, with how it is applied (the table above, in one line each).
KINDS: dict[str, str] = {
    VOLATILE: "changes between runs on an unchanged node: ignored by diff unless --include-volatile; "
    "not collected where the collector can leave it out",
    IDENTITY: "names this node or device: compared between two snapshots, ignored with --ignore-identity "
    "and always with --across-nodes",
    CLUSTER_WIDE: "the same on every node: left out when grouping nodes (--across-nodes)",
    SECRET: "a credential: the collector leaves it out or writes <redacted>",
}

#: Where a sysctl key starts: keys are ``/proc/sys/<path>``, the collector's exclusions are ``<path>``.
SYSCTL_PREFIX = "/proc/sys/"


@dataclass(frozen=True)
class KeyRule:
    """Keys matched by ``fnmatch`` patterns (case-sensitive) on the measurement type, the subtype and the key."""

    kind: str
    type: str
    subtype: str
    keys: tuple[str, ...]
    reason: str

    def applies_to(self, type_: str, subtype: str) -> bool:
        return fnmatch.fnmatchcase(type_, self.type) and fnmatch.fnmatchcase(subtype, self.subtype)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The full ``TYPE/SUBTYPE/KEY`` patterns, as ``diff --ignore`` takes them."""
        return tuple(f"{self.type}/{self.subtype}/{key}" for key in self.keys)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "type": self.type,
            "subtype": self.subtype,
            "keys": list(self.keys),
            "patterns": list(self.patterns),
            "reason": self.reason,
        }


def _quota(*names: str) -> tuple[str, ...]:
    return tuple(f"/proc/sys/fs/quota/{name}" for name in names)


#: The registry, grouped by kind (in :data:`KINDS` order).
RULES: tuple[KeyRule, ...] = (
    # ---------------------------------------------------------------- volatile
    KeyRule(
        VOLATILE,
        "OS",
        "sysctl",
        ("/proc/sys/kernel/random/boot_id", "/proc/sys/kernel/random/uuid", "/proc/sys/kernel/random/entropy_avail"),
        "random per boot / per read, or the entropy pool level (the pool's settings are kept)",
    ),
    KeyRule(
        VOLATILE,
        "OS",
        "sysctl",
        (
            "/proc/sys/kernel/ns_last_pid",
            "/proc/sys/kernel/pty/nr",
            "/proc/sys/kernel/hung_task_detect_count",
            "/proc/sys/net/netfilter/nf_conntrack_count",
        ),
        "last PID handed out, pseudo-terminals open now, hung tasks seen, live connections",
    ),
    KeyRule(
        VOLATILE,
        "OS",
        "sysctl",
        ("/proc/sys/kernel/perf_event_max_sample_rate",),
        "lowered by the kernel itself when perf interrupts run long",
    ),
    KeyRule(
        VOLATILE,
        "OS",
        "sysctl",
        (
            "/proc/sys/fs/file-nr",
            "/proc/sys/fs/inode-nr",
            "/proc/sys/fs/aio-nr",
            "/proc/sys/fs/dquot-nr",
            "/proc/sys/fs/dentry-state",
            "/proc/sys/fs/dentry-negative",
            "/proc/sys/fs/inode-state",
        ),
        "allocation counters: file-nr, inode-nr, aio-nr, dquot-nr, dentry/inode cache state",
    ),
    KeyRule(
        VOLATILE,
        "OS",
        "sysctl",
        _quota("lookups", "drops", "reads", "writes", "cache_hits", "allocated_dquots", "free_dquots", "syncs"),
        "quota statistics counters (fs/quota/warnings is a setting and is kept)",
    ),
    KeyRule(
        VOLATILE,
        "SystemD",
        "*",
        ("MainPID", "ControlPID", "ExecMainPID", "InvocationID", "ControlGroupId"),
        "process / invocation identifiers, new at every (re)start",
    ),
    KeyRule(
        VOLATILE,
        "SystemD",
        "*",
        ("*Timestamp", "*TimestampMonotonic"),
        "state-change times (ActiveEnterTimestamp, ExecMainStartTimestamp...)",
    ),
    KeyRule(
        VOLATILE,
        "SystemD",
        "*",
        (
            "MemoryCurrent",
            "MemoryPeak",
            "MemorySwapCurrent",
            "MemorySwapPeak",
            "MemoryZSwapCurrent",
            "MemoryAvailable",
            "CPUUsageNSec",
            "TasksCurrent",
            "IPIngressBytes",
            "IPIngressPackets",
            "IPEgressBytes",
            "IPEgressPackets",
            "IOReadBytes",
            "IOReadOperations",
            "IOWriteBytes",
            "IOWriteOperations",
        ),
        "resource usage accounting",
    ),
    KeyRule(
        VOLATILE,
        "GPU",
        "gpu-*",
        ("pcie-link-gen-current", "pcie-link-width-current"),
        "the GPU lowers its PCIe link when idle (the -max keys are kept)",
    ),
    KeyRule(
        VOLATILE,
        "GPU",
        "pci",
        ("*.link-speed-current-gts", "*.link-gen-current", "*.link-width-current"),
        "the same PCIe power saving seen from sysfs (the -max keys are kept)",
    ),
    KeyRule(
        VOLATILE,
        "GPU",
        "labels",
        ("*.timestamp", "nvidia.com/gpu-driver-upgrade-state"),
        "times the GPU operator and feature discovery stamp on the node, and the driver upgrade's progress",
    ),
    KeyRule(VOLATILE, "K8s", "image", ("aicr",), "the original tool's own agent image (same as metadata.version)"),
    KeyRule(VOLATILE, "Network", "nic", ("*.carrier-changes",), "link up/down transitions since boot (a counter)"),
    KeyRule(
        VOLATILE,
        "Network",
        "infiniband",
        ("*.lid", "*.sm-lid"),
        "LIDs handed out by the subnet manager, reassigned when it restarts",
    ),
    # ---------------------------------------------------------------- identity
    KeyRule(IDENTITY, "K8s", "node", ("source-node", "provider-id"), "node name, cloud instance id"),
    KeyRule(
        IDENTITY,
        "K8s",
        "labels",
        (
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
            "failure-domain.beta.kubernetes.io/zone",
            "topology.k8s.aws/zone-id",
        ),
        "per-node labels: hostname, availability zone",
    ),
    KeyRule(
        IDENTITY,
        "GPU",
        "*",
        ("uuid", "serial", "*.uuid", "*.serial", "fabric-cluster-uuid", "fabric-clique-id"),
        "identity of the physical GPU and of its NVLink fabric",
    ),
    KeyRule(IDENTITY, "OS", "sysctl", ("/proc/sys/kernel/hostname",), "host name"),
    KeyRule(IDENTITY, "OS", "grub", ("root",), "root device (often a per-disk UUID)"),
    KeyRule(IDENTITY, "Network", "nic", ("*.mac",), "MAC address of each physical NIC"),
    KeyRule(IDENTITY, "Network", "infiniband", ("*.node-guid", "*.sys-image-guid"), "GUIDs of each RDMA adapter"),
    # ---------------------------------------------------------------- cluster-wide
    KeyRule(CLUSTER_WIDE, "K8s", "server", ("*",), "the API server's version, the same for every node"),
    KeyRule(CLUSTER_WIDE, "K8s", "cluster", ("*",), "node counts and the provider, as the API server tells them"),
    KeyRule(CLUSTER_WIDE, "K8s", "image", ("*",), "the images running in the cluster"),
    KeyRule(CLUSTER_WIDE, "K8s", "policy", ("*",), "the GPU operator's ClusterPolicy"),
    KeyRule(CLUSTER_WIDE, "NodeTopology", "*", ("*",), "taints and labels of every node, repeated by each node"),
    # ---------------------------------------------------------------- secret
    KeyRule(
        SECRET,
        "OS",
        "sysctl",
        ("/proc/sys/net/ipv4/tcp_fastopen_key", "/proc/sys/net/core/netdev_rss_key"),
        "TCP Fast Open cookie key, the NICs' receive-side-scaling hash key: not collected",
    ),
    KeyRule(
        SECRET,
        "OS",
        "sysctl",
        ("/proc/sys/net/*/conf/*/stable_secret",),
        "the secret IPv6 stable addresses are derived from: not collected",
    ),
    KeyRule(
        SECRET,
        "OS",
        "grub",
        ("*",),
        "only kernel parameters whose name or value looks secret (password, token, key, auth, luks.*, a URL "
        "with a password, a bearer token or JWT): the name is kept, the value is <redacted>",
    ),
    KeyRule(
        SECRET,
        "K8s",
        "policy",
        ("*",),
        "only ClusterPolicy fields named like a credential (password, token, secret, api/access/private key, "
        "auth, cookie; not names of or references to one, such as secretName): the value is <redacted>",
    ),
)

#: ``K8s/policy`` fields whose values are credentials ...
SECRET_KEY_NAME = re.compile(
    r"(?i)(passw(or)?d|passwd|passphrase|secret|token|credential|api[-_]?key|"
    r"access[-_]?key|private[-_]?key|secret[-_]?key|auth(orization)?$|cookie|\bpw$|_pw$)"
)
#: ... unless they only name or point at one (``secretName``, ``tokenSecretRef``, ``imagePullSecrets``).
REFERENCE_KEY_NAME = re.compile(
    r"(?i)(name|names|ref|refs|secrets|path|file|enabled|mount|type|key[-_]?ref|"
    r"selector)$"
)


def secret_key_name(key: str) -> bool:
    """Whether a ClusterPolicy field named ``key`` holds a credential (its value is written as ``<redacted>``)."""
    return bool(SECRET_KEY_NAME.search(key)) and not REFERENCE_KEY_NAME.search(key)


def rules_of(*kinds: str) -> tuple[KeyRule, ...]:
    """The rules of these kinds, in registry order."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown key kind(s) {sorted(unknown)}; the kinds are {list(KINDS)}")
    return tuple(rule for rule in RULES if rule.kind in kinds)


def _has_wildcard(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def sysctl_paths(*kinds: str) -> tuple[str, ...]:
    """The exact ``OS/sysctl`` keys of these kinds, relative to /proc/sys (``fs/file-nr``), in registry order.
    Patterns with wildcards are left out: they are rules of the collector's walk, not paths."""
    return tuple(
        key[len(SYSCTL_PREFIX) :]
        for rule in rules_of(*kinds)
        if rule.type == "OS" and rule.subtype == "sysctl"
        for key in rule.keys
        if key.startswith(SYSCTL_PREFIX) and not _has_wildcard(key)
    )


def compile_keys(patterns: Iterable[str]) -> Optional[Pattern[str]]:
    """One regular expression matching any of these ``fnmatch`` patterns (whole key, case-sensitive); None for none."""
    pats = list(patterns)
    if not pats:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats))


class KeyMatcher:
    """``key in matcher``: whether a key of one subtype is named by the rules of some kinds (pattern match)."""

    def __init__(self, type_: str, subtype: str, kinds: tuple[str, ...]) -> None:
        self.rules = tuple(r for r in rules_of(*kinds) if r.applies_to(type_, subtype))
        self._regex = compile_keys(k for r in self.rules for k in r.keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._regex is not None and self._regex.match(key) is not None

    def __repr__(self) -> str:
        return f"KeyMatcher({[k for r in self.rules for k in r.keys]!r})"


def matcher(type_: str, subtype: str, *kinds: str) -> KeyMatcher:
    """The keys of subtype ``type_/subtype`` that rules of these kinds name: ``key in matcher(...)``."""
    return KeyMatcher(type_, subtype, kinds)
