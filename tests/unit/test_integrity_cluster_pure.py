"""Issue 13, cluster side, without a cluster: request timeouts and retries, the write receipt, what may be
replaced by ``-o cm://``, credential redaction, node images, the agent's manifests, kubeconfig loading and
kubectl's connection flags."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from collector import k8s
from kubectl_aicr import cmstore
from kubectl_aicr.deploy import spec, verify
from kubectl_aicr.deploy.run import cleanup_reserve, manifest_stream
from kubectl_aicr.errors import InvalidInput, NotFound, Timeout, Unavailable
from kubectl_aicr.kube import Kube, KubeOptions, api_error, connect, retryable

REPO = Path(__file__).resolve().parents[2]


def kube(deadline: float | None = None, request_timeout: float = 30.0) -> Kube:
    return Kube(
        api_client=None,
        namespace="ns",
        context=None,
        server="https://x",
        request_timeout=request_timeout,
        deadline=deadline,
    )


# ------------------------------------------------------------------ item 2: every request gets a real timeout


def test_request_passes_a_tuple_timeout_capped_by_the_deadline() -> None:
    seen: list[Any] = []
    k = kube(deadline=time.monotonic() + 5, request_timeout=30.5)
    k.request(lambda **kw: seen.append(kw["_request_timeout"]), action="x")
    (t,) = seen
    # A float is silently ignored by kubernetes-client 35 (only int or (connect, read) count): always a tuple.
    assert isinstance(t, tuple) and len(t) == 2 and 0 < t[0] <= 5 and t[0] == t[1]
    k = kube(request_timeout=2.5)
    k.request(lambda **kw: seen.append(kw["_request_timeout"]), action="x")
    assert seen[-1] == (2.5, 2.5)
    k.request(lambda **kw: seen.append(kw["_request_timeout"]), action="x", cap=1)
    assert seen[-1] == (1, 1)


def test_no_request_starts_after_the_deadline() -> None:
    calls: list[int] = []
    with pytest.raises(Timeout, match="deadline"):
        kube(deadline=time.monotonic() - 1).request(lambda **kw: calls.append(1), action="listing pods")
    assert calls == []


# ------------------------------------------------------------------ item 5: transient failures are retried


def _failing(errors: list[BaseException]) -> Any:
    calls: list[int] = []

    def fn(**kw: Any) -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def test_refused_connections_and_503_are_retried_until_they_succeed() -> None:
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    fn = _failing([refused, ApiException(status=503), ApiException(status=429)])
    k = kube(deadline=time.monotonic() + 30)
    assert k.request(fn, action="x") == "ok"
    assert len(fn.calls) == 4 and k.retries_done == 3


def test_a_server_never_reached_fails_fast_and_a_reached_one_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong kubeconfig (nothing listens) must not take the whole --timeout to be reported; a server that
    answered before and now refuses connections is restarting, and is waited for within the deadline."""

    def refused() -> Exception:
        return urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]

    import kubectl_aicr.kube as kube_module

    monkeypatch.setattr(kube_module, "BACKOFF_MAX", 0.05)  # the same schedule, compressed
    fn = _failing([refused() for _ in range(20)])
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        kube(deadline=time.monotonic() + 300).request(fn, action="x")
    assert len(fn.calls) == 4
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out.")  # type: ignore[arg-type]
    fn = _failing([timeout])
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        kube(deadline=time.monotonic() + 300).request(fn, action="x")
    assert len(fn.calls) == 1
    k = kube(deadline=time.monotonic() + 300)
    k.reached = True
    fn = _failing([refused() for _ in range(6)] + [timeout])
    assert k.request(fn, action="x") == "ok" and len(fn.calls) == 8


def test_ambiguous_failures_are_not_retried_for_creates() -> None:
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    assert retryable(reset, idempotent=True) and not retryable(reset, idempotent=False)
    assert retryable(ApiException(status=429), idempotent=False)  # refused before processing
    assert not retryable(ApiException(status=500), idempotent=False)
    assert not retryable(ApiException(status=404), idempotent=True)
    assert not retryable(ApiException(status=409), idempotent=True)
    # The client wraps urllib3's SSLError as status 0: a handshake cut by a restart is transient, a bad cert not.
    assert retryable(ApiException(status=0, reason="SSLError\nEOF occurred in violation of protocol"), idempotent=True)
    assert not retryable(
        ApiException(status=0, reason="SSLError\n[SSL: CERTIFICATE_VERIFY_FAILED] ..."), idempotent=True
    )
    fn = _failing([reset])
    with pytest.raises(urllib3.exceptions.ProtocolError):
        kube(deadline=time.monotonic() + 30).request(fn, action="x", idempotent=False)
    assert len(fn.calls) == 1


def test_without_a_deadline_retries_are_bounded() -> None:
    fn = _failing([ApiException(status=503)] * 10)
    with pytest.raises(ApiException):
        kube().request(fn, action="x")
    assert len(fn.calls) == 4


def test_a_read_timeout_is_one_clear_unavailable_line() -> None:
    e = urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out.")  # type: ignore[arg-type]
    err = api_error(e, action="reading namespace 'x'", server="https://10.0.0.1")
    assert isinstance(err, Unavailable) and "did not answer in time" in str(err) and "\n" not in str(err)
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    assert "cannot reach the cluster at https://10.0.0.1" in str(
        api_error(refused, action="x", server="https://10.0.0.1")
    )


def test_cleanup_keeps_part_of_the_timeout() -> None:
    assert cleanup_reserve(300) == 15 and cleanup_reserve(4) == 1


# ------------------------------------------------------------------ item 3: the write receipt


def receipt(**kw: str) -> verify.Receipt:
    base = dict(
        uid="u1",
        resource_version="12",
        sha256=verify.digest(b"doc"),
        facts_resource_version="10",
        node="gpu-1",
        run_id="abc123",
    )
    base.update(kw)
    return verify.Receipt(**base)


def problems(r: verify.Receipt | None, **kw: Any) -> list[str]:
    args: dict[str, Any] = dict(
        receipt=r,
        created_uid="u1",
        cm_uid="u1",
        cm_resource_version="12",
        content=b"doc",
        facts_resource_version="10",
        pod_node="gpu-1",
        run_id="abc123",
    )
    args.update(kw)
    return verify.receipt_problems(**args)


def test_receipt_round_trips_through_a_log() -> None:
    r = receipt()
    log = f"[agent] collecting\n{verify.receipt_line(r)}\n[agent] bye\n"
    assert verify.parse_receipt(log) == r
    assert verify.parse_receipt("nothing here") is None
    assert problems(r) == []


def test_every_kind_of_tampering_is_named() -> None:
    assert "no write receipt" in problems(None)[0]
    assert "changed after the agent wrote it" in problems(receipt(), cm_resource_version="13")[0]
    assert "deleted and re-created" in problems(receipt(), cm_uid="u2")[0]
    assert "sha256" in problems(receipt(), content=b"FORGED")[0]
    assert "node facts the agent read" in problems(receipt(facts_resource_version="11"))[0]
    assert "ran on 'gpu-1'" in problems(receipt(node="gpu-9"))[0]
    assert "not this run" in problems(receipt(run_id="zzzzzz"))[0]
    assert verify.document_problems(
        {"metadata": {"run-id": "zzzzzz", "source-node": "gpu-h100-1"}}, run_id="abc123", pod_node="gpu-2"
    ) == [
        "the snapshot names run 'zzzzzz', not this run ('abc123')",
        "the snapshot names node 'gpu-h100-1' but the agent pod ran on 'gpu-2'",
    ]


# ------------------------------------------------------------------ item 4: only our snapshots are replaced


def test_only_our_snapshot_configmaps_may_be_replaced() -> None:
    ours = dict(cmstore.BASE_LABELS)
    assert cmstore.is_our_snapshot(ours, {"snapshot.yaml": "", "format": "", "timestamp": ""}, None)
    assert cmstore.is_our_snapshot(ours, {"format": "", "encoding": ""}, {"snapshot.yaml.gz": ""})
    assert not cmstore.is_our_snapshot(None, {"Corefile": ""}, None)
    assert not cmstore.is_our_snapshot(ours, {"snapshot.yaml": "", "Corefile": ""}, None)  # labels copied onto theirs
    assert not cmstore.is_our_snapshot({"app.kubernetes.io/name": "aicr"}, {"snapshot.yaml": ""}, None)

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="coredns"), data={"Corefile": "."})
    with pytest.raises(
        InvalidInput,
        match=r"cm://kube-system/coredns exists and is not a kubectl-aicr snapshot "
        r"\(keys: Corefile\); refusing",
    ):
        from kubectl_aicr.snapshot_io import ConfigMapRef

        cmstore.refuse_foreign(ConfigMapRef("kube-system", "coredns"), cm)


# ------------------------------------------------------------------ item 6: ClusterPolicy credentials


def test_policy_env_values_and_credentials_are_redacted() -> None:
    obj = {
        "metadata": {"name": "cluster-policy"},
        "spec": {
            "driver": {
                "version": "570",
                "env": [
                    {"name": "HTTPS_PROXY", "value": "http://u:pw@proxy:3128"},
                    {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
                "args": ["--token=abc", "-v=2"],
                "licensingConfig": {"configMapName": "lic"},
            },
            "toolkit": {"repoConfig": {"password": "hunter2"}, "installDir": "/usr/local/nvidia"},
            "dcgmExporter": {"url": "https://x/metrics?token=s3cr3t&x=1", "apiKey": "k-123"},
        },
    }
    sub = k8s.policy_subtype([obj])
    text = yaml.safe_dump(sub.to_wire())
    for secret in ("u:pw", "hunter2", "abc", "s3cr3t", "k-123"):
        assert secret not in text
    d = sub.data
    assert d["driver.env"] == (
        '[{"name":"HTTPS_PROXY","value":"<redacted>"},{"name":"K","valueFrom":{"secretKeyRef":{"key":"k","name":"s"}}}]'
    )
    assert d["driver.args"] == '["--token=<redacted>","-v=2"]'
    assert d["toolkit.repoConfig.password"] == "<redacted>"
    assert d["driver.licensingConfig.configMapName"] == "lic" and d["toolkit.installDir"] == "/usr/local/nvidia"
    assert d["dcgmExporter.url"] == "https://x/metrics?token=<redacted>&x=1"


# ------------------------------------------------------------------ item 8: images from the node, not pod specs


def test_images_come_from_the_nodes_status() -> None:
    node = client.V1Node(
        metadata=client.V1ObjectMeta(name="n"),
        status=client.V1NodeStatus(
            images=[
                client.V1ContainerImage(names=["nvcr.io/nvidia/driver@sha256:aa", "nvcr.io/nvidia/driver:570.86.15"]),
                client.V1ContainerImage(names=["registry.k8s.io/pause:3.10"]),
                client.V1ContainerImage(names=["r.io/only-digest@sha256:bb"]),
            ]
        ),
    )
    assert k8s.image_data(node) == {
        "nvcr.io/nvidia/driver": "570.86.15",
        "r.io/only-digest": "@sha256:bb",
        "registry.k8s.io/pause": "3.10",
    }


def test_node_facts_round_trip_without_annotations() -> None:
    node = {
        "metadata": {"name": "gpu-1", "labels": {"a": "b"}, "annotations": {"secret": "x"}, "managedFields": [{}]},
        "spec": {"providerID": "aws:///x", "podCIDR": "10.0.0.0/24"},
        "status": {
            "nodeInfo": {
                "kubeletVersion": "v1.35.4",
                "architecture": "amd64",
                "bootID": "",
                "kernelVersion": "",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "",
                "systemUUID": "",
            },
            "images": [{"names": ["x/y:1"]}],
        },
    }
    text = k8s.facts_document(node, "", [k8s.cluster_subtype([])])
    assert "annotations" not in text and "managedFields" not in text and "podCIDR" not in text
    (got, err), subs = k8s.parse_facts(text)
    assert err == "" and got["metadata"]["name"] == "gpu-1" and got["status"]["nodeInfo"]["kubeletVersion"] == "v1.35.4"
    assert [s.name for s in subs] == ["cluster"] and subs[0].data["node-count"] == 0
    (none, why), _ = k8s.parse_facts(k8s.facts_document(None, "you may not get node 'x' (403)", []))
    assert none is None and "403" in why
    with pytest.raises(ValueError):
        k8s.parse_facts('{"version": 99}')


# ------------------------------------------------------------------ items 7, 8, 15: what the agent gets


def test_agent_objects_are_namespaced_and_each_pod_privilege_has_its_reason() -> None:
    run = spec.RunSpec(namespace="gpu-ops", run_id="abc123")
    objs = spec.manifests(run, create_namespace=True)
    assert [o["kind"] for o in objs] == ["Namespace", "Job", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"]
    assert not any(o["kind"].startswith("Cluster") for o in objs)
    pod = objs[1]["spec"]["template"]["spec"]
    assert pod["hostPID"] is True  # systemd's credential check (see spec.py); no other host namespace but net/IPC
    assert {k for k in pod if k.startswith("host")} == {"hostPID", "hostNetwork", "hostIPC"}
    assert spec.role(run)["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "patch"],
            "resourceNames": ["aicr-abc123-snapshot"],
        }
    ]
    owners = {run.job_name: {"apiVersion": "batch/v1", "kind": "Job", "name": run.job_name, "uid": "j1"}}
    for o in spec.manifests(run, create_namespace=False, owners=owners)[1:]:
        assert o["metadata"]["ownerReferences"][0]["uid"] == "j1", o["kind"]
    stream = list(yaml.safe_load_all(manifest_stream(objs)))
    assert [d["kind"] for d in stream] == [o["kind"] for o in objs]


def test_every_privilege_of_the_pod_is_explained() -> None:
    text = (REPO / "kubectl_aicr/deploy/spec.py").read_text()
    for needle, why in [
        ('"hostNetwork": True', "net.* sysctls"),
        ('"hostIPC": True', "shm"),
        ('"privileged": True', "nvidia-smi"),
        ('"mountPath": "/run/systemd"', "systemctl"),
        ('"mountPath": "/etc/os-release"', "os-release"),
    ]:
        before = text[: text.index(needle)].splitlines()[-3:]
        assert any(why in line for line in before), (needle, before)


# ------------------------------------------------------------------ item 10 (kubeconfig) and kubectl flags


def cfg(path: Path, **cluster: Any) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [
            {"name": "main", "cluster": {"server": "https://127.0.0.1:6443", **cluster}},
            {"name": "other", "cluster": {"server": "https://10.9.9.9:6443", "insecure-skip-tls-verify": True}},
        ],
        "users": [{"name": "u", "user": {"token": "t-main"}}, {"name": "v", "user": {"token": "t-other"}}],
        "contexts": [{"name": "c", "context": {"cluster": "main", "user": "u"}}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_binary_kubeconfig_is_one_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "bin"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50)
    with pytest.raises(InvalidInput, match="not a text file"):
        connect(KubeOptions(kubeconfig=str(p)))


def test_bad_certificate_authority_data_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="certificate-authority-data of cluster 'main' is not valid base64"):
        connect(KubeOptions(kubeconfig=str(cfg(tmp_path / "a", **{"certificate-authority-data": "not base64!!"}))))
    junk = base64.b64encode(b"this is no certificate").decode()
    with pytest.raises(InvalidInput, match="certificate-authority is not a usable PEM certificate"):
        connect(KubeOptions(kubeconfig=str(cfg(tmp_path / "b", **{"certificate-authority-data": junk}))))


@pytest.mark.parametrize("content", [b"\x00\x01\x02\xff" * 100, None])
def test_cli_exits_2_with_one_error_line_for_a_bad_kubeconfig(tmp_path: Path, content: bytes | None) -> None:
    p = tmp_path / "kc"
    if content is None:
        cfg(p, **{"certificate-authority-data": "%%%"})
    else:
        p.write_bytes(content)
    r = subprocess.run(
        [sys.executable, "-m", "kubectl_aicr", "validate", "cm://a/b", "--kubeconfig", str(p)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr


def test_user_cluster_and_token_override_the_context(tmp_path: Path) -> None:
    p = str(cfg(tmp_path / "a", **{"insecure-skip-tls-verify": True}))
    k = connect(KubeOptions(kubeconfig=p))
    assert k.api_client.configuration.api_key["authorization"].endswith("t-main")
    k = connect(KubeOptions(kubeconfig=p, user="v", cluster="other"))
    assert (
        k.api_client.configuration.api_key["authorization"].endswith("t-other") and k.server == "https://10.9.9.9:6443"
    )
    k = connect(KubeOptions(kubeconfig=p, token="tok-1"))
    assert k.api_client.configuration.api_key["authorization"] == "Bearer tok-1"
    with pytest.raises(NotFound, match="--user 'nope': no such user"):
        connect(KubeOptions(kubeconfig=p, user="nope"))
    with pytest.raises(NotFound, match="--cluster 'nope': no such cluster"):
        connect(KubeOptions(kubeconfig=p, cluster="nope"))
    with pytest.raises(InvalidInput, match="--as-group needs --as"):
        connect(KubeOptions(kubeconfig=p, as_groups=("g",)))


def test_impersonation_sends_one_header_per_group(tmp_path: Path) -> None:
    import http.server
    import threading

    seen: list[Any] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            seen.append(self.headers)
            body = b'{"kind": "APIResourceList", "groupVersion": "v1", "resources": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        p = cfg(tmp_path / "a")
        doc = yaml.safe_load(p.read_text())
        doc["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{server.server_port}"
        p.write_text(yaml.safe_dump(doc))
        k = connect(KubeOptions(kubeconfig=str(p), as_user="jane", as_groups=("dev", "ops")))
        client.CoreV1Api(k.api_client).get_api_resources()
    finally:
        server.shutdown()
    (headers,) = seen
    assert headers.get_all("Impersonate-Group") == ["dev", "ops"] and headers["Impersonate-User"] == "jane"
