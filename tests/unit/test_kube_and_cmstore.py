"""kubectl-exact kubeconfig resolution and the ConfigMap layout (pure parts)."""

from __future__ import annotations

import base64
import gzip
import os
from pathlib import Path

import pytest
import yaml

from kubectl_aicr import cmstore
from kubectl_aicr.errors import InvalidInput, NotFound
from kubectl_aicr.kube import KubeOptions, connect, kubeconfig_paths, resolve_context


def write_cfg(
    path: Path, current: str | None, contexts: dict[str, str | None], server: str = "https://127.0.0.1:6443"
) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": n, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
            for n, ns in contexts.items()
        ],
    }
    if current:
        cfg["current-context"] = current
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_first_kubeconfig_file_sets_current_context(tmp_path: Path) -> None:
    a = write_cfg(tmp_path / "a", "ctx-a", {"ctx-a": "team-a"})
    b = write_cfg(tmp_path / "b", "ctx-b", {"ctx-b": None, "ctx-a": "other"})
    paths = kubeconfig_paths(None, {"KUBECONFIG": f"{a}{os.pathsep}{tmp_path / 'missing'}{os.pathsep}{b}"})
    assert paths == [str(a), str(b)]
    assert resolve_context(paths, None) == ("ctx-a", "team-a")  # kubectl: the first file wins (the client would pick b)
    assert resolve_context(paths, "ctx-b") == ("ctx-b", None)


def test_missing_context_and_files(tmp_path: Path) -> None:
    a = write_cfg(tmp_path / "a", None, {"x": None})
    with pytest.raises(NotFound, match="no current context"):
        resolve_context([str(a)], None)
    with pytest.raises(NotFound, match="context 'nope' not found .*contexts: x"):
        resolve_context([str(a)], "nope")
    with pytest.raises(NotFound, match="does not exist"):
        kubeconfig_paths(str(tmp_path / "none"))
    with pytest.raises(NotFound, match="none of the files in KUBECONFIG exist"):
        kubeconfig_paths(None, {"KUBECONFIG": str(tmp_path / "none")})


def test_connect_never_writes_the_kubeconfig(tmp_path: Path) -> None:
    a = write_cfg(tmp_path / "a", "ctx", {"ctx": "ns1"})
    before = a.read_bytes()
    k = connect(KubeOptions(kubeconfig=str(a)))
    assert k.namespace == "ns1" and k.server == "https://127.0.0.1:6443" and k.context == "ctx"
    k2 = connect(KubeOptions(kubeconfig=str(a), namespace="override"))
    assert k2.namespace == "override"
    assert a.read_bytes() == before


def test_small_snapshot_stored_as_text() -> None:
    data, binary = cmstore.encode("kind: Snapshot\n", "yaml")
    assert data["snapshot.yaml"] == "kind: Snapshot\n" and data["format"] == "yaml" and "timestamp" in data
    assert binary == {}
    assert cmstore.decode(data, None, source="cm://a/b") == b"kind: Snapshot\n"


def test_large_snapshot_is_compressed_not_truncated() -> None:
    text = "".join(f"key-{i}: value-{i % 97}\n" for i in range(120_000))  # ~2.3 MB, compressible
    assert len(text) > cmstore.CM_PAYLOAD_LIMIT
    data, binary = cmstore.encode(text, "yaml")
    assert data["encoding"] == "gzip" and "snapshot.yaml" not in data
    assert gzip.decompress(base64.b64decode(binary["snapshot.yaml.gz"])).decode() == text
    assert cmstore.decode(data, binary, source="cm://a/b").decode() == text


def test_incompressible_snapshot_too_big_is_refused() -> None:
    text = base64.b64encode(os.urandom(2 * 1024 * 1024)).decode()
    with pytest.raises(InvalidInput, match="a ConfigMap holds at most"):
        cmstore.encode(text, "json")


def test_configmap_without_snapshot() -> None:
    with pytest.raises(NotFound, match="holds no snapshot .*keys: other"):
        cmstore.decode({"other": "x"}, None, source="cm://a/b")
