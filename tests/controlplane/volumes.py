"""Pod-level data the process kubelet materialises: env values, downward API fields, volumes on disk.

Everything here reads the pod as a plain dict (the JSON the API returns) and the API through a
``CoreV1Api``. Volumes are written below ``<pod_dir>/volumes/<name>`` and later bind-mounted by
:mod:`tests.controlplane.podinit` inside the pod's private mount namespace.

Supported volume types: projected (serviceAccountToken, configMap, secret, downwardAPI, i.e. everything
``kube-api-access-*`` uses), configMap, secret, downwardAPI, emptyDir, hostPath. Anything else raises
:class:`VolumeError` (the pod then stays ``ContainerCreating`` with that message).
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from .rawapi import call_json

POD_IP = "127.0.0.1"
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


_HOSTPATH_CHECKS: dict[str, tuple[Callable[[Path], bool], str]] = {
    "Directory": (Path.is_dir, "directory"),
    "File": (Path.is_file, "file"),
    "Socket": (Path.is_socket, "socket file"),
    "CharDevice": (Path.is_char_device, "character device"),
    "BlockDevice": (Path.is_block_device, "block device"),
}
"""hostPath ``type`` -> (check, what the kubelet's message calls it)."""


class VolumeError(RuntimeError):
    """A volume cannot be materialised (yet): missing ConfigMap/Secret, unsupported type, ..."""


class NotReady(VolumeError):
    """A referenced object does not exist yet; the kubelet retries."""


def field_value(pod: dict[str, Any], path: str) -> str:
    """Value of a downward API ``fieldPath`` for ``pod`` (the subset a real kubelet supports)."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": POD_IP,
        "status.hostIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return simple[path]
    m = _SUBSCRIPT.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise VolumeError(f"unsupported fieldPath {path!r}")


def resource_value(container: dict[str, Any], ref: dict[str, Any], node_allocatable: dict[str, str]) -> str:
    """``resourceFieldRef``: the container's limit/request, else the node's allocatable (no divisor maths)."""
    kind, _, name = ref["resource"].partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    return str(value or node_allocatable.get(name, "0"))


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes, unknown refs stay as is."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


class ObjectReader:
    """Reads ConfigMaps/Secrets of one namespace as ``{key: bytes}``."""

    def __init__(self, api: CoreV1Api, namespace: str) -> None:
        self.api, self.namespace = api, namespace

    def configmap(self, name: str, optional: bool) -> Optional[dict[str, bytes]]:
        try:
            cm = call_json(self.api.read_namespaced_config_map, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                if optional:
                    return None
                raise NotReady(f'configmap "{name}" not found') from None
            raise
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    def secret(self, name: str, optional: bool) -> Optional[dict[str, bytes]]:
        try:
            sec = call_json(self.api.read_namespaced_secret, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                if optional:
                    return None
                raise NotReady(f'secret "{name}" not found') from None
            raise
        return {k: base64.b64decode(v) for k, v in (sec.get("data") or {}).items()}


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    reader: ObjectReader,
    base: dict[str, str],
    node_allocatable: dict[str, str],
) -> dict[str, str]:
    """The container's environment: ``base`` then ``envFrom`` then ``env`` (later wins), with $(VAR) expansion."""
    env = dict(base)
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            ref = src["configMapRef"]
            data = reader.configmap(ref["name"], ref.get("optional", False)) or {}
        else:
            ref = src["secretRef"]
            data = reader.secret(ref["name"], ref.get("optional", False)) or {}
        env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        vf = var["valueFrom"]
        if "fieldRef" in vf:
            env[name] = field_value(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            env[name] = resource_value(container, vf["resourceFieldRef"], node_allocatable)
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            is_cm = "configMapKeyRef" in vf
            ref = vf["configMapKeyRef" if is_cm else "secretKeyRef"]
            optional = ref.get("optional", False)
            data = (reader.configmap if is_cm else reader.secret)(ref["name"], optional)
            if data is None or ref["key"] not in data:
                if optional:
                    continue
                raise NotReady(
                    f"couldn't find key {ref['key']} in {'ConfigMap' if is_cm else 'Secret'} "
                    f"{pod['metadata']['namespace']}/{ref['name']}"
                )
            env[name] = data[ref["key"]].decode(errors="replace")
    return env


def _write(path: Path, content: bytes, mode: Optional[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode if mode is not None else 0o644)


def _write_keys(
    dest: Path, data: dict[str, bytes], items: Optional[list[dict[str, Any]]], default_mode: Optional[int], what: str
) -> None:
    if items:
        for item in items:
            if item["key"] not in data:
                raise NotReady(f'{what}: key "{item["key"]}" not found')
            _write(dest / item["path"], data[item["key"]], item.get("mode", default_mode))
    else:
        for key, value in data.items():
            _write(dest / key, value, default_mode)


class VolumeBuilder:
    """Materialises a pod's volumes below ``pod_dir/volumes``; :meth:`build` returns name -> host path."""

    def __init__(self, api: CoreV1Api, pod: dict[str, Any], pod_dir: Path, host_root: Optional[Path] = None) -> None:
        self.api, self.pod, self.pod_dir = api, pod, pod_dir
        #: The node's fixture host tree (``<node_dir>/host-tree``), if it has one: hostPath paths resolve inside it.
        self.host_root = host_root
        self.reader = ObjectReader(api, pod["metadata"]["namespace"])

    def build(self) -> dict[str, Path]:
        paths = {}
        for vol in self.pod["spec"].get("volumes") or []:
            paths[vol["name"]] = self._volume(vol)
        return paths

    def _token(self, src: dict[str, Any]) -> bytes:
        meta = self.pod["metadata"]
        spec: dict[str, Any] = {
            "expirationSeconds": src.get("expirationSeconds", 3600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if src.get("audience"):
            spec["audiences"] = [src["audience"]]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        try:
            resp = call_json(self.api.create_namespaced_service_account_token, sa, meta["namespace"], body)
        except ApiException as exc:
            if exc.status == 404:
                raise NotReady(f'serviceaccount "{sa}" not found') from None
            raise
        return str(resp["status"]["token"]).encode()

    def _downward(self, dest: Path, items: list[dict[str, Any]], default_mode: Optional[int]) -> None:
        for item in items:
            if "fieldRef" in item:
                value = field_value(self.pod, item["fieldRef"]["fieldPath"])
            else:
                container = next(
                    (
                        c
                        for c in self.pod["spec"]["containers"]
                        if c["name"] == item["resourceFieldRef"].get("containerName")
                    ),
                    self.pod["spec"]["containers"][0],
                )
                value = resource_value(container, item["resourceFieldRef"], {})
            _write(dest / item["path"], value.encode(), item.get("mode", default_mode))

    def _volume(self, vol: dict[str, Any]) -> Path:
        name = vol["name"]
        dest = self.pod_dir / "volumes" / name
        if "hostPath" in vol:
            hp = vol["hostPath"]
            path = Path(hp["path"]) if self.host_root is None else self.host_root / hp["path"].lstrip("/")
            kind = hp.get("type", "")
            if kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif kind in _HOSTPATH_CHECKS and not _HOSTPATH_CHECKS[kind][0](path):
                # The real kubelet checks the type (following symlinks), not only existence, in these words.
                raise VolumeError(f"hostPath type check failed: {path} is not a {_HOSTPATH_CHECKS[kind][1]}")
            elif not path.exists() and kind:
                raise VolumeError(f"hostPath type check failed: {path} is not a {kind}")
            elif not path.exists():
                path.mkdir(parents=True, exist_ok=True)  # type "" creates nothing on a real node; be kind
            return path
        dest.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in vol:
            return dest
        if "configMap" in vol:
            src = vol["configMap"]
            data = self.reader.configmap(src["name"], src.get("optional", False))
            _write_keys(dest, data or {}, src.get("items"), src.get("defaultMode"), f"configmap {src['name']}")
        elif "secret" in vol:
            src = vol["secret"]
            data = self.reader.secret(src["secretName"], src.get("optional", False))
            _write_keys(dest, data or {}, src.get("items"), src.get("defaultMode"), f"secret {src['secretName']}")
        elif "downwardAPI" in vol:
            self._downward(dest, vol["downwardAPI"].get("items") or [], vol["downwardAPI"].get("defaultMode"))
        elif "projected" in vol:
            mode = vol["projected"].get("defaultMode")
            for source in vol["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    sat = source["serviceAccountToken"]
                    _write(dest / sat.get("path", "token"), self._token(sat), 0o600 if mode is None else mode)
                elif "configMap" in source:
                    src = source["configMap"]
                    data = self.reader.configmap(src["name"], src.get("optional", False))
                    _write_keys(dest, data or {}, src.get("items"), mode, f"configmap {src['name']}")
                elif "secret" in source:
                    src = source["secret"]
                    data = self.reader.secret(src["name"], src.get("optional", False))
                    _write_keys(dest, data or {}, src.get("items"), mode, f"secret {src['name']}")
                elif "downwardAPI" in source:
                    self._downward(dest, source["downwardAPI"].get("items") or [], mode)
                else:
                    raise VolumeError(f"projected volume {name}: unsupported source {sorted(source)}")
        else:
            kinds = sorted(k for k in vol if k != "name")
            raise VolumeError(f"volume {name}: type {kinds} is not supported by the process kubelet")
        return dest


def mount_source(volume_path: Path, sub_path: str) -> Path:
    """Host path to bind for a volumeMount (``subPath`` inside the volume, created as a dir if missing)."""
    if not sub_path:
        return volume_path
    if os.path.isabs(sub_path) or ".." in Path(sub_path).parts:
        raise VolumeError(f"invalid subPath {sub_path!r}")
    path = volume_path / sub_path
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
    return path
