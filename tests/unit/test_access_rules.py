"""kubectl_aicr.deploy.access: which permissions a SelfSubjectRulesReview's rules grant for certain (RBAC's
matching), and that everything else - refusals, cluster-wide needs, an incomplete or refused rules review - is
left to one SelfSubjectAccessReview each. The server's verdicts are tested against the real API server in
tests/e2e/test_access_cluster.py; here the answers are given, as the server writes them (JSON)."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_aicr.deploy import access
from kubectl_aicr.deploy.access import Need, granted_by_rules, rule_grants
from kubectl_aicr.deploy.spec import RunSpec
from kubectl_aicr.errors import Forbidden, Unavailable
from kubectl_aicr.kube import Answer

JOBS = Need("create", "jobs", "batch")
LOG = Need("get", "pods", subresource="log")
NS = Need("create", "namespaces", namespaced=False)


def _rule(verbs: list[str], groups: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources, **extra}


@pytest.mark.parametrize(
    ("rule", "need", "grants"),
    [
        (_rule(["create"], ["batch"], ["jobs"]), JOBS, True),
        (_rule(["*"], ["*"], ["*"]), JOBS, True),
        (_rule(["*"], ["*"], ["*"]), LOG, True),
        (_rule(["get", "create"], ["batch", ""], ["jobs", "pods"]), JOBS, True),
        (_rule(["get"], ["batch"], ["jobs"]), JOBS, False),  # verb
        (_rule(["create"], [""], ["jobs"]), JOBS, False),  # group
        (_rule(["create"], ["apps"], ["jobs"]), JOBS, False),
        (_rule(["create"], ["batch"], ["jobs/status"]), JOBS, False),  # a subresource is not the resource
        (_rule(["create"], ["batch"], ["jobs"], resourceNames=["one"]), JOBS, False),  # named objects only
        (_rule(["create"], ["batch"], ["jobs"], resourceNames=[]), JOBS, True),
        (_rule(["get"], [""], ["pods"]), LOG, False),  # the resource is not its subresource
        (_rule(["get"], [""], ["pods/log"]), LOG, True),
        (_rule(["get"], [""], ["*/log"]), LOG, True),
        (_rule(["get"], [""], ["pods/*"]), LOG, False),  # RBAC has no resource/* wildcard
        (_rule(["get"], [""], ["*/status"]), LOG, False),
        (_rule(["*"], [""], ["*"]), LOG, True),
        ({"verbs": ["create"], "resources": ["jobs"]}, JOBS, False),  # malformed: no groups
        ({"verbs": "create", "apiGroups": ["batch"], "resources": ["jobs"]}, JOBS, False),
        ({"verbs": ["create"], "apiGroups": ["batch"], "resources": "jobs"}, JOBS, False),
    ],
)
def test_a_rule_grants_what_rbac_would(rule: dict[str, Any], need: Need, grants: bool) -> None:
    assert rule_grants(rule, need) is grants


def _review(rules: list[dict[str, Any]], incomplete: Any = False) -> dict[str, Any]:
    return {"kind": "SelfSubjectRulesReview", "status": {"resourceRules": rules, "incomplete": incomplete}}


def test_only_complete_rules_decide_and_only_for_namespaced_needs() -> None:
    everything = [_rule(["*"], ["*"], ["*"])]
    needs = [JOBS, LOG, NS]
    assert granted_by_rules(_review(everything), needs) == [True, True, False]  # cluster-wide: an access review
    assert granted_by_rules(_review(everything, incomplete=True), needs) == [False] * 3
    assert granted_by_rules(_review(everything, incomplete=None), needs) == [False] * 3
    assert granted_by_rules({"status": {"resourceRules": everything}}, needs) == [False] * 3  # no verdict on it
    assert granted_by_rules(None, needs) == [False] * 3
    assert granted_by_rules(_review([]), needs) == [False] * 3
    assert granted_by_rules(_review([_rule(["create"], ["batch"], ["jobs"]), "junk"]), needs) == [True, False, False]  # type: ignore[list-item]


class _Kube:
    """Stands in for the API server's two answers (a rules review, access reviews), recording what was asked."""

    server = "https://example.invalid"

    def __init__(self, rules: Any, allowed: set[tuple[str, str, str]] | Exception) -> None:
        self.rules, self.allowed = rules, allowed
        self.asked: list[tuple[str, str, str]] = []
        self.authz = self

    def create_self_subject_rules_review(self) -> None: ...

    def create_self_subject_access_review(self) -> None: ...

    def call_json(self, fn: Any, body: dict[str, Any], *, action: str) -> Any:
        assert action == "checking your permissions"
        if fn == self.create_self_subject_rules_review:
            assert body["spec"] == {"namespace": "ns"}
            if isinstance(self.rules, Exception):
                raise self.rules
            return self.rules
        attrs = body["spec"]["resourceAttributes"]
        key = (attrs["verb"], attrs["resource"], attrs["subresource"] or "")
        self.asked.append(key)
        if isinstance(self.allowed, Exception):
            raise self.allowed
        return {"status": {"allowed": key in self.allowed}}


def _answered(err: Exception, status: int) -> Exception:
    setattr(err, "answer", Answer(status, "x", "y"))
    return err


RUN = RunSpec(namespace="ns", run_id="abc")
ALL = {(n.verb, n.resource, n.subresource) for n in access.required(RUN, create_namespace=True)}


def test_rules_that_grant_everything_need_no_access_review() -> None:
    kube = _Kube(_review([_rule(["*"], ["*"], ["*"])]), set())
    assert access.missing_permissions(kube, RUN, create_namespace=False) == []  # type: ignore[arg-type]
    assert kube.asked == []


def test_a_need_the_rules_do_not_grant_is_the_access_reviews_verdict() -> None:
    rules = _review([_rule(["*"], ["batch", ""], ["*"])])  # no RBAC objects
    kube = _Kube(rules, ALL - {("create", "roles", "")})
    missing = access.missing_permissions(kube, RUN, create_namespace=True)  # type: ignore[arg-type]
    assert missing == ["create roles.rbac.authorization.k8s.io in namespace 'ns'"]
    assert sorted(kube.asked) == sorted(
        [("create", "roles", ""), ("delete", "roles", ""), ("create", "rolebindings", "")]
        + [("delete", "rolebindings", ""), ("create", "namespaces", "")]
    )


def test_incomplete_or_refused_rules_leave_every_need_to_an_access_review() -> None:
    for rules in (
        _review([_rule(["*"], ["*"], ["*"])], incomplete=True),
        _answered(Forbidden("refused"), 403),
        _answered(Forbidden("unknown"), 404),
    ):
        kube = _Kube(rules, ALL - {("delete", "jobs", "")})
        assert access.missing_permissions(kube, RUN, create_namespace=False) == [  # type: ignore[arg-type]
            "delete jobs.batch in namespace 'ns'"
        ]
        assert len(kube.asked) == len(access.required(RUN, create_namespace=False))


def test_a_rules_review_without_an_answer_fails_the_check_as_an_access_review_would() -> None:
    down = Unavailable("checking your permissions: cannot reach the cluster")
    with pytest.raises(Unavailable, match="checking your permissions: cannot reach"):
        access.missing_permissions(_Kube(down, set()), RUN, create_namespace=False)  # type: ignore[arg-type]
    overloaded = _answered(Unavailable("checking your permissions: the API server answered 503"), 503)
    with pytest.raises(Unavailable):
        access.missing_permissions(_Kube(overloaded, set()), RUN, create_namespace=False)  # type: ignore[arg-type]
    failing = _Kube(_review([]), Unavailable("checking your permissions: timed out"))
    with pytest.raises(Unavailable, match="timed out"):
        access.missing_permissions(failing, RUN, create_namespace=False)  # type: ignore[arg-type]


def test_check_names_every_missing_permission() -> None:
    kube = _Kube(_review([]), set())
    with pytest.raises(Forbidden) as info:
        access.check(kube, RUN, create_namespace=False)  # type: ignore[arg-type]
    n = len(access.required(RUN, create_namespace=False))
    assert str(info.value).startswith(f"you lack {n} permissions needed to run the snapshot agent; first missing: ")
    assert len(info.value.details) == n
