"""Files that one process writes and another reads: written atomically, read with a bounded retry.

The test harness hands state between processes through small files (the kubelet's ``ready`` file, node specs,
pod specs for ``podinit``, start-error files, pid files, kubeconfigs). A reader that opens such a file while the
writer is half-way through sees an empty or truncated file; under CPU load that happens. So:

    write_atomic(path, text)                 # temp file in the same directory + fsync + rename: all or nothing
    write_atomic(path, text, mode=0o600)     # permissions set before the file becomes visible
    read_json(path, patience_s)              # waits for the file to exist and parse, up to ``patience_s``

``podinit.py`` runs with ``python -I`` outside this package and keeps its own three-line copy of the rename.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Union


def write_atomic(path: Union[str, Path], data: Union[str, bytes], *, mode: Optional[int] = None) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old content or all of the new content."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


class NotReady(RuntimeError):
    """The file did not appear (or never held valid JSON) within the patience given."""


def read_json(path: Union[str, Path], patience_s: float, *, alive: Optional[Any] = None) -> Any:
    """Parse ``path`` as JSON once it exists and is complete; ``alive()`` (optional) may raise to stop early.

    Tolerates a writer that does not write atomically (an empty or partial file is retried, not trusted)."""
    path = Path(path)
    deadline = time.monotonic() + patience_s
    last = "does not exist"
    while True:
        if alive is not None:
            alive()
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            last = "does not exist"
        except ValueError as exc:
            last = f"not complete JSON yet ({exc})"
        if time.monotonic() > deadline:
            raise NotReady(f"{path}: {last} after {patience_s:.0f}s")
        time.sleep(0.05)
