"""The Kubernetes boundary without a cluster: Kube.call raises the error type of an answer's meaning and keeps
what the server said, sets the request timeout itself, Kube.list_all walks every page, a Connect connects once."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from kubectl_aicr.errors import AicrError, Conflict, Forbidden, InvalidInput, NotFound, Timeout, Unavailable
from kubectl_aicr.kube import Answer, Kube, answer_of, lazy


def kube(request_timeout: float = 30.0) -> Kube:
    return Kube(api_client=None, namespace="ns", context=None, server="https://x", request_timeout=request_timeout)


def status_error(code: int, reason: str, message: str, *, http_reason: str = "") -> ApiException:
    e = ApiException(status=code, reason=http_reason or reason)
    e.body = json.dumps(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}
    )
    return e


def raising(e: BaseException) -> Any:
    def fn(*args: Any, **kw: Any) -> Any:
        raise e

    return fn


@pytest.mark.parametrize(
    "code,reason,expected",
    [
        (400, "BadRequest", InvalidInput),
        (401, "Unauthorized", Forbidden),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (408, "Timeout", Timeout),
        (409, "AlreadyExists", Conflict),
        (409, "Conflict", Conflict),
        (412, "PreconditionFailed", Conflict),
        (422, "Invalid", InvalidInput),
        (501, "NotImplemented", Unavailable),
        (410, "Expired", AicrError),
    ],
)
def test_call_raises_the_type_of_the_answer_and_keeps_what_the_server_said(
    code: int, reason: str, expected: type
) -> None:
    e = status_error(code, reason, f'configmaps "x" says {reason}', http_reason="Some Phrase")
    with pytest.raises(AicrError) as got:
        kube().call(raising(e), action="reading cm://ns/x")
    assert type(got.value) is expected
    assert str(got.value).startswith("reading cm://ns/x: ") and "\n" not in str(got.value)
    said = answer_of(got.value)
    assert said == Answer(code, reason, f'configmaps "x" says {reason}')  # the Status reason, not the HTTP phrase
    assert str(said) == f"{code} {reason}"
    if code not in (401,):
        assert f'configmaps "x" says {reason}' in str(got.value)


def test_a_body_that_is_not_a_status_is_not_shown() -> None:
    """A proxy in front of the API server answers with its own page: only a Status object's message is trusted."""
    e = ApiException(status=404, reason="Not Found")
    e.body = "<html><body>nginx says <script>no</script></body></html>"
    with pytest.raises(NotFound) as got:
        kube().call(raising(e), action="reading x")
    assert "nginx" not in str(got.value) and str(got.value) == "reading x: 404 Not Found"
    assert answer_of(got.value) == Answer(404, "Not Found", "404 Not Found")
    e.body = json.dumps({"kind": "Pod", "message": "not a Status"})
    with pytest.raises(NotFound) as got:
        kube().call(raising(e), action="reading x")
    assert "not a Status" not in str(got.value)


def test_errors_without_an_answer_have_none() -> None:
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    attempts: list[int] = []

    def fn(**kw: Any) -> Any:
        attempts.append(1)
        raise refused

    k = kube()
    k.reached = True  # so the test does not wait for the retries of a server never reached
    import kubectl_aicr.kube as kube_module

    old = kube_module.BACKOFF_MAX, kube_module.BACKOFF_FIRST
    kube_module.BACKOFF_MAX = kube_module.BACKOFF_FIRST = 0.001
    try:
        with pytest.raises(Unavailable) as got:
            k.call(fn, action="listing nodes")
    finally:
        kube_module.BACKOFF_MAX, kube_module.BACKOFF_FIRST = old
    assert answer_of(got.value) is None and "cannot reach the cluster at https://x" in str(got.value)
    assert answer_of(ValueError("x")) is None
    assert answer_of(ApiException(status=403, reason="Forbidden")) == Answer(403, "Forbidden", "403 Forbidden")


def test_call_sets_the_request_timeout_and_replaces_one_passed() -> None:
    seen: list[Any] = []

    def read(*args: Any, **kw: Any) -> str:
        seen.append((args, kw))
        return "ok"

    k = kube(request_timeout=2.5)
    assert k.call(read, "x", action="a", _request_timeout=600) == "ok"
    assert seen == [(("x",), {"_request_timeout": (2.5, 2.5)})]


class _Model:
    """A list response as the client returns it: ``.items`` and ``.metadata._continue``."""

    def __init__(self, items: list[Any], token: str | None) -> None:
        self.items = items
        self.metadata = SimpleNamespace(_continue=token, resource_version="7")


def test_list_all_follows_every_continue_token() -> None:
    pages = {None: (["a", "b"], "t1"), "t1": (["c"], "t2"), "t2": (["d"], None)}
    calls: list[dict[str, Any]] = []

    def list_node(*args: Any, **kw: Any) -> _Model:
        calls.append({"args": args, **kw})
        items, token = pages[kw.get("_continue")]
        return _Model(items, token)

    assert kube().list_all(list_node, "ns", action="listing nodes", label_selector="x=y", limit=2) == [
        "a",
        "b",
        "c",
        "d",
    ]
    assert [c.get("_continue") for c in calls] == [None, "t1", "t2"]
    assert all(c["limit"] == 2 and c["label_selector"] == "x=y" and c["args"] == ("ns",) for c in calls)
    assert all(isinstance(c["_request_timeout"], tuple) for c in calls)
    assert "_continue" not in calls[0]  # the first page is asked for without a token


def test_list_all_reads_custom_object_lists_and_raises_typed_errors() -> None:
    pages = {None: {"items": [{"n": 1}], "metadata": {"continue": "t"}}, "t": {"items": [{"n": 2}], "metadata": {}}}
    got = kube().list_all(
        lambda *a, **kw: pages[kw.get("_continue")],
        "nvidia.com",
        "v1",
        "clusterpolicies",
        action="listing ClusterPolicies",
    )
    assert got == [{"n": 1}, {"n": 2}] and kube().list_all(lambda **kw: _Model([], None), action="x") == []
    with pytest.raises(Forbidden, match="^listing nodes: nodes is forbidden"):
        kube().list_all(raising(status_error(403, "Forbidden", "nodes is forbidden")), action="listing nodes")


def test_list_all_as_json_reads_every_page_as_plain_json() -> None:
    pages = {
        None: {"kind": "NodeList", "items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "t"}},
        "t": {"kind": "NodeList", "items": [{"metadata": {"name": "b"}}], "metadata": {"resourceVersion": "9"}},
    }
    calls: list[dict[str, Any]] = []
    released: list[bool] = []

    def list_node(*args: Any, **kw: Any) -> Any:
        calls.append(kw)
        body = json.dumps(pages[kw.get("_continue")]).encode()
        return SimpleNamespace(data=body, release_conn=lambda: released.append(True))

    got = kube().list_all(list_node, action="listing nodes", limit=1, as_json=True)
    assert got == [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]
    assert [c.get("_continue") for c in calls] == [None, "t"] and released == [True, True]
    assert all(c["_preload_content"] is False and c["limit"] == 1 for c in calls)
    with pytest.raises(Forbidden, match="^listing nodes: nodes is forbidden"):
        kube().list_all(
            raising(status_error(403, "Forbidden", "nodes is forbidden")), action="listing nodes", as_json=True
        )


def test_request_json_answers_plain_json_and_raises_the_clients_exception() -> None:
    calls: list[dict[str, Any]] = []

    def read_node(name: str, **kw: Any) -> Any:
        calls.append(kw)
        return SimpleNamespace(data=json.dumps({"metadata": {"name": name}}).encode(), release_conn=lambda: None)

    assert kube().request_json(read_node, "gpu-1", action="reading node") == {"metadata": {"name": "gpu-1"}}
    assert calls[0]["_preload_content"] is False and isinstance(calls[0]["_request_timeout"], tuple)
    forbidden = status_error(403, "Forbidden", "nodes is forbidden")
    with pytest.raises(ApiException) as got:
        kube().request_json(raising(forbidden), "gpu-1", action="reading node")
    assert got.value is forbidden  # as the client raised it: the caller tells the statuses apart
    with pytest.raises(Unavailable, match="^reading node: the API server at https://x answered with something"):
        kube().request_json(
            lambda *a, **kw: SimpleNamespace(data=b"<html>", release_conn=lambda: None), action="reading node"
        )


def test_a_connect_connects_once_and_only_when_used() -> None:
    made: list[Kube] = []

    def factory() -> Kube:
        made.append(kube())
        return made[-1]

    connect = lazy(factory)
    assert made == []
    first = connect()
    assert connect() is first and made == [first]
