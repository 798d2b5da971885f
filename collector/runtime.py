"""Container runtime stack of the host (measurement type ``Runtime``): containerd, NVIDIA Container Toolkit, CDI,
kubelet configuration files.

Only an allow-list of keys is ever taken from these files; everything else (registry mirrors and their
credentials, auth tokens, TLS key paths, headers, proxy settings...) is never read into the snapshot. An allowed
value that still looks like a secret (:func:`collector.os_info.secret_value`: a password in a URL, a bearer token,
``token=``...) is replaced by ``<redacted>``. Subtypes, in emitted order:

``containerd``         ``/etc/containerd/config.toml`` (config versions 1-3): ``version``, ``default-runtime``,
                       ``snapshotter``, ``enable-cdi``, ``cdi-spec-dirs``, and per runtime ``runtime.<name>.type``,
                       ``runtime.<name>.binary`` (``options.BinaryName``), ``runtime.<name>.systemd-cgroup``.
``container-toolkit``  ``/etc/nvidia-container-runtime/config.toml``: the keys of :data:`TOOLKIT_KEYS`, dotted.
``cdi``                CDI spec files present: ``/etc/cdi`` and ``/var/run/cdi`` -> ``<dir>`` = comma list of file
                       names (names only; the specs are not parsed), ``spec-count``.
``kubelet``            ``/var/lib/kubelet/config.yaml``: the keys of :data:`KUBELET_KEYS` (maps flattened as
                       ``<key>.<name>``, lists comma-joined).

TOML needs :mod:`tomllib` (Python 3.11+; ``tomli`` is used when installed). On Python 3.10 without ``tomli`` the two
TOML sources are ``unavailable`` with the reason "TOML parser needs Python 3.11": a hand-rolled subset parser could
silently misread a real config (multi-line arrays, dotted keys, inline tables), and a wrong value is worse than none.

Paths are relative to the host root, the parent of ``etc_root`` (``/host/etc`` -> ``/host``), as for os-release.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Mapping

from collector._util import read_text, short_error
from collector.model import STATUS_ERROR, Scalar, Subtype, missing, reading
from collector.os_info import REDACTED, secret_name, secret_value

__all__ = [
    "KUBELET_KEYS",
    "TOOLKIT_KEYS",
    "collect_cdi",
    "collect_containerd",
    "collect_kubelet",
    "collect_toolkit",
    "containerd_facts",
    "kubelet_facts",
    "toolkit_facts",
]

TOML_NEEDS = "TOML parser needs Python 3.11"

#: NVIDIA Container Toolkit keys taken (dotted paths into config.toml).
TOOLKIT_KEYS: tuple[str, ...] = (
    "disable-require",
    "supported-driver-capabilities",
    "accept-nvidia-visible-devices-envvar-when-unprivileged",
    "accept-nvidia-visible-devices-as-volume-mounts",
    "swarm-resource",
    "nvidia-container-cli.root",
    "nvidia-container-cli.path",
    "nvidia-container-cli.ldconfig",
    "nvidia-container-cli.load-kmods",
    "nvidia-container-cli.no-cgroups",
    "nvidia-container-cli.no-pivot",
    "nvidia-container-cli.user",
    "nvidia-container-runtime.mode",
    "nvidia-container-runtime.runtimes",
    "nvidia-container-runtime.log-level",
    "nvidia-container-runtime.modes.cdi.default-kind",
    "nvidia-container-runtime.modes.cdi.annotation-prefixes",
    "nvidia-container-runtime.modes.cdi.spec-dirs",
    "nvidia-container-runtime.modes.csv.mount-spec-path",
    "nvidia-container-runtime.modes.legacy.cuda-compat-mode",
    "nvidia-container-runtime-hook.path",
    "nvidia-container-runtime-hook.skip-mode-detection",
    "nvidia-ctk.path",
    "features.allow-ldconfig-from-container",
    "features.disable-imex-channel-creation",
)

#: Kubelet configuration keys taken; a map value is flattened (``featureGates.<gate>``).
KUBELET_KEYS: tuple[str, ...] = (
    "cgroupDriver",
    "cgroupsPerQOS",
    "cpuManagerPolicy",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "topologyManagerPolicy",
    "topologyManagerScope",
    "topologyManagerPolicyOptions",
    "memoryManagerPolicy",
    "maxPods",
    "podPidsLimit",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionMinimumReclaim",
    "evictionPressureTransitionPeriod",
    "featureGates",
    "systemReserved",
    "kubeReserved",
    "reservedSystemCPUs",
    "enforceNodeAllocatable",
    "failSwapOn",
    "memorySwap",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "serializeImagePulls",
    "maxParallelImagePulls",
    "containerRuntimeEndpoint",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "protectKernelDefaults",
    "resolvConf",
    "hairpinMode",
    "localStorageCapacityIsolation",
    "singleProcessOOMKill",
)


def _host_root(etc_root: str) -> str:
    return os.path.dirname(os.path.normpath(os.path.abspath(etc_root))) or "/"


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _toml_loads() -> Callable[[str], dict[str, Any]] | None:
    """``tomllib.loads`` (Python 3.11+), else ``tomli.loads`` when installed, else None."""
    for name in ("tomllib", "tomli"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        loads: Callable[[str], dict[str, Any]] = mod.loads
        return loads
    return None


def _safe(key: str, value: Any) -> Scalar:
    """A config value as a scalar (lists comma-joined), redacted when it looks like a secret."""
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ",".join(sorted(str(k) for k in value))
    if isinstance(value, str) and (secret_value(value) or secret_name(key.rsplit(".", 1)[-1])):
        return REDACTED
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _dig(doc: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def containerd_facts(doc: Mapping[str, Any]) -> dict[str, Scalar]:
    """The allow-listed facts of a parsed containerd config (v1/v2 ``grpc.v1.cri`` layout or v3 ``cri.v1.*``)."""
    out: dict[str, Scalar] = {}
    if "version" in doc:
        out["version"] = _safe("version", doc["version"])
    plugins = doc.get("plugins") if isinstance(doc.get("plugins"), Mapping) else {}
    assert isinstance(plugins, Mapping)
    cri = plugins.get("io.containerd.grpc.v1.cri") or plugins.get("cri") or {}
    runtime_plugin = plugins.get("io.containerd.cri.v1.runtime") or {}  # containerd 2.x, config version 3
    images_plugin = plugins.get("io.containerd.cri.v1.images") or {}
    sections = [s for s in (cri, runtime_plugin) if isinstance(s, Mapping)]
    for sec in sections:
        ctr = sec.get("containerd") if isinstance(sec.get("containerd"), Mapping) else {}
        assert isinstance(ctr, Mapping)
        for key, src in (
            ("default-runtime", ctr.get("default_runtime_name")),
            ("snapshotter", ctr.get("snapshotter")),
            ("enable-cdi", sec.get("enable_cdi")),
            ("cdi-spec-dirs", sec.get("cdi_spec_dirs")),
        ):
            if src is not None:
                out[key] = _safe(key, src)
        runtimes = ctr.get("runtimes") if isinstance(ctr.get("runtimes"), Mapping) else {}
        assert isinstance(runtimes, Mapping)
        for name, rt in sorted(runtimes.items()):
            if not isinstance(rt, Mapping):
                continue
            opts = rt.get("options") if isinstance(rt.get("options"), Mapping) else {}
            assert isinstance(opts, Mapping)
            for key, src in (
                ("type", rt.get("runtime_type")),
                ("binary", opts.get("BinaryName")),
                ("systemd-cgroup", opts.get("SystemdCgroup")),
            ):
                if src is not None:
                    out[f"runtime.{name}.{key}"] = _safe(key, src)
    if isinstance(images_plugin, Mapping) and images_plugin.get("snapshotter") is not None:
        out["snapshotter"] = _safe("snapshotter", images_plugin["snapshotter"])
    return out


def toolkit_facts(doc: Mapping[str, Any]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for key in TOOLKIT_KEYS:
        value = _dig(doc, key)
        if value is not None:
            out[key] = _safe(key, value)
    return out


def kubelet_facts(doc: Mapping[str, Any]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for key in KUBELET_KEYS:
        if key not in doc or doc[key] is None:
            continue
        value = doc[key]
        if isinstance(value, Mapping):
            for sub, v in sorted(value.items(), key=lambda kv: str(kv[0])):
                out[f"{key}.{sub}"] = _safe(str(sub), v)
        else:
            out[key] = _safe(key, value)
    return out


def _toml_source(name: str, path: str, shown: str, facts: Callable[[Mapping[str, Any]], dict[str, Scalar]]) -> Subtype:
    try:
        text = read_text(path)
    except FileNotFoundError:
        return missing(name, source=shown, reason=f"{shown} not found")
    except OSError as e:
        return missing(name, source=shown, reason=short_error(e))
    loads = _toml_loads()
    if loads is None:
        return missing(name, source=shown, reason=TOML_NEEDS)
    try:
        doc = loads(text)
    except ValueError as e:  # tomllib.TOMLDecodeError is a ValueError
        return missing(name, source=shown, status=STATUS_ERROR, reason=f"{shown}: not valid TOML: {e}")
    return reading(name, facts(doc), source=shown)


def collect_containerd(etc_root: str = "/etc") -> Subtype:
    return _toml_source(
        "containerd", os.path.join(etc_root, "containerd/config.toml"), "/etc/containerd/config.toml", containerd_facts
    )


def collect_toolkit(etc_root: str = "/etc") -> Subtype:
    return _toml_source(
        "container-toolkit",
        os.path.join(etc_root, "nvidia-container-runtime/config.toml"),
        "/etc/nvidia-container-runtime/config.toml",
        toolkit_facts,
    )


def collect_cdi(etc_root: str = "/etc") -> Subtype:
    root = _host_root(etc_root)
    data: dict[str, Scalar] = {}
    found = False
    total = 0
    for shown, path in (("/etc/cdi", os.path.join(etc_root, "cdi")), ("/var/run/cdi", _under(root, "var/run/cdi"))):
        try:
            names = sorted(n for n in os.listdir(path) if n.endswith((".json", ".yaml", ".yml")))
        except OSError:
            continue
        found = True
        data[shown] = ",".join(names)
        total += len(names)
    if not found:
        return missing("cdi", source="/etc/cdi, /var/run/cdi", reason="neither /etc/cdi nor /var/run/cdi exists")
    data["spec-count"] = total
    return reading("cdi", data, source="/etc/cdi, /var/run/cdi")


def collect_kubelet(etc_root: str = "/etc") -> Subtype:
    shown = "/var/lib/kubelet/config.yaml"
    path = _under(_host_root(etc_root), shown)
    try:
        text = read_text(path)
    except FileNotFoundError:
        return missing(
            "kubelet",
            source=shown,
            reason=f"{shown} not found (kubelet configured by flags only, or "
            "another path; the agent pod does not mount it: run 'snapshot --local' on the node)",
        )
    except OSError as e:
        return missing("kubelet", source=shown, reason=short_error(e))
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return missing("kubelet", source=shown, status=STATUS_ERROR, reason=f"{shown}: not valid YAML: {e}")
    if not isinstance(doc, Mapping):
        return missing("kubelet", source=shown, status=STATUS_ERROR, reason=f"{shown}: not a YAML mapping")
    return reading("kubelet", kubelet_facts(doc), source=shown)
