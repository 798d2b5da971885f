"""fastyaml.dump's direct emitter gives byte for byte what PyYAML (libyaml's CSafeDumper) gives: on the fixtures, on
tricky strings, on random documents; and leaves to PyYAML (still equal) everything it does not handle."""

from __future__ import annotations

import datetime
import json
import random
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from kubectl_aicr import fastyaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
pytestmark = pytest.mark.skipif(not hasattr(yaml, "CSafeDumper"), reason="the fast path needs libyaml")


def fast(doc: Any) -> bool:
    """``dump(doc)`` equals PyYAML's text (or raises what PyYAML raises); whether the fast path wrote it."""
    before = fastyaml.fast_hits
    try:
        expected = fastyaml._pyyaml_dump(doc)
    except Exception as e:  # noqa: BLE001 - what PyYAML refuses, dump must refuse the same way
        with pytest.raises(type(e)) as got:
            fastyaml.dump(doc)
        if not isinstance(e, RecursionError):  # its message names where the stack ran out
            assert str(got.value) == str(e)
        assert fastyaml.fast_hits == before
        return False
    assert fastyaml.dump(doc) == expected, repr(doc)[:300]
    return fastyaml.fast_hits > before


def fixture_documents() -> list[tuple[str, Any]]:
    docs = []
    for path in sorted(FIXTURES.rglob("*.yaml")) + sorted(FIXTURES.rglob("*.json")):
        text = path.read_text()
        for n, doc in enumerate([json.loads(text)] if path.suffix == ".json" else fastyaml.load_all(text)):
            docs.append((f"{path.relative_to(FIXTURES)}#{n}", doc))
    return docs


FIXTURE_DOCS = fixture_documents()


@pytest.mark.parametrize("name,doc", FIXTURE_DOCS, ids=[n for n, _ in FIXTURE_DOCS])
def test_fixtures_are_written_by_the_fast_path_as_pyyaml_writes_them(name: str, doc: Any) -> None:
    assert fastyaml._fast_dump(doc) == fastyaml._pyyaml_dump(doc)
    assert fast(doc)


def test_fleet_and_cluster_lists_of_the_fixtures() -> None:
    nodes = [doc for name, doc in FIXTURE_DOCS if isinstance(doc, dict) and doc.get("kind") == "Snapshot"]
    assert len(nodes) >= 5
    fleet = {"apiVersion": "aicr.nvidia.com/v1alpha1", "kind": "SnapshotList", "metadata": {}, "items": nodes}
    fleet20 = dict(FIXTURE_DOCS)["fleet-20.yaml#0"]
    clusters = {
        "kind": "ClusterSnapshotList",
        "items": [{"context": "a", "snapshot": fleet}, {"context": "b: c", "snapshot": fleet20}],
    }
    for doc in (fleet, clusters, {"items": [nodes[0]]}, {"items": [{"context": "c", "snapshot": fleet20}]}):
        assert fast(doc)
    assert fastyaml._fast_dump(clusters).startswith("kind: ClusterSnapshotList\nitems:\n- context: a\n  snapshot:\n")


TRICKY = [
    "", " ", "  ", "a ", " a", "a  b", "true", "True", "TRUE", "yes", "Yes", "no", "No", "on", "On", "off", "OFF", "y",
    "n", "Y", "null", "Null", "NULL", "~", "1", "-1", "+1", "1.0", "-1.5", "1.", ".5", "0x1F", "0o17", "017", "0b101",
    "1e3", "1.0e+3", "1.0e3", ".inf", "-.inf", ".Inf", ".nan", ".NaN", "-", "--", "---", "----", "--- a", "-a", "- a",
    "-1a", "a: b", "a:b", "a:", "a::", ":", ":a", ": a", "a #b", "a#b", "#a", "# a", "@a", "`a", "%a", "!a", "!", "&",
    "*", "&a", "*a", "|", "|-", ">", ">-", "?", "? a", "?a", "a?", ",", ",a", "a,", "[", "]", "[a]", "{", "}", "{a}",
    "a[b]", "a{b}", "'", "''", "'a'", '"', '"a"', "a'b", 'a"b', "\\", "a\\b", "...", "....", "... a", "..a", "a...",
    "2026-12-03", "2026-1-3", "2026-12-03T10:00:00Z", "2026-12-03 10:00:00", "12:30", "1:2:3", "190:20:30", "1_000",
    "0_1", "<<", "<", "=", "==", "a=b", "é", "中文", "ü: x", "\xa0", "a\xa0", "\u2027", "\u202a", "\ud7ff", "\ue000",
    "\ufffd", "😀", "a😀b", "\t", "a\tb", "\ta", "a\t", "\x00", "\x01", "\x07\x08\x0b\x0c\x1b", "\x7f", "\x80", "\x84",
    "\x86", "\x9f", "\ufeff", "a\ufeff", "\ufffe", "\uffff", 'tab\t"q"\\', "a\n", "\n", "a\nb", "a\r", "a\rb", "\x85",
    "a\x85b", "\u2028", "a\u2029b", "0", "00", "-0", "+0", "0.0", "1,000", "1 000", "a b c", "%", "@", "`", "a@b",
    "a`b", "/proc/sys/net/ipv4/conf/all/rp_filter", "nvidia.com/gpu.product", "key=value:NoSchedule", "6.8.0-1015-aws",
    "sha256:abcdef", "http://x.y/z?a=b#c", "C:\\path", "x" * 200, "a " * 100, "\xad", "\u200b", "\u3000a", "a\u3000",
    "\u0300", "a\u00a0#b", "é #b", "é: b", "中 ", "\ue000:",
]  # fmt: skip


@pytest.mark.parametrize("s", TRICKY, ids=[repr(s)[:40] for s in TRICKY])
def test_tricky_strings_as_values_items_and_keys(s: str) -> None:
    docs = [
        {"k": s},
        [s],
        {"k": [s, {"k": s}]},
        [[s], [[s]], {"a": {"b": s}}],
        {s: s},
        {s: {s: [s]}},
        [{s: [], "x": {}}],
    ]
    taken = [fast(doc) for doc in docs]
    if not re.search("[\n\r\x85\u2028\u2029]", s) and len(s.encode()) <= 100:
        assert all(taken), s  # the fast path handles every such string, quoted as PyYAML quotes it


SCALARS: list[Any] = [
    None, True, False, 0, 1, -1, 10**30, -(10**30), 0.0, -0.0, 0.1, 1.5, -2.25, 1e17, 1e-5, 1.5e300, 5e-324, 1e16,
    123456789.0, 3.0, float("inf"), float("-inf"), float("nan"),
]  # fmt: skip


@pytest.mark.parametrize("v", SCALARS, ids=[repr(v) for v in SCALARS])
def test_non_string_scalars(v: Any) -> None:
    assert fast({"k": v, "l": [v, [v]], "m": [{"n": v}]})


def test_layout_of_nested_and_empty_collections() -> None:
    docs: list[Any] = [
        {},
        [],
        [[]],
        [{}],
        [[[]]],
        {"a": []},
        {"a": {}},
        {"a": [[]]},
        {"a": [{}]},
        [[1, [2, {}]], {"a": [{"b": [[]]}]}],
        {"a": [[1, 2], [3]], "b": [{"c": 1, "d": [{"e": {}}]}], "f": {"g": {"h": [[[{}]]]}}},
        [{"a": {"b": [1]}, "c": [[{"d": 1, "e": [2]}]]}],
        {"": "", "x": [None, [None], {"": None}]},
    ]
    for doc in docs:
        assert fast(doc)


ALPHABET = "ab -:#?,[]{}&*!|>'\"%@`.~01eE_+<=/\\\té中\xa0😀\x01"
WORDS = ["true", "no", "null", "~", "1", "1.0", "0x1F", ".inf", "---", "...", "2026-12-03", "12:30", "<<", "=", "- a"]
RARE = ["\n", "\x85", "\u2028", "a\nb"]  # left to PyYAML


def random_string(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return rng.choice(WORDS)
    if r < 0.16:
        return rng.choice(RARE)
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 8)))


def random_doc(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 0 and (depth >= 5 or r < 0.45):
        s = rng.random()
        if s < 0.7:
            return random_string(rng)
        return rng.choice([None, True, False, 0, -7, 12345678901234567890, 0.5, -1e20, float("inf")])
    if r < 0.75:
        return {random_string(rng): random_doc(rng, depth + 1) for _ in range(rng.randrange(0, 5))}
    return [random_doc(rng, depth + 1) for _ in range(rng.randrange(0, 5))]


def test_deep_documents_pyyaml_writes() -> None:
    doc: Any = {"leaf": "x: y", "n": 1}
    for depth in range(150):
        doc = {f"k{depth}": doc, "s": [depth]} if depth % 3 else [doc, [[depth], {}], "a"]
    assert fast(doc)


def test_random_documents() -> None:
    rng = random.Random(20261203)
    taken = 0
    n = 3000
    for _ in range(n):
        if fast(random_doc(rng)):
            taken += 1
    assert n * 0.6 < taken < n  # most documents took the fast path, some (the rare line breaks) did not


class Str(str):
    pass


class Dict(dict):  # type: ignore[type-arg]
    pass


def _shared() -> Any:
    inner = {"a": 1}
    return {"x": inner, "y": inner}


def _shared_empty() -> Any:
    inner: list[Any] = []
    return [inner, inner]


EXCLUDED: list[tuple[str, Callable[[], Any]]] = [
    ("root scalar", lambda: "a"),
    ("root none", lambda: None),
    ("tuple", lambda: {"a": (1, 2)}),
    ("bytes", lambda: {"a": b"xy"}),
    ("date", lambda: {"a": datetime.date(2026, 12, 3)}),
    ("datetime", lambda: [datetime.datetime(2026, 12, 3, 10, 0)]),
    ("set", lambda: {"a": {1, 2}}),
    ("str subclass", lambda: {"a": Str("x")}),
    ("dict subclass", lambda: {"a": Dict(b=1)}),
    ("int key", lambda: {1: "a"}),
    ("bool key", lambda: {True: "a"}),
    ("none key", lambda: {None: "a"}),
    ("newline", lambda: {"a": "x\ny"}),
    ("trailing newline", lambda: ["x\n"]),
    ("carriage return", lambda: ["x\ry"]),
    ("NEL", lambda: ["x\x85y"]),
    ("line separator", lambda: ["x\u2028y"]),
    ("paragraph separator", lambda: {"k\u2029": 1}),
    ("surrogate", lambda: ["\ud800"]),
    ("shared container", _shared),
    ("shared empty list", _shared_empty),
    ("long key", lambda: {"k" * 129: 1}),
    ("long non-ascii key", lambda: {"é" * 60: 1}),
    ("long line", lambda: {"k": "word " * 14000}),
    ("long item", lambda: ["x" * 70000]),
    ("huge int", lambda: [10**5000]),
    ("too deep for PyYAML", lambda: _deep(2000)),
]


def _deep(n: int) -> Any:
    doc: Any = []
    for _ in range(n):
        doc = [doc]
    return doc


@pytest.mark.parametrize("name,make", EXCLUDED, ids=[n for n, _ in EXCLUDED])
def test_what_the_fast_path_leaves_to_pyyaml(name: str, make: Callable[[], Any]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - _Unsupported, or an error PyYAML then raises its own way
        fastyaml._fast_dump(make())
    assert not fast(make())


def test_keys_and_lines_around_the_limits() -> None:
    for n in range(90, 140):
        for ch in ("k", "é", "中", "a b", "'"):
            key = (ch * n)[:n]
            fast({key: 1, "x": {key: [key]}})
    for n in list(range(65400, 65560, 7)) + [64511, 64512, 64513]:
        for text in ("x" * n, ("ab " * n)[:n], ("'" * n)[:n], ("\t " * n)[:n], ("é " * n)[:n]):
            fast({"key": text, "l": [text], "m": [{"deeper": {"k": text}}]})


def test_without_libyaml_pyyaml_writes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = dict(FIXTURE_DOCS)["node-a.yaml#0"]
    monkeypatch.delattr(yaml, "CSafeDumper")
    before = fastyaml.fast_hits
    assert fastyaml.dump(doc) == yaml.dump(
        doc, Dumper=yaml.SafeDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16
    )
    assert fastyaml.fast_hits == before


def test_a_changed_representer_or_resolver_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"a": "xyz", "b": ["xyz", 1], "c": "plain"}
    assert fast(doc)
    resolvers = {k: list(v) for k, v in yaml.CSafeDumper.yaml_implicit_resolvers.items()}
    resolvers.setdefault("x", []).append(("tag:yaml.org,2002:int", re.compile("^xyz$")))
    monkeypatch.setattr(yaml.CSafeDumper, "yaml_implicit_resolvers", resolvers)
    assert fast(doc)  # the cached decision for "xyz" (plain) was dropped: now quoted, as PyYAML quotes it
    assert "a: 'xyz'" in fastyaml.dump(doc)
    monkeypatch.undo()
    assert fastyaml.dump(doc).startswith("a: xyz\n")

    def represent_str(dumper: Any, data: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')

    representers = dict(yaml.CSafeDumper.yaml_representers)
    representers[str] = represent_str
    monkeypatch.setattr(yaml.CSafeDumper, "yaml_representers", representers)
    assert not fast(doc)
    assert fastyaml.dump(doc).startswith('"a": "xyz"\n')


def test_the_string_cache_stays_bounded() -> None:
    for i in range(fastyaml._CACHE_MAX + 10):
        fastyaml._text(f"s{i}")
    assert len(fastyaml._TEXTS) <= fastyaml._CACHE_MAX
    assert fast({"k": [f"s{i}" for i in range(100)]})
