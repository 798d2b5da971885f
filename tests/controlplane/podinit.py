"""Container "runtime" step of the process kubelet: set up mounts, then exec the container's command.

Runs as ``unshare --mount --propagation private -- python -I podinit.py SPEC.json``, i.e. in a private mount
namespace of its own, so nothing mounted here is visible outside the pod's process tree. Standard library only
(it runs in isolated mode). Steps:

1. mount a fresh tmpfs on ``/run`` (what ``/var/run`` points to): the pod gets its own, empty ``/run``, and
   anything the host may keep under ``/run/secrets`` is hidden;
2. bind-mount each volume (``source`` -> ``target``, read-only when asked), parents first; targets under
   ``/run`` are created in that tmpfs, others must exist (the kubelet creates and later removes them);
3. ``chdir`` and ``execvpe`` the command with exactly the environment in the spec (PATH lookup uses the
   pod's PATH, as a container runtime does).

If any step fails, the reason is written to ``start_error_file`` and the process exits 128, which the kubelet
reports as a container terminated with reason ``StartError``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
START_ERROR_EXIT = 128

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); raises OSError with the errno."""
    rc = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode() if data else None
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} -> {target}: {os.strerror(err)}")


def setup_mounts(spec: dict) -> None:
    run_dir = os.path.realpath("/var/run")
    mount("tmpfs", run_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    for m in sorted(spec.get("mounts", []), key=lambda m: m["target"].count("/")):
        source, target = m["source"], m["target"]
        real_parent = os.path.realpath(os.path.dirname(target))
        if not os.path.lexists(target) and (real_parent + "/").startswith(run_dir + "/"):
            if os.path.isdir(source):
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        mount(source, target, None, MS_BIND | MS_REC)
        if m.get("read_only"):
            mount(source, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def main(spec_path: str) -> int:
    with open(spec_path) as fh:
        spec = json.load(fh)
    argv, env = spec["argv"], spec["env"]

    def fail(reason: str) -> int:
        # Atomic (temp + rename): the pod runner reads this file as soon as this process has exited.
        target = spec["start_error_file"]
        with open(target + ".tmp", "w") as out:
            out.write(reason)
        os.replace(target + ".tmp", target)
        return START_ERROR_EXIT

    try:
        setup_mounts(spec)
    except OSError as exc:
        return fail(f"failed to set up volume mounts: {exc}")
    cwd = spec.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        return fail(f"chdir to working directory {cwd!r}: {exc.strerror}")
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        return fail(f'exec: "{argv[0]}": executable file not found in $PATH')
    except OSError as exc:
        return fail(f'exec: "{argv[0]}": {exc.strerror}')
    return START_ERROR_EXIT  # not reached: execvpe replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
