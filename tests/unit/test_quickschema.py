"""kubectl_aicr.quickschema: its yes/no answer is jsonschema's, on every schema we ship, on every fixture snapshot and
on thousands of generated broken ones; what it does not check exactly it refuses to compile."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any, Iterator

import pytest

from kubectl_aicr import formats, quickschema, snapshot_io
from kubectl_aicr.schema import _without_valid_data, problems, schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted(p for p in (ROOT / "tests" / "fixtures" / "snapshots").rglob("*") if p.suffix in (".yaml", ".json"))


def _jsonschema_valid(s: Any, doc: Any) -> bool:
    from jsonschema import Draft202012Validator

    return not list(Draft202012Validator(s, format_checker=quickschema.format_checker()).iter_errors(doc))


def _load(path: Path) -> Any:
    return snapshot_io.parse_document(path.read_bytes(), source=str(path))


#: Values a mutation puts somewhere: every JSON type, the types YAML adds, strings that break the patterns,
#: the kinds and apiVersions, timestamps good and bad.
PALETTE: list[Any] = [
    None,
    0,
    1,
    -1,
    True,
    False,
    1.5,
    float("inf"),
    "",
    " ",
    "x y",
    "ok",
    "a" * 300,
    [],
    [1],
    {},
    {"": 1},
    {1: "a"},
    {"k": {"n": 1}},
    {"k": [1]},
    "Snapshot",
    "SnapshotList",
    "Pod",
    "aicr.nvidia.com/v1alpha1",
    "aicr.run/v1",
    "aicr.run/v1alpha2",
    "2026-11-27T06:00:00Z",
    "2026-02-30T06:00:00Z",
    "yesterday",
    "unavailable",
    "error",
    "GPU",
    "smi",
    ("tuple",),
]


def _containers(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _containers(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _containers(v, path + (i,))


def _mutants(doc: Any, rng: random.Random, n: int) -> Iterator[Any]:
    """``n`` copies of ``doc`` with one to three random changes each: a value replaced, a key removed or added, an
    item appended or removed."""
    for _ in range(n):
        d = copy.deepcopy(doc)
        for _ in range(rng.randint(1, 3)):
            nodes = [(p, c) for p, c in _containers(d) if isinstance(c, (dict, list)) and len(p) < 7]
            _, node = rng.choice(nodes)
            action = rng.random()
            if isinstance(node, dict):
                keys = list(node)
                if keys and action < 0.5:
                    node[rng.choice(keys)] = copy.deepcopy(rng.choice(PALETTE))
                elif keys and action < 0.7:
                    del node[rng.choice(keys)]
                else:
                    node[rng.choice(["extra", "status", "kind", "items", "type", ""])] = copy.deepcopy(
                        rng.choice(PALETTE)
                    )
            else:
                if node and action < 0.5:
                    node[rng.randrange(len(node))] = copy.deepcopy(rng.choice(PALETTE))
                elif node and action < 0.7:
                    node.pop(rng.randrange(len(node)))
                else:
                    node.append(copy.deepcopy(rng.choice(PALETTE)))
        yield d


@pytest.mark.parametrize("version", formats.SUPPORTED)
def test_every_shipped_schema_compiles(version: str) -> None:
    quickschema.compile(schema(version))  # no Unsupported: the quick check covers all of it


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixtures_get_jsonschemas_answer_under_every_version(path: Path) -> None:
    doc = _load(path)
    for version in formats.SUPPORTED:
        s = schema(version)
        quick = quickschema.compile(s)
        for d in (doc, _without_valid_data(doc)):
            assert quick(d) == _jsonschema_valid(s, d), (path.name, version)


def test_generated_documents_get_jsonschemas_answer() -> None:
    rng = random.Random(15)
    small = [p for p in FIXTURES if p.stat().st_size < 40_000]
    seen = {True: 0, False: 0}
    for path in small:
        base = _without_valid_data(_load(path))
        for version in formats.SUPPORTED:
            s = schema(version)
            quick = quickschema.compile(s)
            for d in _mutants(base, rng, 60):
                expected = _jsonschema_valid(s, d)
                assert quick(d) == expected, (path.name, version, json.dumps(d, default=repr)[:2000])
                seen[expected] += 1
    assert seen[False] > 500 and seen[True] > 50, seen  # both answers were exercised


def test_problems_is_unchanged_by_the_quick_check() -> None:
    """Valid documents: no problems; broken ones: exactly what jsonschema reports on the whole document (the quick
    check only ever says 'no errors', and only when jsonschema would)."""
    for path in FIXTURES:
        assert problems(_load(path)) == [], path.name
    from jsonschema import Draft202012Validator

    from kubectl_aicr.schema import _header_problem, _json_path

    rng = random.Random(1515)
    node_a = _load(ROOT / "tests" / "fixtures" / "snapshots" / "node-a.yaml")
    v = Draft202012Validator(schema(formats.V1ALPHA1), format_checker=quickschema.format_checker())
    broken = 0
    for d in _mutants(node_a, rng, 200):
        if _header_problem(d) is not None or formats.detect(d) != formats.V1ALPHA1:
            continue
        errors = sorted(v.iter_errors(d), key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
        expected = [
            f"{_json_path(e.absolute_path)}: {e.message if len(e.message) <= 240 else e.message[:237] + '...'}"
            for e in errors
        ]
        found = problems(d)
        if expected:
            broken += 1
            assert found == expected, json.dumps(d, default=repr)[:2000]
        else:
            assert all("duplicate" in f for f in found), found
    assert broken > 100


@pytest.mark.parametrize(
    "bad",
    [
        {"oneOf": [{"type": "string"}]},
        {"patternProperties": {"x": {}}},
        {"$ref": "https://example.com/other.json"},
        {"$ref": "#/$defs/missing"},
        {"const": 1},
        {"enum": ["a", 1]},
        {"format": "email"},
        {"type": "any"},
        {"properties": {"a": {"$id": "https://example.com/nested"}}},
        {"$schema": "http://json-schema.org/draft-07/schema#"},
        {"anyOf": []},
    ],
)
def test_what_it_cannot_check_exactly_it_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(quickschema.Unsupported):
        quickschema.compile(bad)


def test_each_keyword_against_jsonschema() -> None:
    """Small schemas, one keyword each, over values of every type (including YAML's and Python's extras)."""
    schemas: list[dict[str, Any]] = [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array"},
        {"type": "object"},
        {"type": ["string", "null"]},
        {"const": "a"},
        {"enum": ["a", "b"]},
        {"pattern": "^[A-Z]"},
        {"pattern": "b"},
        {"minLength": 2},
        {"minimum": 0},
        {"minimum": 1.5},
        {"format": "date-time"},
        {"format": "date"},
        {"required": ["a"]},
        {"properties": {"a": {"type": "string"}}},
        {"additionalProperties": False, "properties": {"a": True}},
        {"additionalProperties": {"type": "integer"}},
        {"propertyNames": {"minLength": 1}},
        {"propertyNames": {"pattern": "^a"}},
        {"items": {"type": "integer"}},
        {"items": False},
        {"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {"required": ["c"]}},
        {"if": {"required": ["a"]}},
        {"then": False},
        {"anyOf": [{"type": "string"}, {"minimum": 3}]},
        {"$defs": {"s": {"type": "string"}}, "items": {"$ref": "#/$defs/s"}},
        True,
        False,
    ]
    import datetime

    values: list[Any] = PALETTE + [
        2,
        3,
        1.0,
        -0.5,
        "A",
        "ab",
        "b",
        "2026-01-01",
        datetime.date(2026, 1, 1),
        {"a": 1},
        {"a": "x"},
        {"a": 1, "b": 2},
        {"c": 1},
        {"b": 1},
        {"x": 1},
        {"": "x"},
        {2: 1},
        [1, 2],
        [1, "a"],
        ["a"],
        [None],
    ]
    for s in schemas:
        quick = quickschema.compile(s)
        for x in values:
            assert quick(x) == _jsonschema_valid(s, x), (s, x)
