"""runc, as the NVIDIA container runtime would wrap it: containers that ask for all GPUs get ``nvidia-smi``.

containerd runs this as the runtime's ``BinaryName`` (through a two-line sh script naming the interpreter):

    runtime_wrapper.py NVIDIA_DIR RUNC [runc arguments...]

On ``create``, if ``NVIDIA_DIR/enabled`` exists and the bundle's ``config.json`` carries
``NVIDIA_VISIBLE_DEVICES=all`` in the process environment, two read-only bind mounts are added to the spec:
``NVIDIA_DIR/nvidia-smi`` on ``/usr/bin/nvidia-smi`` and ``NVIDIA_DIR/share`` (the fake and its XML) on
``/usr/local/aicr-fake-nvidia``. Then (always) it execs runc with the same arguments. Standard library only.

While ``NVIDIA_DIR/../hold-create`` exists, ``create`` waits (up to ``HOLD_LIMIT`` seconds): tests use it to
keep a pod in ContainerCreating for as long as they need, without racing the runtime.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

BIN_TARGET = "/usr/bin/nvidia-smi"
SHARE_TARGET = "/usr/local/aicr-fake-nvidia"
HOLD_LIMIT = 600.0


def bundle_dir(args: list[str]) -> Optional[Path]:
    """The ``--bundle``/``-b`` value of a runc ``create`` command line, else None."""
    if "create" not in args:
        return None
    for i, a in enumerate(args):
        if a in ("--bundle", "-b") and i + 1 < len(args):
            return Path(args[i + 1])
        if a.startswith("--bundle="):
            return Path(a.split("=", 1)[1])
    return None


def wants_all_gpus(spec: dict[str, Any]) -> bool:
    env = (spec.get("process") or {}).get("env") or []
    return "NVIDIA_VISIBLE_DEVICES=all" in env


def inject(spec: dict[str, Any], nvidia_dir: Path) -> dict[str, Any]:
    """The spec with the two bind mounts added (once)."""
    mounts = [m for m in spec.get("mounts") or [] if m.get("destination") not in (BIN_TARGET, SHARE_TARGET)]
    opts = ["rbind", "ro", "nosuid", "nodev"]
    mounts += [
        {"destination": BIN_TARGET, "type": "bind", "source": str(nvidia_dir / "nvidia-smi"), "options": opts},
        {"destination": SHARE_TARGET, "type": "bind", "source": str(nvidia_dir / "share"), "options": opts},
    ]
    return {**spec, "mounts": mounts}


def main(argv: list[str]) -> None:
    nvidia_dir, runc, args = Path(argv[1]), argv[2], argv[3:]
    bundle = bundle_dir(args)
    hold = nvidia_dir.parent / "hold-create"
    deadline = time.monotonic() + HOLD_LIMIT
    while bundle is not None and hold.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if bundle is not None and (nvidia_dir / "enabled").exists():
        config = bundle / "config.json"
        spec = json.loads(config.read_text())
        if wants_all_gpus(spec):
            tmp = config.with_name(".config.json.aicr")
            tmp.write_text(json.dumps(inject(spec, nvidia_dir)))
            os.replace(tmp, config)
    os.execv(runc, [runc, *args])


if __name__ == "__main__":
    main(sys.argv)
