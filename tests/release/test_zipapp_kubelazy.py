"""The lazy ``kubernetes`` import (kubectl_aicr.kubelazy) inside the shiv zipapp: it finds the bundled package,
imports it lazily and gives working objects, with and without the host's site-packages (``python -S``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.release.conftest import SUPPORTED, Release, python_or_skip, run_zipapp

pytestmark = pytest.mark.slow

PROBE = r"""
import json, sys
from kubectl_aicr import kubelazy
assert kubelazy.install()
import kubernetes
from kubernetes import client, watch
from kubernetes.config.kube_config import KubeConfigLoader

class Response:
    data = json.dumps({"kind": "Node", "metadata": {"name": "n1"}})

node = client.ApiClient().deserialize(Response(), "V1Node")
line = json.dumps({"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "p"}}})
event = watch.Watch().unmarshal_event(line, "V1Pod")
core = client.CoreV1Api  # loads kubernetes.client.api (lazy too), as the CLI's first request does
print(json.dumps({
    "lazy": [kubelazy.is_lazy(sys.modules[p]) for p in kubelazy.LAZY],
    "version": kubernetes.__version__,
    "node": [type(node).__name__, node.metadata.name],
    "event": type(event["object"]).__name__,
    "file": kubernetes.client.__file__,
    "loaded": len(sys.modules),
}))
"""


@pytest.mark.parametrize("version", [SUPPORTED[0], SUPPORTED[-1]])
def test_the_bundled_client_imports_lazily(version: str, release: Release, warm_shiv_root: Path) -> None:
    py = python_or_skip(version)
    for flags in (("-S",), ()):
        p = run_zipapp(
            py,
            release.zipapp,
            "-c",
            PROBE,
            shiv_root=warm_shiv_root,
            python_flags=flags,
            env={"SHIV_INTERPRETER": "1"},
        )
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert got["lazy"] == [True] * 4, got
        assert got["version"] == "35.0.0" and got["node"] == ["V1Node", "n1"] and got["event"] == "V1Pod"
        assert str(warm_shiv_root) in got["file"], got["file"]  # the bundle's copy, not the host's
        assert got["loaded"] < 900, got  # of some 1,300 with the normal import
