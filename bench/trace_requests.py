"""Launcher for one traced CLI run (used by ``bench/bench_snapshot.py --trace``): runs ``kubectl_aicr`` as
``python -m kubectl_aicr`` would, and records every HTTP request the CLI sends to the API server.

    python bench/trace_requests.py RECORD.json snapshot -o out.yaml ...

At exit it writes RECORD.json atomically: ``{"launched": ..., "exit": ..., "requests": [[start, end, method, path,
status], ...]}``, every time a ``time.monotonic()`` reading (one clock for every process on the machine, so the
caller can put them on its own time line); ``launched`` is the launcher's first line (after the interpreter's
start-up), ``exit`` the atexit hook (before the interpreter's teardown). The patch wraps ``urllib3``'s
``HTTPConnectionPool.urlopen``, the one place every request of the kubernetes client goes through (a watch's time
is until its response headers; the stream that follows is the caller's). Measuring only: nothing about the run
changes but the recording.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from typing import Any

LAUNCHED = time.monotonic()
RECORD = sys.argv.pop(1)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's kubectl_aicr
REQUESTS: list[list[Any]] = []


def _install() -> None:
    import urllib3.connectionpool as pool

    original = pool.HTTPConnectionPool.urlopen

    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        status: Any = None
        try:
            resp = original(self, method, url, *args, **kwargs)
            status = resp.status
            return resp
        finally:
            REQUESTS.append([start, time.monotonic(), method, url, status])

    pool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


def _write() -> None:
    tmp = f"{RECORD}.tmp"
    with open(tmp, "w") as f:
        json.dump({"launched": LAUNCHED, "exit": time.monotonic(), "requests": REQUESTS}, f)
    os.replace(tmp, RECORD)


if __name__ == "__main__":
    atexit.register(_write)
    _install()
    from kubectl_aicr.cli import main

    sys.exit(main())
