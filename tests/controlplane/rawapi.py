"""The process kubelet's API calls without the client's models.

The kubernetes client turns every answer into model objects (``V1Pod``...): for a pod status patch that is most of
the process kubelet's CPU, and a simulated fleet of 1,000 nodes runs on the same two cores as the plane and the CLI
it measures (a real node's kubelet has a CPU of its own). These two helpers call the same API methods with
``_preload_content=False`` and read the answer as plain JSON, or not at all; failures still raise the client's
``ApiException`` with the status and body, as before.
"""

from __future__ import annotations

import json
from typing import Any, Callable


def _body(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    resp = call(*args, _preload_content=False, **kwargs)
    try:
        data: bytes = resp.data
        return data
    finally:
        resp.release_conn()


def call_json(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``call(*args, **kwargs)``'s answer as a JSON object (``{}`` for an empty body)."""
    data = _body(call, args, kwargs)
    got = json.loads(data) if data else {}
    return got if isinstance(got, dict) else {}


def send(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``call(*args, **kwargs)`` for its effect only: the answer is read (the connection goes back to the pool)
    and dropped."""
    _body(call, args, kwargs)
