"""Connecting to the cluster exactly as kubectl would, and turning client errors into clear messages.

The ``kubernetes`` package costs over a second to import, so nothing here imports it at module level:
commands that never touch a cluster (``--help``, ``diff`` of two files, ``validate FILE``) stay fast.

Differences from the Python client's defaults that we correct (they matter to kubectl users):

* ``KUBECONFIG=a:b`` - the *first* file that sets ``current-context`` wins (the client would take the last).
* The user's kubeconfig is never written back (the client persists refreshed tokens by default).
* ``KUBECONFIG`` is read when the command runs, not when the client module was imported.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from kubectl_aicr.errors import AicrError, Forbidden, InvalidInput, NotFound, Timeout, Unavailable

IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class KubeOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float = 30.0


@dataclass
class Kube:
    """A connected API client plus where it points."""

    api_client: Any
    namespace: str
    context: str | None
    server: str
    request_timeout: float = 30.0

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @property
    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api_client)

    @property
    def rbac(self) -> Any:
        from kubernetes import client

        return client.RbacAuthorizationV1Api(self.api_client)

    @property
    def authz(self) -> Any:
        from kubernetes import client

        return client.AuthorizationV1Api(self.api_client)

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # pragma: no cover - best effort on shutdown
            pass


def kubeconfig_paths(explicit: str | None, environ: dict[str, str] | None = None) -> list[str]:
    """The files kubectl would read: ``--kubeconfig`` alone, else ``$KUBECONFIG`` (existing ones), else ~/.kube/config."""
    env = os.environ if environ is None else environ
    if explicit:
        path = os.path.expanduser(explicit)
        if not os.path.isfile(path):
            raise NotFound(f"kubeconfig {explicit} does not exist")
        return [path]
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        existing = [os.path.expanduser(p) for p in listed if os.path.isfile(os.path.expanduser(p))]
        if not existing:
            raise NotFound(f"none of the files in KUBECONFIG exist: {env['KUBECONFIG']}")
        return existing
    default = os.path.join(os.path.expanduser("~"), ".kube", "config")
    if not os.path.isfile(default):
        raise NotFound(
            "no kubeconfig found (KUBECONFIG is unset and ~/.kube/config does not exist)",
            hint="point --kubeconfig or KUBECONFIG at your cluster's kubeconfig, or use 'snapshot --local'",
        )
    return [default]


def _load_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InvalidInput(f"kubeconfig {path}: cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"kubeconfig {path}: not a kubeconfig mapping")
    return data


def resolve_context(paths: list[str], requested: str | None) -> tuple[str, str | None]:
    """(context name, its namespace) following kubectl: ``--context``, else the first file's current-context."""
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for p in paths:
        data = _load_yaml(p)
        if current is None and data.get("current-context"):
            current = str(data["current-context"])
        for c in data.get("contexts") or []:
            if isinstance(c, dict) and c.get("name") and c["name"] not in contexts:
                contexts[str(c["name"])] = c.get("context") or {}
    name = requested or current
    if not name:
        raise NotFound(
            f"no current context in {os.pathsep.join(paths)}",
            hint="pick one with --context or 'kubectl config use-context NAME'",
        )
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise NotFound(f"context {name!r} not found in {os.pathsep.join(paths)} (contexts: {known})")
    return name, (contexts[name].get("namespace") or None)


def connect(opts: KubeOptions) -> Kube:
    """An API client for the selected kubeconfig context (never writes the kubeconfig)."""
    paths = kubeconfig_paths(opts.kubeconfig)
    ctx, ctx_ns = resolve_context(paths, opts.context)
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

    cfg = client.Configuration()
    try:
        merger = KubeConfigMerger(os.pathsep.join(paths))
        loader = KubeConfigLoader(
            config_dict=merger.config, active_context=ctx, config_base_path=None, config_persister=None
        )
        loader.load_and_set(cfg)
    except ConfigException as e:
        raise InvalidInput(f"kubeconfig context {ctx!r}: {e}") from None
    cfg.retries = 1
    api = client.ApiClient(configuration=cfg)
    return Kube(api, opts.namespace or ctx_ns or "default", ctx, cfg.host, opts.request_timeout)


def connect_in_cluster(request_timeout: float = 30.0) -> Kube:
    """The pod's own ServiceAccount, as every in-cluster client does."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except ConfigException as e:
        raise Unavailable(f"not running inside a Kubernetes pod: {e}") from None
    try:
        with open(IN_CLUSTER_NAMESPACE_FILE, encoding="utf-8") as f:
            ns = f.read().strip() or "default"
    except OSError:
        ns = "default"
    cfg.retries = 2
    return Kube(client.ApiClient(configuration=cfg), ns, None, cfg.host, request_timeout)


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("kind") == "Status" and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
    return f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '')}".strip()


def api_error(exc: BaseException, *, action: str, server: str | None = None) -> AicrError:
    """Map a client exception raised while doing ``action`` to one of our error types."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, AicrError):
        return exc
    if isinstance(exc, ApiException):
        msg = _status_message(exc)
        if exc.status == 401:
            return Forbidden(f"{action}: the cluster rejected your credentials (401 Unauthorized)",
                             hint="refresh your login or check the kubeconfig user")
        if exc.status == 403:
            return Forbidden(f"{action}: {msg}", hint="ask a cluster admin for this permission, or use a context that has it")
        if exc.status == 404:
            return NotFound(f"{action}: {msg}")
        if exc.status in (408, 504):
            return Timeout(f"{action}: {msg}")
        if exc.status == 422 or exc.status == 400:
            return InvalidInput(f"{action}: {msg}")
        if exc.status == 0 or exc.status is None or exc.status >= 500:
            return Unavailable(f"{action}: the API server answered {exc.status}: {msg}")
        return AicrError(f"{action}: {msg}")
    import urllib3

    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        where = f" at {server}" if server else ""
        reason = getattr(exc, "reason", None) or exc
        return Unavailable(f"{action}: cannot reach the cluster{where}: {reason}",
                           hint="check your network/VPN and that the context points at a running cluster")
    return AicrError(f"{action}: {exc}")


def raise_api_error(exc: BaseException, *, action: str, server: str | None = None) -> NoReturn:
    raise api_error(exc, action=action, server=server) from None
