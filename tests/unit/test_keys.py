"""The one registry of volatile, identity, cluster-wide and secret keys (collector/keys.py): its rules are complete,
and the collector's exclusions and diff's rules are taken from it, not kept beside it."""

from __future__ import annotations

import pytest

from collector import gpu_host, k8s, keys, os_info
from kubectl_aicr import diff as engine
from kubectl_aicr.diff import rules


def test_every_rule_has_a_known_kind_keys_and_a_reason() -> None:
    seen: set[tuple[str, str]] = set()
    for rule in keys.RULES:
        assert rule.kind in keys.KINDS and rule.keys and rule.reason.strip(), rule
        for pattern in rule.patterns:
            assert (rule.kind, pattern) not in seen, f"{pattern} twice as {rule.kind}"
            seen.add((rule.kind, pattern))
    assert [r.kind for r in keys.RULES] == sorted((r.kind for r in keys.RULES), key=list(keys.KINDS).index)
    with pytest.raises(ValueError, match="unknown key kind"):
        keys.rules_of("transient")


def test_diff_takes_its_rules_from_the_registry() -> None:
    assert engine.VOLATILE_RULES == keys.rules_of(keys.VOLATILE) and engine.VOLATILE_RULES
    assert engine.IDENTITY_RULES == keys.rules_of(keys.IDENTITY) and engine.IDENTITY_RULES
    assert all(any(rule is r for r in keys.RULES) for rule in engine.VOLATILE_RULES + engine.IDENTITY_RULES)
    assert engine.CLUSTER_WIDE == ("K8s/server/*", "K8s/cluster/*", "K8s/image/*", "K8s/policy/*", "NodeTopology/*/*")
    assert rules.listing()["rules"] == [r.to_dict() for r in keys.RULES]


def test_the_collectors_sysctl_exclusion_is_the_registrys() -> None:
    from_registry = keys.sysctl_paths(keys.VOLATILE, keys.SECRET)
    assert len(keys.sysctl_paths(keys.VOLATILE)) == 23 and "fs/file-nr" in from_registry
    assert set(from_registry) <= set(os_info.SYSCTL_EXCLUDE)
    assert len(set(os_info.SYSCTL_EXCLUDE)) == len(os_info.SYSCTL_EXCLUDE), "a sysctl excluded twice"
    # what os_info adds by hand is not a volatile or secret key (those belong in the registry) but what is not a
    # setting at all: media state, per-CPU fan-out, write-only triggers
    by_hand = set(os_info.SYSCTL_EXCLUDE) - set(from_registry)
    assert by_hand == {
        "dev/cdrom/",
        "kernel/sched_domain/",
        "vm/drop_caches",
        "vm/compact_memory",
        "vm/stat_refresh",
        "net/ipv4/route/flush",
        "net/ipv6/route/flush",
    }
    # every volatile or secret sysctl the registry names, wildcards included, is left out by the collector's walk
    for rule in keys.rules_of(keys.VOLATILE, keys.SECRET):
        if (rule.type, rule.subtype) == ("OS", "sysctl"):
            for key in rule.keys:
                rel = key[len(keys.SYSCTL_PREFIX) :].replace("*", "eth0")
                assert os_info.sysctl_excluded(rel), rel


def test_diff_hides_every_volatile_key_the_collector_leaves_out() -> None:
    flt = engine.KeyFilter(engine.DiffOptions())
    for rel in keys.sysctl_paths(keys.VOLATILE):
        assert flt.hides_key("OS", "sysctl", keys.SYSCTL_PREFIX + rel), rel
    assert flt.hides_key("GPU", "labels", "nvidia.com/gfd.timestamp")
    assert flt.hides_key("GPU", "labels", "nvidia.com/gpu-driver-upgrade-state")
    assert not flt.hides_key("GPU", "labels", "nvidia.com/gpu.product")
    assert not engine.KeyFilter(engine.DiffOptions(include_volatile=True)).hides_key(
        "GPU", "labels", "nvidia.com/gfd.timestamp"
    )


def test_the_gpu_label_filter_is_the_registrys() -> None:
    labels = {
        "nvidia.com/gfd.timestamp": "1712345678",
        "nvidia.com/gpu-driver-upgrade-state": "upgrade-done",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/cuda.driver.major": "570",
    }
    sub = gpu_host.labels_subtype(labels)
    assert sub.data == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/cuda.driver.major": "570"}
    volatile_labels = keys.matcher("GPU", "labels", keys.VOLATILE)
    assert "nvidia.com/mig.timestamp" in volatile_labels and "nvidia.com/gpu.product" not in volatile_labels
    assert 1 not in volatile_labels and "x" not in keys.matcher("GPU", "labels", keys.IDENTITY)


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "dbPassword",
        "token",
        "apiKey",
        "access_key",
        "privateKey",
        "auth",
        "authorization",
        "cookie",
        "db_pw",
        "secretName",
        "tokenSecretRef",
        "imagePullSecrets",
        "keyRef",
        "repository",
        "version",
        "passwordFile",
        "enabled",
    ],
)
def test_secret_key_names_are_the_k8s_collectors(name: str) -> None:
    assert keys.secret_key_name(name) == k8s.sensitive_key(name)
