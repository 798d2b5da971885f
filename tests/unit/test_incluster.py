"""The agent's in-cluster client (kubectl_aicr.incluster) against a real HTTPS server in this process.

The server is ``http.server`` behind TLS with a certificate from the control plane's test PKI (``openssl`` CLI);
each test scripts its answers per path. Nothing of the client is mocked: requests, TLS verification, retries,
token re-reads, the CONNECT tunnel and the error mapping run for real. The mapping is held equal to the CLI's
(:func:`kubectl_aicr.kube.api_error` on the kubernetes package's ``ApiException``).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from collector import k8s
from kubectl_aicr import cmstore, incluster
from kubectl_aicr.errors import AicrError, Conflict, Forbidden, InvalidInput, NotFound, Timeout, Unavailable
from kubectl_aicr.kube import DEFAULT_ATTEMPTS
from kubectl_aicr.snapshot_io import ConfigMapRef

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for a test certificate")

#: (status, body, extra headers) or a callable of the request returning one.
Answer = Any


def status_body(code: int, message: str, reason: str = "") -> str:
    return json.dumps(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}
    )


class Api:
    """A scripted API server: ``routes[(method, path)]`` is a list of answers used in turn (the last one repeats)."""

    def __init__(self, crt: Path, key: Path) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = {
                    "method": self.command,
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length) if length else b"",
                }
                api.seen.append(req)
                answers = api.routes.get((self.command, parts.path))
                if not answers:
                    answer: Answer = (404, status_body(404, f"{parts.path} not found", "NotFound"), {})
                else:
                    answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if callable(answer):
                    answer = answer(req)
                if answer == "hang":
                    api.release.wait(30)
                    self.close_connection = True
                    return
                code, body, headers = answer
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in headers.items():
                    if k != "x-drop-after":
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)
                if headers.get("x-drop-after"):
                    self.close_connection = True  # closes without announcing it, as an idle timeout does

            do_GET = do_PATCH = do_POST = _serve

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(crt), str(key))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.controlplane.pki import create_pki

    return create_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def api(pki: Any) -> Iterator[Api]:
    server = Api(pki.apiserver_crt, pki.apiserver_key)
    yield server
    server.stop()


@pytest.fixture()
def sa_dir(tmp_path: Path, pki: Any) -> Path:
    d = tmp_path / "serviceaccount"
    d.mkdir()
    shutil.copy(pki.ca_crt, d / "ca.crt")
    (d / "token").write_text("token-1\n")
    (d / "namespace").write_text("gpu-ops\n")
    return d


def client(api: Api, sa_dir: Path, **kw: Any) -> incluster.InCluster:
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port), **kw.pop("env", {})}
    return incluster.connect(kw.pop("request_timeout", 5.0), environ=env, sa_dir=str(sa_dir))


def rewrite(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)  # as the kubelet swaps a projected volume's files: a new inode


# ------------------------------------------------------------------ configuration


def test_connect_reads_the_service_account_and_verifies_the_server(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", (200, {"gitVersion": "v1.35.4", "platform": "linux/amd64"}, {}))
    kube = client(api, sa_dir)
    assert kube.namespace == "gpu-ops" and kube.server == f"https://127.0.0.1:{api.port}"
    assert kube.get("/version") == {"gitVersion": "v1.35.4", "platform": "linux/amd64"}
    headers = api.seen[0]["headers"]
    assert headers["Authorization"] == "Bearer token-1" and headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("kubectl-aicr/")


def test_connect_outside_a_pod_says_what_is_missing(tmp_path: Path, sa_dir: Path) -> None:
    with pytest.raises(Unavailable, match="KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set"):
        incluster.connect(environ={}, sa_dir=str(sa_dir))
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(Unavailable, match=r"the ServiceAccount's token is missing in .*nowhere"):
        incluster.connect(environ=env, sa_dir=str(tmp_path / "nowhere"))
    (sa_dir / "ca.crt").write_text("not a certificate")
    with pytest.raises(Unavailable, match="ca.crt is not a usable CA"):
        incluster.connect(environ=env, sa_dir=str(sa_dir))


def test_ipv6_service_host_is_written_in_brackets(sa_dir: Path) -> None:
    kube = incluster.connect(
        environ={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, sa_dir=str(sa_dir)
    )
    assert kube.server == "https://[fd00::1]:443"


def test_a_server_certificate_from_another_ca_is_refused_without_retrying(
    api: Api, sa_dir: Path, tmp_path: Path
) -> None:
    from tests.controlplane.pki import create_pki

    other = create_pki(tmp_path / "other")
    shutil.copy(other.ca_crt, sa_dir / "ca.crt")
    kube = client(api, sa_dir)
    with pytest.raises(
        Unavailable,
        match=r"GET /version: cannot reach the cluster at https://127\.0\.0\.1:\d+: "
        r".*CERTIFICATE_VERIFY_FAILED",
    ):
        kube.get("/version")
    assert kube.retries_done == 0 and api.seen == []


# ------------------------------------------------------------------ token


def test_a_rotated_token_is_read_again(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", (200, {}, {}))
    kube = client(api, sa_dir)
    kube.get("/version")
    rewrite(sa_dir / "token", "token-2\n")
    kube.get("/version")
    assert [r["headers"]["Authorization"] for r in api.seen] == ["Bearer token-1", "Bearer token-2"]


def test_a_401_after_the_token_rotated_is_sent_again_with_the_new_token(api: Api, sa_dir: Path) -> None:
    def rotate_then_refuse(req: dict[str, Any]) -> Answer:
        rewrite(sa_dir / "token", "token-2\n")  # the kubelet rotated it while the request was on its way
        return (401, status_body(401, "Unauthorized"), {})

    api.answer("GET", "/version", rotate_then_refuse, (200, {"gitVersion": "v1"}, {}))
    kube = client(api, sa_dir)
    assert kube.get("/version") == {"gitVersion": "v1"}
    assert [r["headers"]["Authorization"] for r in api.seen] == ["Bearer token-1", "Bearer token-2"]


def test_a_401_with_an_unchanged_token_is_the_clis_credentials_error(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", (401, status_body(401, "Unauthorized"), {}))
    with pytest.raises(Forbidden, match=r"^GET /version: the cluster rejected your credentials \(401 Unauthorized\)$"):
        client(api, sa_dir).get("/version")
    assert len(api.seen) == 1


# ------------------------------------------------------------------ retries


def test_transient_answers_are_retried_then_succeed(api: Api, sa_dir: Path) -> None:
    api.answer(
        "GET",
        "/version",
        (503, status_body(503, "etcd leader changed"), {}),
        (429, status_body(429, "slow down"), {}),
        (200, {"gitVersion": "v1"}, {}),
    )
    kube = client(api, sa_dir)
    assert kube.get("/version") == {"gitVersion": "v1"} and kube.retries_done == 2


def test_retries_are_bounded_and_end_in_the_clis_error(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", (503, status_body(503, "etcd leader changed"), {}))
    kube = client(api, sa_dir)
    with pytest.raises(Unavailable, match=r"^GET /version: the API server answered 503: etcd leader changed$"):
        kube.get("/version")
    assert len(api.seen) == DEFAULT_ATTEMPTS


def test_a_request_that_is_not_idempotent_is_not_retried_on_5xx(api: Api, sa_dir: Path) -> None:
    api.answer("POST", "/api/v1/namespaces/x/configmaps", (500, status_body(500, "boom"), {}))
    with pytest.raises(Unavailable, match="answered 500: boom"):
        client(api, sa_dir).request(
            "POST", "/api/v1/namespaces/x/configmaps", body={}, action="creating", idempotent=False
        )
    assert len(api.seen) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", (200, {"n": 1}, {"x-drop-after": "1"}), (200, {"n": 2}, {}))
    kube = client(api, sa_dir)
    assert kube.get("/version") == {"n": 1}
    time.sleep(0.05)
    assert kube.get("/version") == {"n": 2} and kube.retries_done == 0


def test_a_refused_connection_is_retried_then_reported(sa_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    kube = incluster.connect(
        environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}, sa_dir=str(sa_dir)
    )
    with pytest.raises(Unavailable, match=rf"^GET /version: cannot reach the cluster at https://127\.0\.0\.1:{port}: "):
        kube.get("/version")
    assert kube.retries_done == DEFAULT_ATTEMPTS - 1


def test_a_server_that_never_answers_times_out_without_retrying_before_it_was_reached(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", "hang")
    kube = client(api, sa_dir, request_timeout=0.3)
    with pytest.raises(
        Unavailable,
        match=r"^GET /version: the API server at https://127\.0\.0\.1:\d+ did not answer "
        r"in time \(.*timed out\)",
    ):
        kube.get("/version")
    assert kube.retries_done == 0


def test_once_reached_a_read_timeout_of_an_idempotent_request_is_retried(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", (200, {}, {}), "hang", (200, {"gitVersion": "v1"}, {}))
    kube = client(api, sa_dir, request_timeout=0.3)
    kube.get("/version")
    assert kube.get("/version") == {"gitVersion": "v1"} and kube.retries_done == 1


# ------------------------------------------------------------------ errors: the CLI's mapping


@pytest.mark.parametrize(
    "code,reason",
    [
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (408, "Request Timeout"),
        (409, "Conflict"),
        (412, "Precondition Failed"),
        (418, "I'm a teapot"),
        (422, "Unprocessable Entity"),
        (429, "Too Many Requests"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        status_body(0, 'configmaps "x" is forbidden: User "system:serviceaccount:a:b"'),
        '{"kind": "ConfigMap", "message": "not a Status: do not trust"}',
        "<html>proxy error</html>",
        "",
    ],
)
def test_status_errors_are_the_clis(code: int, reason: str, body: str) -> None:
    from kubernetes.client.exceptions import ApiException

    from kubectl_aicr.kube import answer_of, api_error

    exc = ApiException(status=code, reason=reason)
    exc.body = body
    want = api_error(exc, action="reading cm://a/b", server="https://10.0.0.1:443")
    got = incluster.status_error(code, reason, body, action="reading cm://a/b")
    assert (type(got), str(got), got.hint) == (type(want), str(want), want.hint)
    assert answer_of(got) == answer_of(want) == answer_of(exc)
    assert getattr(got, "status") == code and getattr(got, "body") == body


def test_error_types_by_status() -> None:
    kinds = {
        401: Forbidden,
        403: Forbidden,
        404: NotFound,
        408: Timeout,
        504: Timeout,
        422: InvalidInput,
        500: Unavailable,
        409: Conflict,
        412: Conflict,
        418: AicrError,
    }
    for code, kind in kinds.items():
        assert type(incluster.status_error(code, "r", "", action="a")) is kind


def test_an_answer_that_is_not_a_json_object_is_refused(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/version", (200, "<html>captive portal</html>", {}))
    with pytest.raises(Unavailable, match=r"^GET /version: the API server's answer is not a JSON object"):
        client(api, sa_dir).get("/version")


# ------------------------------------------------------------------ the K8s collector through the client


def test_lists_are_walked_page_by_page(api: Api, sa_dir: Path) -> None:
    pages = {None: (["a", "b"], "t1"), "t1": (["c"], "t2"), "t2": (["d"], "")}

    def page(req: dict[str, Any]) -> Answer:
        items, token = pages[(req["query"].get("continue") or [None])[0]]
        return (200, {"items": [{"metadata": {"name": n}} for n in items], "metadata": {"continue": token}}, {})

    api.answer("GET", "/api/v1/nodes", page)
    names = [n["metadata"]["name"] for n in k8s.list_items(client(api, sa_dir), "/api/v1/nodes")]
    assert names == ["a", "b", "c", "d"]
    assert [r["query"]["limit"] for r in api.seen] == [["500"]] * 3


def test_node_lookup_failure_keeps_the_status_message(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/api/v1/nodes/gpu-1", (403, status_body(403, 'nodes "gpu-1" is forbidden'), {}))
    assert k8s.lookup_node(client(api, sa_dir), "gpu-1") == (None, '403: nodes "gpu-1" is forbidden')


def test_node_lookup_failure_that_is_not_a_status_gives_the_reason_phrase(api: Api, sa_dir: Path) -> None:
    api.answer("GET", "/api/v1/nodes/gpu-1", (418, "<html>a proxy's page</html>", {}))
    assert k8s.lookup_node(client(api, sa_dir), "gpu-1") == (None, "418: I'm a Teapot")


def test_the_kubernetes_packages_client_reads_the_same_through_client_reader(api: Api, sa_dir: Path, pki: Any) -> None:
    from kubernetes import client as kclient

    node = {"metadata": {"name": "gpu-1", "labels": {"a": "b"}}, "status": {"capacity": {"nvidia.com/gpu": "8"}}}
    api.answer("GET", "/api/v1/nodes/gpu-1", (200, node, {}))
    api.answer("GET", "/api/v1/nodes/gone", (404, status_body(404, 'nodes "gone" not found'), {}))
    cfg = kclient.Configuration()
    cfg.host, cfg.ssl_ca_cert = f"https://127.0.0.1:{api.port}", str(pki.ca_crt)
    cfg.api_key = {"authorization": "Bearer token-1"}
    reader = k8s.as_reader(kclient.ApiClient(cfg))
    assert isinstance(reader, k8s.ClientReader)
    assert k8s.lookup_node(reader, "gpu-1") == k8s.lookup_node(client(api, sa_dir), "gpu-1") == (node, "")
    assert (
        k8s.lookup_node(reader, "gone")
        == k8s.lookup_node(client(api, sa_dir), "gone")
        == (None, '404: nodes "gone" not found')
    )
    assert {k.lower(): v for k, v in api.seen[0]["headers"].items()}["authorization"] == "Bearer token-1"


# ------------------------------------------------------------------ the staging ConfigMap

CM = "/api/v1/namespaces/gpu-ops/configmaps/aicr-stage"
REF = ConfigMapRef("gpu-ops", "aicr-stage")


def cm(data: dict[str, str], rv: str) -> Answer:
    return (
        200,
        {"kind": "ConfigMap", "metadata": {"name": "aicr-stage", "uid": "u-1", "resourceVersion": rv}, "data": data},
        {},
    )


def test_wait_for_key_polls_until_the_facts_arrive(api: Api, sa_dir: Path) -> None:
    api.answer("GET", CM, cm({}, "1"), cm({"other": "x"}, "2"), cm({"node-facts.json": "{}"}, "3"))
    assert incluster.wait_for_key(client(api, sa_dir), REF, "node-facts.json", timeout=30, poll=0.01) == ("{}", "3")
    assert len(api.seen) == 3


def test_wait_for_key_gives_up_after_its_timeout(api: Api, sa_dir: Path) -> None:
    api.answer("GET", CM, cm({}, "1"))
    assert incluster.wait_for_key(client(api, sa_dir), REF, "node-facts.json", timeout=0.05, poll=0.01) is None


def test_a_missing_staging_configmap_is_cmstores_not_found(api: Api, sa_dir: Path) -> None:
    with pytest.raises(
        NotFound,
        match=r"^cm://gpu-ops/aicr-stage: ConfigMap 'aicr-stage' not found in namespace "
        r"'gpu-ops'$",
    ):
        incluster.wait_for_key(client(api, sa_dir), REF, "k", timeout=1)


def test_patch_into_writes_what_cmstore_encodes_and_returns_the_receipt_ids(api: Api, sa_dir: Path) -> None:
    api.answer("PATCH", CM, cm({"snapshot.yaml": "x"}, "42"))
    assert incluster.patch_into(client(api, sa_dir), REF, "kind: Snapshot\n", "yaml", drop=("node-facts.json",)) == (
        "u-1",
        "42",
    )
    req = api.seen[0]
    assert req["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    body = json.loads(req["body"])
    data, _ = cmstore.encode("kind: Snapshot\n", "yaml")
    assert set(body) == {"data"} and body["data"]["node-facts.json"] is None
    assert {k: v for k, v in body["data"].items() if k not in ("node-facts.json", "timestamp")} == {
        k: v for k, v in data.items() if k != "timestamp"
    }


def test_patch_into_compresses_a_large_snapshot_into_binary_data(api: Api, sa_dir: Path) -> None:
    api.answer("PATCH", CM, cm({}, "43"))
    text = "x: " + "0123456789" * 120_000 + "\n"
    incluster.patch_into(client(api, sa_dir), REF, text, "yaml")
    body = json.loads(api.seen[0]["body"])
    assert body["data"]["encoding"] == "gzip" and "snapshot.yaml.gz" in body["binaryData"]
    assert cmstore.decode(body["data"], body["binaryData"], source="t") == text.encode()


def test_a_forbidden_patch_is_the_clis_forbidden(api: Api, sa_dir: Path) -> None:
    api.answer("PATCH", CM, (403, status_body(403, 'configmaps "aicr-stage" is forbidden'), {}))
    with pytest.raises(Forbidden, match=r"^writing the snapshot into cm://gpu-ops/aicr-stage: configmaps "):
        incluster.patch_into(client(api, sa_dir), REF, "a: 1\n", "yaml")


# ------------------------------------------------------------------ proxies


@pytest.mark.parametrize(
    "env,want",
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, ("proxy", 3128, None)),
        ({"https_proxy": "proxy:8080", "NO_PROXY": "10.0.0.0/8"}, None),
        ({"HTTPS_PROXY": "http://u:p%40ss@proxy:3128"}, ("proxy", 3128, "Basic dTpwQHNz")),
        ({"HTTP_PROXY": "http://proxy:3128", "no_proxy": "*"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "example.com,10.1.0.0/16"}, ("proxy", 3128, None)),
    ],
)
def test_proxy_from_the_environment(env: dict[str, str], want: Any) -> None:
    assert incluster.proxy_for("10.0.0.1", env) == want


def test_no_proxy_domain_suffix() -> None:
    env = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".svc.cluster.local"}
    assert incluster.proxy_for("kubernetes.default.svc.cluster.local", env) is None
    assert incluster.proxy_for("api.example.com", env) is not None


def connect_proxy(seen: list[str]) -> tuple[int, Callable[[], None]]:
    """A CONNECT-only HTTP proxy on a free port: (port, stop)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def pump(a: socket.socket, b: socket.socket) -> None:
        with a, b:
            while not stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([listener], [], [], 0.1)
            if not ready:
                continue
            conn, _ = listener.accept()
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            line = head.split(b"\r\n", 1)[0].decode()
            seen.append(line)
            host, port = line.split()[1].rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            threading.Thread(target=pump, args=(conn, upstream), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()

    def close() -> None:
        stop.set()
        server.join()
        listener.close()

    return listener.getsockname()[1], close


def test_requests_go_through_the_https_proxy_tunnel(api: Api, sa_dir: Path) -> None:
    seen: list[str] = []
    port, stop = connect_proxy(seen)
    try:
        api.answer("GET", "/version", (200, {"gitVersion": "v1"}, {}))
        kube = client(api, sa_dir, env={"HTTPS_PROXY": f"http://127.0.0.1:{port}"})
        assert kube.get("/version") == {"gitVersion": "v1"}
        assert seen == [f"CONNECT 127.0.0.1:{api.port} HTTP/1.0"]
        kube.close()
    finally:
        stop()
