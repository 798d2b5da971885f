"""The Kubernetes boundary against the real API server: snapshots saved to and loaded from ``cm://`` through one
lazy connection, what each refusal is typed as (missing, forbidden, changed while replaced), and the pager on
real continue tokens."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from kubectl_aicr import cmstore, snapshot_io
from kubectl_aicr.errors import Forbidden, InvalidInput, NotFound
from kubectl_aicr.kube import Kube, KubeOptions, answer_of, connect, lazy
from kubectl_aicr.snapshot_io import ConfigMapRef
from tests.controlplane.testkit import unique

pytestmark = pytest.mark.controlplane


def _doc() -> dict[str, Any]:
    from collector.model import Measurement, build_snapshot, reading

    return build_snapshot(
        {"timestamp": "2026-11-27T06:00:00Z", "version": "0.1.0", "source-node": "gpu-1"},
        [Measurement("OS", [reading("release", {"ID": "ubuntu"}, source="/etc/os-release")])],
    )


def test_save_and_load_a_configmap_through_one_lazy_connection(
    control_plane: Any, namespace: str, api_client: client.ApiClient
) -> None:
    made: list[Kube] = []

    def factory() -> Kube:
        made.append(connect(KubeOptions(kubeconfig=str(control_plane.kubeconfig))))
        return made[-1]

    conn = lazy(factory)
    doc, ref = _doc(), ConfigMapRef(namespace, "snap")
    assert snapshot_io.save(doc, ref, "yaml", connect=conn) == f"cm://{namespace}/snap"
    assert snapshot_io.load(ref, connect=conn) == doc
    doc["metadata"]["source-node"] = "gpu-2"
    snapshot_io.save(doc, ref, "json", connect=conn)  # ours: replaced whole, no stale key survives
    assert snapshot_io.load(ref, connect=conn)["metadata"]["source-node"] == "gpu-2"
    assert len(made) == 1, "one connection for every read and write"
    core = client.CoreV1Api(api_client)
    assert set(core.read_namespaced_config_map("snap", namespace).data) == {"snapshot.json", "format", "timestamp"}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "theirs"}, "data": {"Corefile": "."}})
    with pytest.raises(InvalidInput, match="exists and is not a kubectl-aicr snapshot"):
        snapshot_io.save(doc, ConfigMapRef(namespace, "theirs"), "yaml", connect=conn)
    assert core.read_namespaced_config_map("theirs", namespace).data == {"Corefile": "."}
    snapshot_io.save(doc, ConfigMapRef(namespace, "theirs"), "yaml", connect=conn, overwrite=True)
    assert snapshot_io.load(ConfigMapRef(namespace, "theirs"), connect=conn) == doc


def test_missing_and_forbidden_configmaps_are_typed(control_plane: Any, namespace: str) -> None:
    kube = connect(KubeOptions(kubeconfig=str(control_plane.kubeconfig)))
    with pytest.raises(NotFound, match=f"^cm://{namespace}/none: ConfigMap 'none' not found in namespace"):
        cmstore.read(kube, ConfigMapRef(namespace, "none"))
    nobody = connect(KubeOptions(kubeconfig=str(control_plane.make_user_kubeconfig(unique("nobody")))))
    with pytest.raises(Forbidden) as denied:
        snapshot_io.load(ConfigMapRef(namespace, "none"), connect=lambda: nobody)
    said = answer_of(denied.value)
    assert said is not None and said.status == 403 and said.reason == "Forbidden"
    assert str(denied.value).startswith(f'reading cm://{namespace}/none: configmaps "none" is forbidden')


def test_a_configmap_changed_while_being_replaced_is_not_clobbered(
    control_plane: Any, namespace: str, api_client: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = connect(KubeOptions(kubeconfig=str(control_plane.kubeconfig)))
    ref = ConfigMapRef(namespace, "raced")
    cmstore.write(kube, ref, "kind: Snapshot\n", "yaml")
    core = client.CoreV1Api(api_client)
    read = cmstore.read_object

    def read_then_someone_writes(k: Kube, r: ConfigMapRef) -> Any:
        cm = read(k, r)
        core.patch_namespaced_config_map(r.name, r.namespace, {"data": {"snapshot.yaml": "kind: Theirs\n"}})
        return cm

    monkeypatch.setattr(cmstore, "read_object", read_then_someone_writes)
    with pytest.raises(InvalidInput, match="was changed by someone else while it was being replaced; nothing written"):
        cmstore.write(kube, ref, "kind: Mine\n", "yaml")
    assert core.read_namespaced_config_map("raced", namespace).data["snapshot.yaml"] == "kind: Theirs\n"


def test_list_all_follows_the_servers_continue_tokens(
    control_plane: Any, namespace: str, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    names = [f"page-{i}" for i in range(5)]
    for n in names:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": n, "labels": {"aicr.test/page": "y"}}})
    kube = connect(KubeOptions(kubeconfig=str(control_plane.kubeconfig)))
    tokens: list[Any] = []

    def list_config_maps(*args: Any, **kw: Any) -> Any:
        tokens.append(kw.get("_continue"))
        return kube.core.list_namespaced_config_map(*args, **kw)

    got = kube.list_all(
        list_config_maps, namespace, label_selector="aicr.test/page=y", action="listing ConfigMaps", limit=2
    )
    assert sorted(c.metadata.name for c in got) == names
    assert len(tokens) == 3 and tokens[0] is None and all(tokens[1:]), "three pages of at most two"
