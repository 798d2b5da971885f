"""A fake ``nvidia-smi`` for the process kubelet's nodes (standard library only).

Each node has a directory ``<node_dir>`` with::

    bin/nvidia-smi      tiny sh wrapper: exec <python> fake_nvidia_smi.py --node-dir <node_dir> "$@"
    nvidia-smi.xml      what ``nvidia-smi -q -x`` prints (a copy of the node's fixture; tests may overwrite it)
    nvidia-smi.fail     if present: print "NVIDIA-SMI has failed ..." and exit 9, like a node whose driver is gone
    nvidia-smi-nvlink.txt  what ``nvidia-smi nvlink -s`` prints: a copy of the fixture's sibling
                        ``<name>.nvlink-s.txt`` when there is one (tests/fixtures/nvidia-smi/gpu.nvlink-s.txt: an
                        8x H100 HGX board in the real layout, ``GPU i: <name> (UUID: ...)`` then ``\t Link n:
                        26.562 GB/s`` or ``<inactive>``); without one, each GPU's header line and no links, as the
                        real tool prints for GPUs without NVLink (PCIe boards)

``bin/`` is first on the PATH of the node's pods. :func:`install` sets a node up (or removes ``bin/nvidia-smi``
for "no nvidia-smi at all"); the change applies to the next process that runs it.

Supported invocations: ``-q -x`` (any spelling: ``-q``/``--query`` with ``-x``/``--xml-format``), ``-L``/
``--list-gpus``, ``--query-gpu=a,b --format=csv[,noheader][,nounits]`` for the fields in :data:`QUERY_FIELDS`,
``--version``, ``nvlink -s``/``nvlink --status`` (optionally ``-i <index>``), and no arguments (a short summary).
Anything else exits 2 and says so, so that a collector relying on an unsupported form fails loudly instead of
parsing nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence, Union

FAIL_MESSAGE = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running."
)
FAIL_EXIT = 9
FAIL_MODE = "fail"
NVLINK_FILE = "nvidia-smi-nvlink.txt"

# --query-gpu field -> path under <gpu> (or "@id"/"#index"/"/root" specials)
QUERY_FIELDS: dict[str, str] = {
    "index": "#index",
    "count": "/attached_gpus",
    "name": "product_name",
    "gpu_name": "product_name",
    "driver_version": "/driver_version",
    "uuid": "uuid",
    "gpu_uuid": "uuid",
    "serial": "serial",
    "pci.bus_id": "@id",
    "gpu_bus_id": "@id",
    "memory.total": "fb_memory_usage/total",
    "memory.used": "fb_memory_usage/used",
    "memory.free": "fb_memory_usage/free",
    "vbios_version": "vbios_version",
    "persistence_mode": "persistence_mode",
    "mig.mode.current": "mig_mode/current_mig",
    "mig.mode.pending": "mig_mode/pending_mig",
    "power.limit": "gpu_power_readings/current_power_limit",
    "temperature.gpu": "temperature/gpu_temp",
    "utilization.gpu": "utilization/gpu_util",
    "compute_mode": "compute_mode",
}


def install(node_dir: Path, source: Optional[Union[str, Path]]) -> None:
    """Set up ``node_dir`` so its pods see ``source``: an XML file, :data:`FAIL_MODE`, or ``None`` (absent)."""
    bin_dir = node_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    fail = node_dir / "nvidia-smi.fail"
    if source is None:
        script.unlink(missing_ok=True)
        fail.unlink(missing_ok=True)
        return
    if str(source) == FAIL_MODE:
        fail.write_text("1\n")
    else:
        tmp = node_dir / "nvidia-smi.xml.tmp"
        shutil.copyfile(source, tmp)
        tmp.replace(node_dir / "nvidia-smi.xml")  # atomic for a pod reading it right now
        fail.unlink(missing_ok=True)
        nvlink_src = Path(source).with_suffix(".nvlink-s.txt")
        nvlink = node_dir / NVLINK_FILE
        if nvlink_src.is_file():
            shutil.copyfile(nvlink_src, node_dir / "nvidia-smi-nvlink.txt.tmp")
            (node_dir / "nvidia-smi-nvlink.txt.tmp").replace(nvlink)
        else:
            nvlink.unlink(missing_ok=True)
    wrapper = (
        f"#!/bin/sh\nexec '{sys.executable}' -I '{Path(__file__).resolve()}' --node-dir '{node_dir.resolve()}' \"$@\"\n"
    )
    if not script.exists() or script.read_text() != wrapper:
        tmp_script = bin_dir / ".nvidia-smi.tmp"
        tmp_script.write_text(wrapper)
        tmp_script.chmod(0o755)
        tmp_script.replace(script)


def driver_variant(source: Path, driver: str, dest_dir: Path) -> Path:
    """A copy of XML fixture ``source`` whose nvidia-smi reports driver ``driver`` (an upgrade or downgrade on
    a node), written into ``dest_dir`` with the fixture's ``nvlink -s`` sibling, so only the driver changes."""
    text = source.read_text()
    current = re.search(r"<driver_version>([^<]*)</driver_version>", text)
    assert current, f"{source} has no <driver_version>"
    out = dest_dir / f"{source.stem}-driver-{driver}.xml"
    out.write_text(text.replace(current.group(0), f"<driver_version>{driver}</driver_version>"))
    sibling = source.with_suffix(".nvlink-s.txt")
    if sibling.is_file():
        shutil.copyfile(sibling, out.with_suffix(".nvlink-s.txt"))
    return out


def _gpu_value(root: ET.Element, gpu: ET.Element, index: int, path: str, nounits: bool) -> str:
    if path == "#index":
        value = str(index)
    elif path == "@id":
        value = gpu.get("id", "")
    elif path.startswith("/"):
        value = (root.findtext(path[1:]) or "").strip()
    else:
        value = (gpu.findtext(path) or "[N/A]").strip()
    if nounits:
        value = value.replace(" MiB", "").replace(" W", "").replace(" C", "").replace(" %", "")
    return value


def _query_gpu(root: ET.Element, fields: str, fmt: str) -> int:
    opts = {o.strip() for o in fmt.split(",")}
    if "csv" not in opts:
        print(f'"{fmt}" is not a valid format.', file=sys.stderr)
        return 2
    names = [f.strip() for f in fields.split(",") if f.strip()]
    for name in names:
        if name not in QUERY_FIELDS:
            print(f'Field "{name}" is not a valid field to query.', file=sys.stderr)
            return 2
    if "noheader" not in opts:
        print(", ".join(names))
    for i, gpu in enumerate(root.findall("gpu")):
        print(", ".join(_gpu_value(root, gpu, i, QUERY_FIELDS[n], "nounits" in opts) for n in names))
    return 0


def _nvlink(node_dir: Path, root: ET.Element, rest: Sequence[str]) -> int:
    """``nvlink -s [-i N]``: the node's recorded status text, or one header line per GPU (no NVLink)."""
    opts = list(rest[1:])
    index: Optional[int] = None
    if len(opts) == 3 and opts[1] in ("-i", "--id") and opts[2].isdigit():
        index, opts = int(opts[2]), opts[:1]
    if opts not in (["-s"], ["--status"]):
        print(
            f"fake nvidia-smi: unsupported nvlink arguments {list(rest[1:])!r} (only -s/--status [-i N])",
            file=sys.stderr,
        )
        return 2
    recorded = node_dir / NVLINK_FILE
    if recorded.is_file():
        text = recorded.read_text()
    else:
        text = "".join(
            f"GPU {i}: {(g.findtext('product_name') or '').strip()} (UUID: {(g.findtext('uuid') or '').strip()})\n"
            for i, g in enumerate(root.findall("gpu"))
        )
    if index is not None:
        blocks = re.split(r"(?m)^(?=GPU \d+:)", text)
        text = "".join(b for b in blocks if b.startswith(f"GPU {index}:"))
        if not text:
            print(f"No devices were found with index {index}", file=sys.stderr)  # message wording is ours
            return 6
    sys.stdout.write(text)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nvidia-smi", add_help=False)
    parser.add_argument("--node-dir", required=True, type=Path)
    parser.add_argument("-q", "--query", action="store_true")
    parser.add_argument("-x", "--xml-format", action="store_true")
    parser.add_argument("-L", "--list-gpus", action="store_true")
    parser.add_argument("--query-gpu")
    parser.add_argument("--format", default="csv")
    parser.add_argument("--version", action="store_true")
    args, rest = parser.parse_known_args(argv)
    if (args.node_dir / "nvidia-smi.fail").exists():
        print(FAIL_MESSAGE)
        return FAIL_EXIT
    xml_path = args.node_dir / "nvidia-smi.xml"
    text = xml_path.read_text()
    if rest and rest[0] == "nvlink":
        return _nvlink(args.node_dir, ET.fromstring(text), rest)
    if rest:
        print(f"fake nvidia-smi: unsupported arguments {rest!r}", file=sys.stderr)
        return 2
    if args.query and args.xml_format:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. `nvidia-smi -q -x | head`
            pass
        return 0
    root = ET.fromstring(text)
    driver = (root.findtext("driver_version") or "").strip()
    cuda = (root.findtext("cuda_version") or "").strip()
    if args.version:
        print(
            f"NVIDIA-SMI version  : {driver}\nNVML version        : {cuda.split('.')[0]}.{driver}\n"
            f"DRIVER version      : {driver}\nCUDA Version        : {cuda}"
        )
        return 0
    if args.list_gpus:
        for i, gpu in enumerate(root.findall("gpu")):
            print(
                f"GPU {i}: {(gpu.findtext('product_name') or '').strip()} (UUID: {(gpu.findtext('uuid') or '').strip()})"  # noqa: E501
            )
        return 0
    if args.query_gpu:
        return _query_gpu(root, args.query_gpu, args.format)
    if args.query or args.xml_format:
        print("fake nvidia-smi: only -q with -x (XML) is supported", file=sys.stderr)
        return 2
    print(f"| NVIDIA-SMI {driver}    Driver Version: {driver}    CUDA Version: {cuda} |")
    for i, gpu in enumerate(root.findall("gpu")):
        print(f"|   {i}  {(gpu.findtext('product_name') or '').strip()}  {gpu.get('id', '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
