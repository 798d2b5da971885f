"""GPU facts from ``nvidia-smi -q -x`` (measurement type ``GPU``).

Subtypes
--------
``smi`` (compatible with the original tool, plus a few additions)
    ``driver``, ``cuda-version`` (strings), ``gpu-count`` (int: number of ``<gpu>`` elements, as the original),
    ``attached-gpus`` (int: what nvidia-smi says is attached; differs from ``gpu-count`` when a GPU could not be
    queried),
    GPU[0]'s ``gpu.model``, ``gpu.product-architecture``, ``gpu.display-mode``, ``gpu.display-active``,
    ``gpu.persistence-mode``, ``gpu.addressing-mode``, ``gpu.vbios-version``, ``gpu.gsp-firmware-version`` (as the
    original),
    and the heterogeneity signals:

    * ``gpu.models-uniform`` (bool): every GPU has the same product name;
    * ``gpu.models`` (str): ``"8x NVIDIA H100 80GB HBM3"`` or ``"1x NVIDIA A100-SXM4-40GB, 1x Tesla T4"`` (sorted by
    name);
    * ``gpu.config-uniform`` (bool): every GPU agrees on every key in :data:`UNIFORM_KEYS`;
    * ``gpu.config-nonuniform-keys`` (str, only when not uniform): the comma-separated per-GPU keys that differ.

``gpu-<index>``, one per GPU, ``<index>`` being the GPU's position in the XML, which is nvidia-smi's own index
(``nvidia-smi -i <index>``, PCI bus order). ``minor-number`` (the ``/dev/nvidia<N>`` number) is a key.
    Keys are kebab-case; a unit is stripped from the value and becomes the key suffix (``-mib``, ``-w``, ``-mhz``).
    See :data:`_GPU_FIELDS` for the full list. Volatile readings (temperatures, utilisation, power draw, current clocks,
    processes, ECC error counters, performance state, fan, PCIe throughput and replay counters) are deliberately left
    out.
    ``nvlink-links-active`` / ``nvlink-links-inactive`` come from a second, best-effort ``nvidia-smi nvlink -s``
    (``-q -x`` carries no link state); when that fails the keys are absent and ``smi``'s context says why (``nvlink``).

Value convention
----------------
* A field whose element is absent from the XML (older driver, other product) is **omitted**.
* A field whose text is ``N/A``, ``Not Supported``, ``Unknown Error``, ``Requested functionality has been
deprecated``...
  is present with value ``None`` (the source said it has no value). The literal text ``None`` (e.g. addressing mode) is
  a real value and stays the string ``"None"``.
* Numbers keep their type: counts, MiB, MHz, link gen/width are ``int``; watts are ``float``; ``Yes``/``No`` flags are
  ``bool``; modes (``Enabled``/``Disabled``/``Default``...) stay strings as nvidia-smi prints them.
* PCI addresses are normalised to the sysfs form (``0000:04:00.0``); PCI ids to ``0x`` + 4 lower-case hex digits.

Failures never raise: the ``smi`` subtype is always returned, with ``context.status`` ``unavailable`` (nvidia-smi not
installed) or ``error`` (non-zero exit, timeout, empty/garbage/truncated XML) and a ``reason``.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from collector._util import collapse_ws, is_na, normalize_bus_id
from collector.model import STATUS_ERROR, STATUS_OK, STATUS_PARTIAL, Scalar, Subtype, missing, reading
from collector.runner import (
    CommandError,
    CommandNotFound,
    CommandResult,
    CommandRunner,
    CommandTimeout,
    describe_failure,
)

__all__ = [
    "NVLINK_SOURCE",
    "SOURCE",
    "SmiParseError",
    "UNIFORM_KEYS",
    "collect_gpu_smi",
    "parse_nvlink_status",
    "parse_smi_xml",
]

SOURCE = "nvidia-smi -q -x"
NVLINK_SOURCE = "nvidia-smi nvlink -s"

#: Upper bound on the XML we accept (8x H100 is ~200 KB).
MAX_XML_BYTES = 32 << 20

#: Per-GPU keys that should be identical on every GPU of a healthy, homogeneous node.
UNIFORM_KEYS = (
    "product-name",
    "vbios-version",
    "gsp-firmware-version",
    "memory-total-mib",
    "persistence-mode",
    "compute-mode",
    "mig-mode-current",
    "mig-mode-pending",
    "ecc-mode-current",
    "ecc-mode-pending",
    "power-limit-enforced-w",
    "power-limit-default-w",
    "clock-app-graphics-mhz",
    "clock-app-mem-mhz",
    "pcie-link-gen-max",
    "pcie-link-width-max",
    "fabric-state",
    "nvlink-links-active",
)

# GPU[0] fields copied into the `smi` subtype for compatibility with the original (key -> XML path).
_COMPAT_FIELDS = (
    ("gpu.model", "product_name"),
    ("gpu.product-architecture", "product_architecture"),
    ("gpu.display-mode", "display_mode"),
    ("gpu.display-active", "display_active"),
    ("gpu.persistence-mode", "persistence_mode"),
    ("gpu.addressing-mode", "addressing_mode"),
    ("gpu.vbios-version", "vbios_version"),
    ("gpu.gsp-firmware-version", "gsp_firmware_version"),
)


class SmiParseError(ValueError):
    """The text is not usable ``nvidia-smi -q -x`` output."""


class _Unparsable(Exception):
    pass


# ----------------------------------------------------------------------------------------------- value converters


def _conv_str(text: str) -> Scalar:
    return text


def _conv_int(text: str) -> Scalar:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    raise _Unparsable(text)


def _unit(unit: str, conv: Callable[[str], Scalar]) -> Callable[[str], Scalar]:
    def parse(text: str) -> Scalar:
        m = re.fullmatch(r"(-?[0-9.]+)\s*" + re.escape(unit), text)
        if not m:
            raise _Unparsable(text)
        return conv(m.group(1))

    return parse


def _conv_float(text: str) -> Scalar:
    try:
        return float(text)
    except ValueError:
        raise _Unparsable(text) from None


def _conv_yes_no(text: str) -> Scalar:
    low = text.lower()
    if low == "yes":
        return True
    if low == "no":
        return False
    raise _Unparsable(text)


def _conv_bus_id(text: str) -> Scalar:
    return normalize_bus_id(text)


def _conv_width(text: str) -> Scalar:  # "16x"
    m = re.fullmatch(r"(\d+)x", text.lower())
    if not m:
        raise _Unparsable(text)
    return int(m.group(1))


def _pci_id_pair(text: str) -> tuple[str, str]:
    """``"233010DE"`` (device << 16 | vendor) -> ``("0x2330", "0x10de")``."""
    t = text.lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{8}", t):
        raise _Unparsable(text)
    return "0x" + t[:4], "0x" + t[4:]


_MIB = _unit("MiB", _conv_int)
_MHZ = _unit("MHz", _conv_int)
_WATT = _unit("W", _conv_float)

# (key, candidate XML paths (first present wins), converter)
_GPU_FIELDS: tuple[tuple[str, tuple[str, ...], Callable[[str], Scalar]], ...] = (
    ("product-name", ("product_name",), _conv_str),
    ("product-brand", ("product_brand",), _conv_str),
    ("product-architecture", ("product_architecture",), _conv_str),
    ("uuid", ("uuid",), _conv_str),
    ("serial", ("serial",), _conv_str),
    ("minor-number", ("minor_number",), _conv_int),
    ("module-id", ("platformInfo/module_id", "gpu_module_id"), _conv_int),
    ("board-part-number", ("board_part_number",), _conv_str),
    ("gpu-part-number", ("gpu_part_number",), _conv_str),
    ("multigpu-board", ("multigpu_board",), _conv_yes_no),
    ("vbios-version", ("vbios_version",), _conv_str),
    ("inforom-image-version", ("inforom_version/img_version",), _conv_str),
    ("gsp-firmware-version", ("gsp_firmware_version",), _conv_str),
    ("display-mode", ("display_mode",), _conv_str),
    ("display-active", ("display_active",), _conv_str),
    ("persistence-mode", ("persistence_mode",), _conv_str),
    ("addressing-mode", ("addressing_mode",), _conv_str),
    ("accounting-mode", ("accounting_mode",), _conv_str),
    ("compute-mode", ("compute_mode",), _conv_str),
    ("virtualization-mode", ("gpu_virtualization_mode/virtualization_mode",), _conv_str),
    ("c2c-mode", ("c2c_mode",), _conv_str),
    ("mig-mode-current", ("mig_mode/current_mig",), _conv_str),
    ("mig-mode-pending", ("mig_mode/pending_mig",), _conv_str),
    ("ecc-mode-current", ("ecc_mode/current_ecc",), _conv_str),
    ("ecc-mode-pending", ("ecc_mode/pending_ecc",), _conv_str),
    ("pci-bus-id", ("pci/pci_bus_id",), _conv_bus_id),
    ("pcie-link-gen-max", ("pci/pci_gpu_link_info/pcie_gen/max_link_gen",), _conv_int),
    ("pcie-link-gen-current", ("pci/pci_gpu_link_info/pcie_gen/current_link_gen",), _conv_int),
    ("pcie-link-gen-device-max", ("pci/pci_gpu_link_info/pcie_gen/max_device_link_gen",), _conv_int),
    ("pcie-link-gen-host-max", ("pci/pci_gpu_link_info/pcie_gen/max_host_link_gen",), _conv_int),
    ("pcie-link-width-max", ("pci/pci_gpu_link_info/link_widths/max_link_width",), _conv_width),
    ("pcie-link-width-current", ("pci/pci_gpu_link_info/link_widths/current_link_width",), _conv_width),
    ("memory-total-mib", ("fb_memory_usage/total",), _MIB),
    ("memory-reserved-mib", ("fb_memory_usage/reserved",), _MIB),
    ("bar1-total-mib", ("bar1_memory_usage/total",), _MIB),
    # Power limits: r530+ writes <gpu_power_readings> (current = enforced, requested); older <power_readings>
    # (enforced_power_limit, power_limit = the requested one).
    ("power-management", ("power_readings/power_management",), _conv_str),
    (
        "power-limit-enforced-w",
        ("gpu_power_readings/current_power_limit", "power_readings/enforced_power_limit"),
        _WATT,
    ),
    ("power-limit-requested-w", ("gpu_power_readings/requested_power_limit", "power_readings/power_limit"), _WATT),
    ("power-limit-default-w", ("gpu_power_readings/default_power_limit", "power_readings/default_power_limit"), _WATT),
    ("power-limit-min-w", ("gpu_power_readings/min_power_limit", "power_readings/min_power_limit"), _WATT),
    ("power-limit-max-w", ("gpu_power_readings/max_power_limit", "power_readings/max_power_limit"), _WATT),
    ("clock-max-graphics-mhz", ("max_clocks/graphics_clock",), _MHZ),
    ("clock-max-sm-mhz", ("max_clocks/sm_clock",), _MHZ),
    ("clock-max-mem-mhz", ("max_clocks/mem_clock",), _MHZ),
    ("clock-max-video-mhz", ("max_clocks/video_clock",), _MHZ),
    ("clock-max-boost-graphics-mhz", ("max_customer_boost_clocks/graphics_clock",), _MHZ),
    ("clock-app-graphics-mhz", ("applications_clocks/graphics_clock",), _MHZ),
    ("clock-app-mem-mhz", ("applications_clocks/mem_clock",), _MHZ),
    ("clock-app-default-graphics-mhz", ("default_applications_clocks/graphics_clock",), _MHZ),
    ("clock-app-default-mem-mhz", ("default_applications_clocks/mem_clock",), _MHZ),
    ("fabric-state", ("fabric/state",), _conv_str),
    ("fabric-status", ("fabric/status",), _conv_str),
    ("fabric-clique-id", ("fabric/cliqueId",), _conv_int),
    ("fabric-cluster-uuid", ("fabric/clusterUuid",), _conv_str),
    ("retired-pages-pending", ("retired_pages/pending_retirement",), _conv_yes_no),
    ("retired-pages-sbe-count", ("retired_pages/multiple_single_bit_retirement/retired_count",), _conv_int),
    ("retired-pages-dbe-count", ("retired_pages/double_bit_retirement/retired_count",), _conv_int),
    ("remapped-rows-pending", ("remapped_rows/remapped_row_pending",), _conv_yes_no),
    ("remapped-rows-failure", ("remapped_rows/remapped_row_failure",), _conv_yes_no),
    ("remapped-rows-correctable", ("remapped_rows/remapped_row_corr",), _conv_int),
    ("remapped-rows-uncorrectable", ("remapped_rows/remapped_row_unc",), _conv_int),
)

_ABSENT = object()


def _lookup(elem: ET.Element, path: str) -> object:
    """Text at ``path`` (whitespace collapsed), ``None`` when it (or a childless ancestor) says N/A, ``_ABSENT`` if
    absent."""
    node = elem
    for part in path.split("/"):
        child = node.find(part)
        if child is None:
            # A childless ancestor that says "N/A" (e.g. <remapped_rows>N/A</remapped_rows>) answers for its children.
            if node is not elem and len(node) == 0 and is_na(node.text):
                return None
            return _ABSENT
        node = child
    text = collapse_ws(node.text or "")
    if is_na(text):
        return None
    return text


def _gpu_data(gpu: ET.Element) -> tuple[dict[str, Scalar], list[str]]:
    data: dict[str, Scalar] = {}
    bad: list[str] = []
    for key, paths, conv in _GPU_FIELDS:
        raw: object = _ABSENT
        for p in paths:
            raw = _lookup(gpu, p)
            if raw is not _ABSENT:
                break
        if raw is _ABSENT:
            continue
        if raw is None:
            data[key] = None
            continue
        assert isinstance(raw, str)
        try:
            data[key] = conv(raw)
        except _Unparsable:
            data[key] = raw  # keep what the source said, flag the subtype as partial
            bad.append(key)
    if "pci-bus-id" not in data and gpu.get("id"):
        data["pci-bus-id"] = normalize_bus_id(gpu.get("id", ""))
    for key, path in (("pci-device-id", "pci/pci_device_id"), ("pci-subsystem-id", "pci/pci_sub_system_id")):
        raw = _lookup(gpu, path)
        if raw is _ABSENT:
            continue
        vendor_key = "pci-vendor-id" if key == "pci-device-id" else "pci-subsystem-vendor-id"
        if raw is None:
            data[key] = None
            continue
        assert isinstance(raw, str)
        try:
            data[key], data[vendor_key] = _pci_id_pair(raw)
        except _Unparsable:
            data[key] = raw
            bad.append(key)
    mig = gpu.find("mig_devices")
    if mig is not None:
        data["mig-devices-count"] = len(mig.findall("mig_device"))
    return data, bad


def _models_summary(names: Sequence[str]) -> str:
    counts = Counter(names)
    return ", ".join(f"{counts[n]}x {n}" for n in sorted(counts))


def parse_smi_xml(text: str) -> list[Subtype]:
    """Parse ``nvidia-smi -q -x`` output into the ``smi`` subtype followed by one ``gpu-<index>`` subtype per GPU.

    Raises :class:`SmiParseError` when the text is empty, not XML, truncated, or not an ``nvidia_smi_log``.
    """
    if not text.strip():
        raise SmiParseError("empty output")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise SmiParseError(f"unparsable XML ({e})") from None
    if root.tag != "nvidia_smi_log":
        raise SmiParseError(f"unexpected root element <{root.tag}> (expected <nvidia_smi_log>)")

    smi: dict[str, Scalar] = {}
    for key, path in (("driver", "driver_version"), ("cuda-version", "cuda_version")):
        raw = _lookup(root, path)
        if raw is not _ABSENT:
            smi[key] = raw  # type: ignore[assignment]
    gpus = root.findall("gpu")
    smi["gpu-count"] = len(gpus)
    attached = _lookup(root, "attached_gpus")
    if isinstance(attached, str) and attached.isdigit():
        smi["attached-gpus"] = int(attached)

    per_gpu: list[Subtype] = []
    datas: list[dict[str, Scalar]] = []
    partial: list[str] = []
    for index, gpu in enumerate(gpus):
        data, bad = _gpu_data(gpu)
        datas.append(data)
        status, reason = STATUS_OK, None
        if bad:
            status, reason = STATUS_PARTIAL, "could not parse: " + ", ".join(bad)
            partial.append(f"gpu-{index}")
        per_gpu.append(reading(f"gpu-{index}", data, source=SOURCE, status=status, reason=reason))

    if gpus:
        for key, path in _COMPAT_FIELDS:
            raw = _lookup(gpus[0], path)
            if raw is not _ABSENT:
                smi[key] = raw  # type: ignore[assignment]
        names = [str(d.get("product-name")) for d in datas]
        smi["gpu.models-uniform"] = len(set(names)) == 1
        smi["gpu.models"] = _models_summary(names)
        _set_uniformity(smi, datas)

    status, reason = STATUS_OK, None
    if partial:
        status, reason = STATUS_PARTIAL, "some fields could not be parsed in: " + ", ".join(partial)
    return [reading("smi", smi, source=SOURCE, status=status, reason=reason), *per_gpu]


def _set_uniformity(smi: dict[str, Scalar], datas: Sequence[dict[str, Scalar]]) -> None:
    differing = [k for k in UNIFORM_KEYS if len({repr(d.get(k, _ABSENT)) for d in datas}) > 1]
    smi["gpu.config-uniform"] = not differing
    if differing:
        smi["gpu.config-nonuniform-keys"] = ",".join(differing)
    else:
        smi.pop("gpu.config-nonuniform-keys", None)


# ----------------------------------------------------------------------------------------------------- NVLink


@dataclass(frozen=True)
class NvlinkState:
    index: int
    uuid: str | None
    active: int
    inactive: int


_NVL_GPU = re.compile(r"^GPU\s+(\d+):.*?(?:\(UUID:\s*([^)\s]+)\))?\s*$")
_NVL_LINK = re.compile(r"^\s*Link\s+(\d+):\s*(.*?)\s*$")


def parse_nvlink_status(text: str) -> list[NvlinkState]:
    """Parse ``nvidia-smi nvlink -s``: per GPU, how many links report a speed (active) vs ``<inactive>``.

    Lines look like ``GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)`` followed by ``\\t Link 0: 26.562 GB/s`` or
    ``\\t Link 1: <inactive>``. A GPU with no link lines has 0/0. Unknown lines are ignored.
    """
    out: list[NvlinkState] = []
    header: tuple[int, str | None] | None = None
    active = inactive = 0
    for line in text.splitlines():
        m = _NVL_GPU.match(line.strip())
        if m:
            if header is not None:
                out.append(NvlinkState(header[0], header[1], active, inactive))
            header, active, inactive = (int(m.group(1)), m.group(2)), 0, 0
            continue
        m = _NVL_LINK.match(line)
        if m and header is not None:
            state = m.group(2).lower()
            if "inactive" in state or "disabled" in state or not re.search(r"\d", state):
                inactive += 1
            else:
                active += 1
    if header is not None:
        out.append(NvlinkState(header[0], header[1], active, inactive))
    return out


def _apply_nvlink(subtypes: list[Subtype], states: Sequence[NvlinkState]) -> int:
    """Add ``nvlink-links-*`` to the matching ``gpu-<i>`` subtypes (by UUID, else by index).
    Returns how many matched."""
    by_uuid = {str(s.data.get("uuid")): s for s in subtypes if s.name.startswith("gpu-") and s.data.get("uuid")}
    by_name = {s.name: s for s in subtypes}
    matched = 0
    for st in states:
        target = by_uuid.get(st.uuid or "") or by_name.get(f"gpu-{st.index}")
        if target is None:
            continue
        target.data["nvlink-links-active"] = st.active
        target.data["nvlink-links-inactive"] = st.inactive
        matched += 1
    return matched


# ---------------------------------------------------------------------------------------------------- collect


def _failure(result: CommandResult) -> Subtype:
    return missing("smi", source=SOURCE, status=STATUS_ERROR, reason=f"nvidia-smi failed: {describe_failure(result)}")


def collect_gpu_smi(
    runner: CommandRunner,
    *,
    nvidia_smi: str = "nvidia-smi",
    timeout: float = 10.0,
    nvlink: bool = True,
) -> list[Subtype]:
    """Run ``nvidia-smi -q -x`` (and, when it worked, ``nvidia-smi nvlink -s``) within ``timeout`` seconds in total.

    Always returns at least the ``smi`` subtype; never raises for a nvidia-smi problem.
    """
    start = time.monotonic()
    try:
        result = runner([nvidia_smi, "-q", "-x"], timeout)
    except CommandNotFound:
        return [
            missing("smi", source=SOURCE, reason=f"{nvidia_smi} not found (no NVIDIA driver utilities on this host)")
        ]
    except CommandTimeout as e:
        return [missing("smi", source=SOURCE, status=STATUS_ERROR, reason=f"nvidia-smi timed out after {e.timeout:g}s")]
    except CommandError as e:
        return [missing("smi", source=SOURCE, status=STATUS_ERROR, reason=e.message)]

    if len(result.stdout) > MAX_XML_BYTES:
        return [missing("smi", source=SOURCE, status=STATUS_ERROR, reason=f"output larger than {MAX_XML_BYTES} bytes")]
    try:
        subtypes = parse_smi_xml(result.stdout)
    except SmiParseError as e:
        if result.returncode != 0:
            return [_failure(result)]
        return [missing("smi", source=SOURCE, status=STATUS_ERROR, reason=f"nvidia-smi output: {e}")]

    smi = subtypes[0]
    if result.returncode != 0:
        # Usable XML but a non-zero exit (e.g. one GPU fell off the bus): keep the data, say so.
        smi.context["status"] = STATUS_PARTIAL
        smi.context["reason"] = f"nvidia-smi {describe_failure(result)}"

    gpu_count = smi.data.get("gpu-count")
    if nvlink and isinstance(gpu_count, int) and gpu_count > 0:
        smi.context["nvlink"] = _collect_nvlink(runner, nvidia_smi, subtypes, timeout - (time.monotonic() - start))
        datas = [s.data for s in subtypes[1:]]
        _set_uniformity(smi.data, datas)
    return subtypes


def _collect_nvlink(runner: CommandRunner, nvidia_smi: str, subtypes: list[Subtype], remaining: float) -> str:
    if remaining < 0.5:
        return "skipped: no time left"
    try:
        res = runner([nvidia_smi, "nvlink", "-s"], remaining)
    except CommandError as e:
        return f"unavailable: {e.message}"
    if res.returncode != 0:
        return f"unavailable: {describe_failure(res, 200)}"
    states = parse_nvlink_status(res.stdout)
    if not states:
        return "unavailable: no per-GPU link status in output"
    matched = _apply_nvlink(subtypes, states)
    return f"ok ({NVLINK_SOURCE}, {matched} GPUs)"
