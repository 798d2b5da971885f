"""Session fixtures of the real node (imported by tests/conftest.py).

``real_node`` (session)
    :class:`~tests.realnode.node.RealNode`, started once: a dedicated control plane, containerd and the real
    kubelet in a network namespace of their own, the agent image imported. ``.kubeconfig`` (admin, usable
    from the test process), ``.api`` (ApiClient), ``.name``, ``.artifacts.agent_image``, ``.netns``,
    ``.node_exec(argv)``, ``.set_nvidia(xml | "fail" | None)``, ``.leftovers()``.
    Missing prerequisites (not root, no containerd/runc, kubelet or images not built): skip with the reason,
    or FAIL when ``AICR_REQUIRE_CONTROLPLANE=1`` (CI). ``AICR_BUILD_REALNODE=1`` builds what is missing first
    (the kubelet needs Go; the images need buildah, debootstrap, busybox-static and the package registries).
    ``AICR_KEEP_REALNODE_DIR=1`` keeps its directory (logs of every component) for debugging.
"""

from __future__ import annotations

import os
from typing import Iterator, NoReturn

import pytest

from tests.controlplane.cluster import BinariesMissing, locate_binaries

from .artifacts import NotBuilt, locate, missing_prerequisites
from .node import RealNode, RealNodeError


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("AICR_REQUIRE_CONTROLPLANE") == "1":
        pytest.fail(f"AICR_REQUIRE_CONTROLPLANE=1 but the real node is unavailable: {reason}", pytrace=False)
    pytest.skip(f"real node unavailable: {reason}")


@pytest.fixture(scope="session")
def real_node() -> Iterator[RealNode]:
    reason = missing_prerequisites()
    node = None
    if not reason:
        try:
            bin_dir = locate_binaries(build=os.environ.get("AICR_BUILD_CONTROLPLANE") == "1")
            arts = locate(build=os.environ.get("AICR_BUILD_REALNODE") == "1")
            node = RealNode(arts, bin_dir, keep_workdir=os.environ.get("AICR_KEEP_REALNODE_DIR") == "1")
            node.start()
        except (BinariesMissing, NotBuilt, RealNodeError) as exc:
            reason = str(exc)
    if reason or node is None:
        _unavailable(reason)
    try:
        yield node
    finally:
        node.stop()
        if node.keep_workdir:
            print(f"\nreal node files kept in {node.workdir}")
    left = node.leftovers()
    assert left == [], f"the real node left these behind: {left}"
