"""The agent's Kubernetes client: the pod's ServiceAccount over HTTPS, standard library only.

The agent makes a handful of requests (its staging ConfigMap, ``/version``, its Node, and without the CLI's facts the
node list and the ClusterPolicies). Importing the ``kubernetes`` package for them cost 0.5 s of CPU and 50 MB of
memory, more than everything else the agent does (issue #15), so the agent uses this narrow client instead. The
CLI keeps the kubernetes package (:mod:`kubectl_aicr.kube`): kubeconfig handling, exec plugins, watches.

What it does, and how it matches what the CLI's client does:

* **Configuration**, as every in-cluster client: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``,
  the ServiceAccount's ``token``, ``ca.crt`` and ``namespace`` under :data:`SA_DIR`; the server's certificate is
  verified against that CA, host name (or IP) included. ``HTTPS_PROXY``/``https_proxy`` (or ``HTTP_PROXY``) is
  honoured with a CONNECT tunnel unless ``NO_PROXY`` names the host, as the kubernetes package does.
* **Token rotation**: the token file is read again whenever it changed (the kubelet rewrites projected tokens),
  and once more after a 401 in case it changed in between.
* **Timeouts and retries**: every request has a timeout (``request_timeout``); refused connections, 429 and, for
  idempotent requests, 5xx, resets and read timeouts are retried with the CLI's backoff and attempt count
  (:data:`kubectl_aicr.kube.TRANSIENT_STATUSES`, ``DEFAULT_ATTEMPTS``, ``BACKOFF_*``).
* **Errors** become the CLI's types with the CLI's messages (:func:`status_error` is
  :func:`kubectl_aicr.kube.api_error` for an HTTP status; a test holds the two equal): a response body is trusted
  for its message only when it is a ``Status``. The raw ``status`` and ``body`` stay on the error, as on the
  kubernetes package's ``ApiException``, which is what :mod:`collector.k8s` writes its reasons from.
* **Reads** return the JSON object as the API server sent it (camelCase), which is what :mod:`collector.k8s`
  works on (:class:`collector.k8s.Reader`); lists are walked by :func:`collector.kubeapi.paged`.

On top: the two operations of the agent on its staging ConfigMap, with the semantics of their CLI-side twins in
:mod:`kubectl_aicr.cmstore` (:func:`wait_for_key`, :func:`patch_into`), reusing its pure encoding.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote, unquote, urlencode, urlsplit

from kubectl_aicr import __version__
from kubectl_aicr.errors import AicrError, NotFound, Unavailable
from kubectl_aicr.kube import BACKOFF_FIRST, BACKOFF_MAX, DEFAULT_ATTEMPTS, TRANSIENT_STATUSES

if TYPE_CHECKING:
    from kubectl_aicr.snapshot_io import ConfigMapRef

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
HOST_ENV, PORT_ENV = "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"
USER_AGENT = f"kubectl-aicr/{__version__} (agent)"
#: The content type the kubernetes package sends a dict patch with (strategic merge; for a ConfigMap's ``data`` the
#: same as a JSON merge patch: a null value deletes the key).
PATCH_TYPE = "application/strategic-merge-patch+json"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


@dataclass(frozen=True)
class _Failed:
    """An HTTP error answer in the shape of the kubernetes package's ``ApiException`` (what :mod:`kubectl_aicr.kube`
    reads an :class:`kubectl_aicr.kube.Answer` from)."""

    status: int
    reason: str
    body: str


def status_error(status: int, reason: str, body: str, *, action: str) -> AicrError:
    """The CLI's error for an HTTP error answer to ``action``: :func:`kubectl_aicr.kube.api_error`'s mapping itself
    (a ``Status`` body is the only one trusted for a message), with the :class:`kubectl_aicr.kube.Answer` on it for
    :func:`kubectl_aicr.kube.answer_of`, and the raw ``status`` and ``body`` (what :mod:`collector.k8s` writes
    its reasons from, as from an ``ApiException``)."""
    from kubectl_aicr.kube import answer_from, typed_error

    said = answer_from(_Failed(status, reason, body))
    err = typed_error(said, action)
    setattr(err, "answer", said)
    for name, value in (("status", status), ("reason", reason), ("body", body)):
        setattr(err, name, value)
    return err


def connection_error(exc: BaseException, *, action: str, server: str) -> Unavailable:
    """The CLI's error for a request that got no HTTP answer (as :func:`kubectl_aicr.kube.api_error`)."""
    where = f" at {server}" if server else ""
    if isinstance(exc, TimeoutError):
        return Unavailable(
            f"{action}: the API server{where} did not answer in time ({_one_line(exc)})",
            hint="check that the context points at a running cluster; raise --request-timeout for a slow one",
        )
    return Unavailable(
        f"{action}: cannot reach the cluster{where}: {_one_line(exc)}",
        hint="check your network/VPN and that the context points at a running cluster",
    )


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bypass_proxy(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` covers ``host``: ``*``, the host itself, a domain suffix (``.svc`` or ``svc``), or a
    CIDR holding the host's IP."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*" or entry == host.lower():
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
        elif ip is None and host.lower().endswith("." + entry.lstrip(".")):
            return True
    return False


def proxy_for(host: str, environ: Mapping[str, str]) -> tuple[str, int, str | None] | None:
    """(proxy host, port, ``Proxy-Authorization`` value or None) for ``host``, from the environment the way the
    kubernetes package reads it (its last match wins: ``https_proxy``, ``HTTP_PROXY``, ``http_proxy`` over
    ``HTTPS_PROXY``), or None when unset or ``NO_PROXY``/``no_proxy`` covers the host. Pure."""
    url = ""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        url = environ.get(name) or url
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if not url or _bypass_proxy(host, no_proxy):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return None
    auth = None
    if parts.username is not None:
        import base64

        cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(cred).decode("ascii")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), auth


@dataclass
class InCluster:
    """A connection to the API server as the pod's ServiceAccount. Thread-safe (one request at a time)."""

    host: str
    port: int
    sa_dir: str = SA_DIR
    namespace: str = "default"
    request_timeout: float = 30.0
    proxy: tuple[str, int, str | None] | None = None
    retries_done: int = field(default=0, compare=False)
    #: Whether any request has been answered: until then a read timeout is not retried (more likely a wrong
    #: address than a slow server), as in :meth:`kubectl_aicr.kube.Kube.request`.
    reached: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: http.client.HTTPSConnection | None = None
        self._token = ""
        self._token_stamp: tuple[int, int, int] | None = None
        self._ssl = ssl.create_default_context(cafile=os.path.join(self.sa_dir, "ca.crt"))

    @property
    def server(self) -> str:
        return f"https://{_join_host_port(self.host, str(self.port))}"

    # ------------------------------------------------------------ token

    def _read_token(self) -> bool:
        """Read the token file when it changed since the last read; whether it did."""
        path = os.path.join(self.sa_dir, "token")
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._token_stamp:
            return False
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
        changed = token != self._token
        self._token, self._token_stamp = token, stamp
        return changed

    # ------------------------------------------------------------ one request

    def _connection(self) -> tuple[http.client.HTTPSConnection, bool]:
        """(the connection, whether it is new)."""
        if self._conn is not None:
            return self._conn, False
        timeout = self.request_timeout
        if self.proxy is not None:
            phost, pport, auth = self.proxy
            conn = http.client.HTTPSConnection(phost, pport, timeout=timeout, context=self._ssl)
            conn.set_tunnel(self.host, self.port, headers={"Proxy-Authorization": auth} if auth else None)
        else:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._ssl)
        conn.connect()
        self._conn = conn
        return conn, True

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, method: str, url: str, body: bytes | None, content_type: str) -> tuple[int, str, bytes]:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type
        for _ in range(2):
            conn, fresh = self._connection()
            try:
                conn.request(method, url, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop()
                if fresh:
                    raise
                continue  # the server closed an idle kept-alive connection: once more on a new one
            except BaseException:
                self._drop()
                raise
            if resp.will_close:
                self._drop()
            return resp.status, resp.reason, data
        raise AssertionError("unreachable")  # pragma: no cover

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One API request: the JSON object answered, or one of the CLI's errors (:func:`status_error`,
        :func:`connection_error`) after the retries a transient failure gets."""
        url = path + ("?" + urlencode(dict(query)) if query else "")
        payload = None if body is None else json.dumps(body).encode("utf-8")
        attempt = 0
        delay = BACKOFF_FIRST
        rotated = False
        with self._lock:
            while True:
                self._read_token()
                attempt += 1
                try:
                    status, reason, data = self._send(method, url, payload, content_type)
                except (OSError, http.client.HTTPException) as e:
                    if not self._retry_connection(e, idempotent, attempt):
                        raise connection_error(e, action=action, server=self.server) from None
                    delay = self._pause(delay)
                    continue
                self.reached = True
                if 200 <= status < 300:
                    return self._decode(data, action)
                if status == 401 and not rotated and self._read_token():
                    rotated = True  # the kubelet rotated the token between our read and the request
                    attempt -= 1
                    continue
                if status in TRANSIENT_STATUSES and (idempotent or status == 429) and attempt < DEFAULT_ATTEMPTS:
                    delay = self._pause(delay)
                    continue
                raise status_error(status, reason, data.decode("utf-8", "replace"), action=action)

    def _retry_connection(self, e: BaseException, idempotent: bool, attempt: int) -> bool:
        if attempt >= DEFAULT_ATTEMPTS:
            return False
        if isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
            return False
        if isinstance(e, (ConnectionRefusedError, socket.gaierror)):
            return True  # never reached the server
        if isinstance(e, TimeoutError):
            return idempotent and self.reached
        return idempotent

    def _pause(self, delay: float) -> float:
        self.retries_done += 1
        time.sleep(min(delay * (0.5 + random.random()), BACKOFF_MAX))
        return min(delay * 2, BACKOFF_MAX)

    @staticmethod
    def _decode(data: bytes, action: str) -> dict[str, Any]:
        try:
            obj = json.loads(data) if data else {}
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise Unavailable(f"{action}: the API server's answer is not a JSON object ({data[:80]!r})")
        return obj

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``GET path`` (the :class:`collector.k8s.Reader` interface)."""
        return self.request("GET", path, query=query, action=f"GET {path}")

    def close(self) -> None:
        with self._lock:
            self._drop()


def connect(
    request_timeout: float = 30.0, *, environ: Mapping[str, str] | None = None, sa_dir: str = SA_DIR
) -> InCluster:
    """The pod's own ServiceAccount; :class:`Unavailable` outside a pod (what is missing is named)."""
    env = os.environ if environ is None else environ
    host, port = env.get(HOST_ENV, ""), env.get(PORT_ENV, "")
    where = "not running inside a Kubernetes pod"
    if not host or not port:
        raise Unavailable(f"{where}: {HOST_ENV}/{PORT_ENV} are not set")
    for name in ("token", "ca.crt"):
        if not os.path.isfile(os.path.join(sa_dir, name)):
            raise Unavailable(f"{where}: the ServiceAccount's {name} is missing in {sa_dir}")
    try:
        with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as f:
            ns = f.read().strip() or "default"
    except OSError:
        ns = "default"
    try:
        port_n = int(port)
        client = InCluster(
            host, port_n, sa_dir=sa_dir, namespace=ns, request_timeout=request_timeout, proxy=proxy_for(host, env)
        )
    except ValueError:
        raise Unavailable(f"{where}: {PORT_ENV}={port!r} is not a port number") from None
    except (ssl.SSLError, OSError) as e:
        raise Unavailable(f"{where}: the ServiceAccount's ca.crt is not a usable CA ({_one_line(e)})") from None
    return client


# ------------------------------------------------------------ the staging ConfigMap


def _cm_path(ref: ConfigMapRef) -> str:
    return f"/api/v1/namespaces/{quote(ref.namespace, safe='')}/configmaps/{quote(ref.name, safe='')}"


def read_configmap(kube: InCluster, ref: ConfigMapRef) -> dict[str, Any]:
    """The ConfigMap (as JSON); :class:`NotFound` with :func:`kubectl_aicr.cmstore.read_object`'s message."""
    try:
        return kube.request("GET", _cm_path(ref), action=f"reading {ref}")
    except NotFound:
        raise NotFound(f"{ref}: ConfigMap {ref.name!r} not found in namespace {ref.namespace!r}") from None


def wait_for_key(
    kube: InCluster, ref: ConfigMapRef, key: str, *, timeout: float, poll: float = 0.25
) -> tuple[str, str] | None:
    """Poll the ConfigMap until ``data[key]`` exists: (its value, the resourceVersion it was read at), or None after
    ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        cm = read_configmap(kube, ref)
        value = (cm.get("data") or {}).get(key)
        if value is not None:
            return str(value), str((cm.get("metadata") or {}).get("resourceVersion"))
        if time.monotonic() >= end:
            return None
        time.sleep(poll)


def patch_into(
    kube: InCluster, ref: ConfigMapRef, text: str, fmt: str, *, drop: tuple[str, ...] = ()
) -> tuple[str, str]:
    """Fill the existing staging ConfigMap with :func:`kubectl_aicr.cmstore.patch_body` (its labels and ownerReference
    stay; only ``patch`` on that object is needed). Returns the (uid, resourceVersion) the write produced."""
    from kubectl_aicr.cmstore import patch_body

    body = patch_body(text, fmt, drop=drop)
    cm = kube.request(
        "PATCH", _cm_path(ref), body=body, content_type=PATCH_TYPE, action=f"writing the snapshot into {ref}"
    )
    meta = cm.get("metadata") or {}
    return str(meta.get("uid")), str(meta.get("resourceVersion"))
