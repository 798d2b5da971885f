"""The CLI's one boundary to the Kubernetes API: connecting exactly as kubectl would, making each request with a real
timeout and retries, and turning every failure into one of our typed errors.

Callers make requests through :class:`Kube` only:

* :meth:`Kube.call` - one request; a failure is raised as the error type of its meaning, never as the client's
  ``ApiException``: :class:`~kubectl_aicr.errors.NotFound` (404), :class:`~kubectl_aicr.errors.Forbidden` (401,
  403), :class:`~kubectl_aicr.errors.Conflict` (409, 412: exists, or changed since read),
  :class:`~kubectl_aicr.errors.Timeout` (408, 504), :class:`~kubectl_aicr.errors.InvalidInput` (400, 422),
  :class:`~kubectl_aicr.errors.Unavailable` (5xx, no answer), :class:`~kubectl_aicr.errors.AicrError` (the rest).
  Branch on the type; :func:`answer_of` gives what the server said (status, reason) for messages.
* :meth:`Kube.call_json` - as :meth:`Kube.call`, the answer as plain JSON data instead of the client's models (for
  answers only read: much cheaper to decode).
* :meth:`Kube.list_all` - every item of a list call, page by page (:func:`collector.kubeapi.paged`).
* :meth:`Kube.request` - the layer under both (timeout, retries), raising the client's exceptions unchanged; kept
  for callers not yet switched to :meth:`Kube.call`.

Callers never pass ``_request_timeout``: the boundary sets it on every request (a value passed is replaced).
A connection is handed around as a :data:`Connect` (see :func:`connector`): made on first use, then shared.

The ``kubernetes`` package costs over a second to import, so nothing here imports it at module level:
commands that never touch a cluster (``--help``, ``diff`` of two files, ``validate FILE``) stay fast. Before it
first imports it, it installs :mod:`kubectl_aicr.kubelazy`, which loads the client's API classes and models on
first use instead of all of them at once (the same objects).

Differences from the Python client's defaults that we correct (they matter to kubectl users):

* ``KUBECONFIG=a:b`` - the *first* file that sets ``current-context`` wins (the client would take the last).
* The user's kubeconfig is never written back (the client persists refreshed tokens by default).
* ``KUBECONFIG`` is read when the command runs, not when the client module was imported.
* ``_request_timeout``: the client honours only an int or a ``(connect, read)`` tuple (a float means *no*
  timeout), so every request goes through :meth:`Kube.request`, which passes a tuple: the smaller of
  ``--request-timeout`` and the time left before the run's deadline (``snapshot --timeout`` covers the whole
  run, cleanup included). It also retries transient failures (connection refused/reset, 429, 5xx) with
  backoff while time is left; a request that may have reached the server is retried only when it is
  idempotent.
* kubectl's ``--cluster``, ``--user``, ``--token``, ``--as`` and ``--as-group`` are honoured.
* A client-side rate limit (:class:`TokenBucket`, ``Kube.limiter``; ``snapshot --qps/--burst``) as client-go's,
  which the Python client lacks: every request and every retry takes a token first.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, NoReturn, Optional, Sequence, TypeVar

import yaml

from kubectl_aicr.errors import AicrError, Conflict, Forbidden, InvalidInput, NotFound, Timeout, Unavailable

IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
#: HTTP statuses worth retrying: the server (or a proxy in front of it) is overloaded or restarting.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Without a run deadline (diff/validate of a cm://), transient failures are retried this many times.
DEFAULT_ATTEMPTS = 4
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 2.0
T = TypeVar("T")


@dataclass(frozen=True)
class KubeOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float = 30.0
    cluster: str | None = None
    user: str | None = None
    token: str | None = None
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()


class TokenBucket:
    """A client-side rate limit as client-go's (``--qps``, ``--burst``): up to ``burst`` requests at once, then
    ``qps`` a second on average. :meth:`take` waits for a token; the clock and the sleep are injectable for tests.
    Thread-safe."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import threading

        if qps <= 0 or burst < 1:
            raise ValueError("qps must be positive and burst at least 1")
        self.qps, self.burst = float(qps), int(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting for tokens (for messages and tests)

    def take(self) -> float:
        """Wait until a request may be sent; returns how long that took."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self.waited += wait
            self._sleep(wait)
        return wait


@dataclass
class Kube:
    """A connected API client plus where it points.

    ``deadline`` (a :func:`time.monotonic` instant, or None) bounds every request made through
    :meth:`request`; ``snapshot`` sets it from ``--timeout``."""

    api_client: Any
    namespace: str
    context: str | None
    server: str
    request_timeout: float = 30.0
    deadline: float | None = None
    retries_done: int = field(default=0, compare=False)  # transient failures retried (for tests and messages)
    #: Whether any request has succeeded. Until one has, a failure is more likely a wrong kubeconfig than a
    #: restarting server: it is retried only a few times, and a read timeout not at all.
    reached: bool = field(default=False, compare=False)
    #: The client-side rate limit every request (and every retry) waits on; None: unlimited.
    limiter: TokenBucket | None = field(default=None, compare=False)

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def timeout_for(self, action: str, cap: float | None = None) -> tuple[float, float]:
        """The ``_request_timeout`` tuple for one request: min(--request-timeout, cap, time left).

        Raises :class:`Timeout` when the deadline has passed."""
        t = self.request_timeout if cap is None else min(cap, self.request_timeout)
        left = self.time_left()
        if left is not None:
            if left <= 0:
                raise Timeout(
                    f"{action}: the run's deadline (--timeout) passed",
                    hint="raise --timeout; the API server may be slow or unreachable",
                )
            t = min(t, left)
        t = max(t, 0.05)
        return (t, t)

    def request(
        self,
        fn: Callable[..., T],
        *args: Any,
        action: str,
        idempotent: bool = True,
        cap: float | None = None,
        **kw: Any,
    ) -> T:
        """Call one client method with a real timeout, retrying transient failures with backoff.

        Non-transient errors (and the last transient one) are raised as the client raised them: the layer under
        :meth:`call`, which callers use to get our error types instead. A ``_request_timeout`` passed is replaced."""
        attempt = 0
        delay = BACKOFF_FIRST
        while True:
            if self.limiter is not None:
                self.limiter.take()
            kw["_request_timeout"] = self.timeout_for(action, cap)
            try:
                result = fn(*args, **kw)
                self.reached = True
                return result
            except Exception as e:
                attempt += 1
                if not retryable(e, idempotent=idempotent and (self.reached or not _timed_out(e))):
                    raise
                left = self.time_left()
                if (left is None or not self.reached) and attempt >= DEFAULT_ATTEMPTS:
                    raise
                pause = min(delay * (0.5 + random.random()), BACKOFF_MAX)
                if left is not None and left <= pause + 0.05:
                    raise
                self.retries_done += 1
                time.sleep(pause)
                delay = min(delay * 2, BACKOFF_MAX)

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        action: str,
        idempotent: bool = True,
        cap: float | None = None,
        **kw: Any,
    ) -> T:
        """One request through :meth:`request`, with every failure raised as the error type of its meaning (see the
        module docstring; one clear line that starts with ``action``)."""
        try:
            return self.request(fn, *args, action=action, idempotent=idempotent, cap=cap, **kw)
        except Exception as e:
            raise_api_error(e, action=action, server=self.server)

    def call_json(
        self,
        fn: Callable[..., Any],
        *args: Any,
        action: str,
        idempotent: bool = True,
        cap: float | None = None,
        **kw: Any,
    ) -> Any:
        """As :meth:`call`, but the answer is its JSON as plain data (``dict``/``list``; None for an empty body), not
        the client's model objects: for answers only read, turning JSON into models costs ~10x ``json.loads``.
        The body is read within the request, so a connection that breaks mid-answer is retried as a failed request
        is. An answer that is not JSON is an error (:class:`~kubectl_aicr.errors.Unavailable`)."""
        raw = self.call(_body_of(fn), *args, action=action, idempotent=idempotent, cap=cap, **kw)
        return self._json(raw, action)

    def request_json(
        self,
        fn: Callable[..., Any],
        *args: Any,
        action: str,
        idempotent: bool = True,
        cap: float | None = None,
        **kw: Any,
    ) -> Any:
        """As :meth:`call_json`, but failures are raised as :meth:`request` raises them (the client's exceptions),
        for callers that tell statuses apart themselves."""
        raw = self.request(_body_of(fn), *args, action=action, idempotent=idempotent, cap=cap, **kw)
        return self._json(raw, action)

    def _json(self, raw: bytes, action: str) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise Unavailable(
                f"{action}: the API server at {self.server} answered with something that is not JSON",
                hint="check that the context points at a Kubernetes API server (not a proxy's page)",
            ) from None

    def watch_json(
        self, fn: Callable[..., Any], *args: Any, action: str, seconds: float, **kw: Any
    ) -> Generator[dict[str, Any], None, None]:
        """One watch request of the list call ``fn`` (``watch=true`` for ``seconds``, which the server ends): each
        event as the plain JSON the API server sends (``{"type": ..., "object": {...}}``, BOOKMARKs included, not
        the client's model objects, and every event's ``resourceVersion`` there to go on from). The request goes
        as :meth:`request` sends it (rate limit, timeout, retried when it cannot start); the answer is read as it
        comes and closed when the caller stops. An ``ERROR`` event raises as the client's own watch raises it: an
        ``ApiException`` with the event's code (410 Gone: the resourceVersion expired, list again)."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        resp = self.request(
            fn,
            *args,
            action=action,
            cap=seconds + 5,
            watch=True,
            timeout_seconds=max(1, int(seconds)),
            _preload_content=False,
            **kw,
        )
        try:
            for line in iter_resp_lines(resp):
                if not line:
                    continue
                event = json.loads(line)
                if not isinstance(event, dict):
                    continue
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiException(
                        status=int(status.get("code") or 0), reason=f"{status.get('reason')}: {status.get('message')}"
                    )
                yield event
        finally:
            resp.close()
            resp.release_conn()

    def list_all(
        self,
        fn: Callable[..., Any],
        *args: Any,
        action: str,
        cap: float | None = None,
        limit: int | None = None,
        as_json: bool = False,
        **kw: Any,
    ) -> list[Any]:
        """Every item of a list call (``core.list_node``, ``list_namespaced_pod``, a custom objects list...), asking
        for ``limit`` items a page and following ``continue`` tokens; each page is one :meth:`call`. The items are
        the client's model objects, or dicts for the custom objects API; with ``as_json`` always plain JSON (each
        page one :meth:`call_json`: thousands of Nodes cost a tenth of the CPU and memory their models do)."""
        from collector.kubeapi import PAGE_SIZE, paged

        get = self.call_json if as_json else self.call

        def page(size: int, token: Optional[str]) -> tuple[Sequence[Any], Optional[str]]:
            more: dict[str, Any] = {"_continue": token} if token else {}
            return _page(get(fn, *args, action=action, cap=cap, limit=size, **more, **kw) or {})

        return list(paged(page, limit=limit or PAGE_SIZE))

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


def _body_of(fn: Callable[..., Any]) -> Callable[..., bytes]:
    """``fn`` (a client method) returning the body of its answer, read whole and its connection released."""

    def read(*a: Any, **k: Any) -> bytes:
        resp = fn(*a, _preload_content=False, **k)
        try:
            return bytes(resp.data or b"")
        finally:
            resp.release_conn()

    return read


def _page(resp: Any) -> tuple[Sequence[Any], Optional[str]]:
    """(items, continue token) of one list response: a model object, or a dict from the custom objects API."""
    if isinstance(resp, dict):
        return list(resp.get("items") or []), (resp.get("metadata") or {}).get("continue") or None
    meta = getattr(resp, "metadata", None)
    return list(resp.items or []), getattr(meta, "_continue", None) or None


#: A cluster connection handed to code that may or may not need one (reading or writing ``cm://``): called when
#: first needed. Make one with :func:`connector` (or :func:`lazy`), so every use shares one :class:`Kube`.
Connect = Callable[[], Kube]


def lazy(factory: Callable[[], Kube]) -> Connect:
    """``factory`` called on first use only; every later call returns the same :class:`Kube`."""
    made: list[Kube] = []

    def get() -> Kube:
        if not made:
            made.append(factory())
        return made[0]

    return get


def connector(opts: KubeOptions) -> Connect:
    """A :data:`Connect` for the kubeconfig context ``opts`` selects: connects (:func:`connect`) on first use."""
    return lazy(lambda: connect(opts))


def kubeconfig_paths(explicit: str | None, environ: dict[str, str] | None = None) -> list[str]:
    """The files kubectl would read: ``--kubeconfig`` alone, else ``$KUBECONFIG`` (existing
    ones), else ~/.kube/config."""
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
    except UnicodeDecodeError:
        raise InvalidInput(
            f"kubeconfig {path}: not a text file (binary content)",
            hint="point --kubeconfig or KUBECONFIG at a kubeconfig YAML file",
        ) from None
    except (OSError, yaml.YAMLError, ValueError, RecursionError) as e:
        raise InvalidInput(f"kubeconfig {path}: cannot be read: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"kubeconfig {path}: not a kubeconfig mapping")
    return data


def kubeconfig_contexts(paths: Sequence[str]) -> tuple[str, ...]:
    """The name of every context in the kubeconfig files ``paths`` (:func:`kubeconfig_paths`), in file order, each
    once: the first file naming a context wins, as kubectl merges them. Entries that are not a mapping with a
    non-empty string ``name`` are skipped. A file that cannot be read, is not text or not a mapping is refused as
    connecting refuses it (:class:`~kubectl_aicr.errors.InvalidInput`, naming the file), and so is a ``contexts``
    that is not a list; no file is written."""
    names: dict[str, None] = {}
    for path in paths:
        entries = _load_yaml(path).get("contexts") or []
        if not isinstance(entries, list):
            raise InvalidInput(f"kubeconfig {path}: 'contexts' is not a list")
        for entry in entries:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name:
                names.setdefault(name, None)
    return tuple(names)


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


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def _entries(merged: Any, section: str) -> list[tuple[Any, dict[str, Any]]]:
    """(node, its dict) for each entry of a merged kubeconfig section (entries are ConfigNodes)."""
    out = []
    for n in merged.value.get(section) or []:
        v = getattr(n, "value", n)
        if isinstance(v, dict):
            out.append((n, v))
    return out


def _named(merged: Any, section: str, name: str) -> bool:
    return any(v.get("name") == name for _, v in _entries(merged, section))


def _override_context(merged: Any, ctx: str, cluster: str | None, user: str | None) -> str:
    """kubectl's ``--cluster``/``--user``: a synthetic context that is ``ctx`` with those replaced (relative
    certificate paths keep resolving against the file that defined them)."""
    import copy

    from kubernetes.config.kube_config import ConfigNode

    for section, name, flag in (("clusters", cluster, "--cluster"), ("users", user, "--user")):
        if name is not None and not _named(merged, section, name):
            raise NotFound(f"{flag} {name!r}: no such {section[:-1]} in the kubeconfig")
    node, value = next((n, v) for n, v in _entries(merged, "contexts") if v.get("name") == ctx)
    syn = copy.deepcopy(value)
    syn["name"] = "__aicr_override__"
    syn["context"] = dict(syn.get("context") or {})
    if cluster is not None:
        syn["context"]["cluster"] = cluster
    if user is not None:
        syn["context"]["user"] = user
    merged.value["contexts"].append(ConfigNode("__aicr_override__", syn, getattr(node, "path", None)))
    return "__aicr_override__"


def _check_ca(ca_file: str | None, ctx: str) -> None:
    """A certificate-authority that is not PEM would otherwise fail at the first request as 'unreachable'."""
    if not ca_file:
        return
    import ssl

    try:
        ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise InvalidInput(
            f"kubeconfig context {ctx!r}: the cluster's certificate-authority is not a usable PEM "
            f"certificate ({_one_line(e)})",
            hint="certificate-authority-data must be base64 of a PEM certificate",
        ) from None


def _check_ca_data(merged: Any, ctx: str) -> None:
    import base64
    import binascii

    ctx_value = next((v for _, v in _entries(merged, "contexts") if v.get("name") == ctx), {})
    cluster_name = (ctx_value.get("context") or {}).get("cluster")
    for _, c in _entries(merged, "clusters"):
        if c.get("name") != cluster_name:
            continue
        data = (c.get("cluster") or {}).get("certificate-authority-data")
        if data is None:
            return
        try:
            base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"kubeconfig context {ctx!r}: certificate-authority-data of cluster "
                f"{cluster_name!r} is not valid base64",
                hint="it must be the base64 encoding of a PEM certificate",
            ) from None


def _install_impersonation(api: Any, as_user: str | None, as_groups: tuple[str, ...]) -> None:
    """``--as``/``--as-group``: Impersonate-User and one Impersonate-Group header per group.

    The client keeps default headers in a plain dict (one value per name), so the groups travel joined by a
    NUL byte (never valid in a header) and the pool manager's ``request`` splits them into repeated headers."""
    if as_user is not None:
        api.set_default_header("Impersonate-User", as_user)
    if not as_groups:
        return
    import urllib3

    api.set_default_header("Impersonate-Group", "\0".join(as_groups))
    pool = api.rest_client.pool_manager
    original = pool.request

    def request(method: str, url: str, *args: Any, **kw: Any) -> Any:
        headers = kw.get("headers")
        if headers and "Impersonate-Group" in headers:
            multi = urllib3.HTTPHeaderDict()
            for k, v in headers.items():
                if k == "Impersonate-Group":
                    for g in str(v).split("\0"):
                        multi.add(k, g)
                else:
                    multi.add(k, v)
            kw["headers"] = multi
        return original(method, url, *args, **kw)

    pool.request = request


def connect(opts: KubeOptions) -> Kube:
    """An API client for the selected kubeconfig context (never writes the kubeconfig)."""
    if opts.as_groups and opts.as_user is None:
        raise InvalidInput("--as-group needs --as (Kubernetes impersonates groups only together with a user)")
    paths = kubeconfig_paths(opts.kubeconfig)
    ctx, ctx_ns = resolve_context(paths, opts.context)
    _lazy_kubernetes()
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

    cfg = client.Configuration()
    try:
        merger = KubeConfigMerger(os.pathsep.join(paths))
        active = ctx
        if opts.cluster is not None or opts.user is not None:
            active = _override_context(merger.config, ctx, opts.cluster, opts.user)
        _check_ca_data(merger.config, active)
        loader = KubeConfigLoader(
            config_dict=merger.config, active_context=active, config_base_path=None, config_persister=None
        )
        loader.load_and_set(cfg)
    except ConfigException as e:
        raise InvalidInput(f"kubeconfig context {ctx!r}: {_one_line(e)}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"kubeconfig {os.pathsep.join(paths)}: not a text file (binary content)") from None
    except (ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError, RecursionError) as e:
        # The client's loader fails on malformed entries with raw Python errors.
        raise InvalidInput(f"kubeconfig context {ctx!r}: malformed entry: {_one_line(e)}") from None
    _check_ca(cfg.ssl_ca_cert, ctx)
    if opts.token is not None:
        cfg.api_key = {"authorization": f"Bearer {opts.token}"}
        cfg.refresh_api_key_hook = None
    cfg.retries = False  # Kube.request retries, within the deadline; urllib3 would retry a read timeout blindly
    api = client.ApiClient(configuration=cfg)
    _install_impersonation(api, opts.as_user, tuple(opts.as_groups))
    return Kube(api, opts.namespace or ctx_ns or "default", ctx, cfg.host, opts.request_timeout)


def connect_in_cluster(request_timeout: float = 30.0) -> Kube:
    """The pod's own ServiceAccount, as every in-cluster client does."""
    _lazy_kubernetes()
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
    cfg.retries = False  # Kube.request retries transient failures itself
    return Kube(client.ApiClient(configuration=cfg), ns, None, cfg.host, request_timeout)


def _lazy_kubernetes() -> None:
    """From here on ``kubernetes`` imports lazily (:mod:`kubectl_aicr.kubelazy`: the same objects, loaded on first
    use); called before this module first imports it, so that commands that never connect never load either."""
    from kubectl_aicr import kubelazy

    kubelazy.install()


def _timed_out(e: BaseException) -> bool:
    import urllib3

    inner = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason else e
    return isinstance(inner, (urllib3.exceptions.ReadTimeoutError, TimeoutError))


def retryable(e: BaseException, *, idempotent: bool) -> bool:
    """Whether a failed request may succeed when sent again: the server restarting, overloaded or rate
    limiting. A request that may have been processed (the connection broke after it was sent, a 5xx) is
    retried only when sending it twice is harmless."""
    status = getattr(e, "status", None)
    if isinstance(status, int) and status in TRANSIENT_STATUSES:
        return idempotent or status == 429
    if status == 0 and str(getattr(e, "reason", "")).startswith("SSLError"):
        # The client turns urllib3's SSLError into ApiException(status=0): a TLS connection cut mid-handshake
        # (the server restarting) is transient; a certificate that does not verify is not.
        return idempotent and "CERTIFICATE_VERIFY_FAILED" not in str(e.reason)  # type: ignore[attr-defined]
    import urllib3

    if isinstance(e, urllib3.exceptions.MaxRetryError):
        e = e.reason or e
    if isinstance(
        e, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError, urllib3.exceptions.ConnectTimeoutError)
    ):
        return True  # never reached the server
    if isinstance(
        e,
        (
            urllib3.exceptions.ProtocolError,
            ConnectionResetError,
            BrokenPipeError,
            urllib3.exceptions.ReadTimeoutError,
            TimeoutError,
        ),
    ):
        return idempotent
    if isinstance(e, urllib3.exceptions.SSLError):
        import ssl

        # A connection cut during the TLS handshake (EOF, reset) is transient; a certificate that does not
        # verify is not.
        inner = e.args[0] if e.args else None
        return (
            idempotent
            and not isinstance(inner, ssl.SSLCertVerificationError)
            and "CERTIFICATE_VERIFY_FAILED" not in str(e)
        )
    return False


@dataclass(frozen=True)
class Answer:
    """What the API server answered to a failed request: ``status`` (HTTP; 0 when no answer came, as the client
    reports it), ``reason`` (the Status object's reason, e.g. ``NotFound``, ``AlreadyExists``, ``Conflict``, else
    the HTTP reason phrase) and ``message`` (the Status object's message, else ``status reason``)."""

    status: int
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.reason}".strip()


def _status_body(exc: Any) -> dict[str, Any]:
    """The response body when it is a ``Status`` object, else {}: only the API server writes those; a proxy or a
    load balancer in front of it answers with HTML or its own text, which is no message to show."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
        except (ValueError, TypeError):
            return {}
        if isinstance(data, dict) and data.get("kind") == "Status":
            return data
    return {}


def answer_from(exc: Any) -> Answer:
    """The :class:`Answer` in a client ``ApiException`` (or anything with ``status``, ``reason`` and ``body``: the
    agent's own client, :mod:`kubectl_aicr.incluster`, maps its failures through here too)."""
    status = exc.status if isinstance(getattr(exc, "status", None), int) else 0
    data = _status_body(exc)
    reason = str(data.get("reason") or getattr(exc, "reason", None) or "")
    message = str(data.get("message") or "") or f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '')}".strip()
    return Answer(status, reason, message)


def answer_of(err: BaseException) -> Answer | None:
    """What the API server answered: for an error :meth:`Kube.call` (or :func:`api_error`) raised for an answer,
    or a client ``ApiException`` itself; None for an error of our own (the deadline passed) or when no answer came
    (the network)."""
    got = getattr(err, "answer", None)
    if isinstance(got, Answer):
        return got
    _lazy_kubernetes()
    from kubernetes.client.exceptions import ApiException

    return answer_from(err) if isinstance(err, ApiException) else None


def api_error(exc: BaseException, *, action: str, server: str | None = None) -> AicrError:
    """Map a client exception raised while doing ``action`` to one of our error types."""
    _lazy_kubernetes()
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, AicrError):
        return exc
    if isinstance(exc, ApiException):
        said = answer_from(exc)
        err = typed_error(said, action)
        setattr(err, "answer", said)  # read back with answer_of (the error types are kubectl_aicr.errors')
        return err
    import urllib3

    inner = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    refused = isinstance(inner, urllib3.exceptions.NewConnectionError)  # a ConnectTimeoutError subclass in urllib3 2
    if not refused and isinstance(
        inner, (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError, TimeoutError)
    ):
        where = f" at {server}" if server else ""
        return Unavailable(
            f"{action}: the API server{where} did not answer in time ({_one_line(inner)})",
            hint="check that the context points at a running cluster; raise --request-timeout for a slow one",
        )
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        where = f" at {server}" if server else ""
        reason = getattr(exc, "reason", None) or exc
        return Unavailable(
            f"{action}: cannot reach the cluster{where}: {reason}",
            hint="check your network/VPN and that the context points at a running cluster",
        )
    return AicrError(f"{action}: {exc}")


def typed_error(said: Answer, action: str) -> AicrError:
    """The error a failed ``action`` raises, by the answer's meaning: the one mapping of statuses to error types,
    messages and hints, shared by the CLI's client and the agent's."""
    msg, status = said.message, said.status
    if status == 401:
        return Forbidden(
            f"{action}: the cluster rejected your credentials (401 Unauthorized)",
            hint="refresh your login or check the kubeconfig user",
        )
    if status == 403:
        return Forbidden(
            f"{action}: {msg}", hint="ask a cluster admin for this permission, or use a context that has it"
        )
    if status == 404:
        return NotFound(f"{action}: {msg}")
    if status in (409, 412):
        return Conflict(f"{action}: {msg}")
    if status in (408, 504):
        return Timeout(f"{action}: {msg}")
    if status in (400, 422):
        return InvalidInput(f"{action}: {msg}")
    if status == 0 or status >= 500:
        return Unavailable(f"{action}: the API server answered {status}: {msg}")
    return AicrError(f"{action}: {msg}")


def raise_api_error(exc: BaseException, *, action: str, server: str | None = None) -> NoReturn:
    raise api_error(exc, action=action, server=server) from None
