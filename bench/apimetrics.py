"""The API server's request counters, as the fleet and snapshot benches count a run's API load.

``apiserver_request_total`` from ``/metrics``, summed by (verb, resource, subresource), without the kubelet's Lease
and Node-status heartbeats (they tick whatever the CLI does).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def heartbeat(key: tuple[str, str, str]) -> bool:
    """Whether a (verb, resource, subresource) counter is a kubelet heartbeat."""
    verb, resource, sub = key
    return resource == "leases" or (resource == "nodes" and verb in ("PATCH", "UPDATE") and sub == "status")


def request_counts(api: Any) -> Counter[tuple[str, str, str]]:
    """apiserver_request_total summed by (verb, resource, subresource), heartbeats left out; ``api`` is a
    kubernetes ``CoreV1Api`` on an admin connection."""
    text = api.api_client.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], response_type="str", _preload_content=False
    )[0].data.decode()
    out: Counter[tuple[str, str, str]] = Counter()
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m:
            labels = dict(_LABEL.findall(m["labels"]))
            key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
            if not heartbeat(key):
                out[key] += int(float(m["value"]))
    return out
