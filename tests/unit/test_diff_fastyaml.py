"""The fast paths that make ``diff`` of large snapshots quick: kubectl_aicr.fastyaml must return exactly what
``yaml.load_all(text, Loader=CSafeLoader)`` returns (or raise the same error), and schema.problems with its data
shortcut must report exactly what the full jsonschema validation reports."""

from __future__ import annotations

import copy
import datetime
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_aicr import fastyaml, snapshot_io
from kubectl_aicr.errors import InvalidInput
from kubectl_aicr.schema import _json_path, _validator, problems

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = Path("/work/shared/fixtures")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def reference(text: str) -> Any:
    try:
        return ("ok", list(yaml.load_all(text, Loader=_LOADER)))
    except Exception as e:  # noqa: BLE001 - PyYAML raises more than YAMLError on some inputs
        return ("error", type(e).__name__, str(e))


def fast(text: str) -> Any:
    try:
        return ("ok", fastyaml.load_all(text))
    except Exception as e:  # noqa: BLE001
        return ("error", type(e).__name__, str(e))


def block_path_used(text: str) -> bool:
    try:
        fastyaml._block_load(text)
    except fastyaml._Fallback:
        return False
    return True


def same_typed(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True must not pass)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_typed(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_typed(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


def assert_equivalent(text: str) -> None:
    want, got = reference(text), fast(text)
    assert want[0] == got[0], (text, want, got)
    if want[0] == "ok":
        assert same_typed(want[1], got[1]), (text, want, got)
    else:
        assert want == got


def yaml_files() -> list[Path]:
    files = sorted((FIXTURES / "snapshots").glob("*.yaml"))
    if SHARED.is_dir():
        files += sorted(p for p in SHARED.glob("*") if p.suffix in (".yaml", ".tmpl"))
    return files


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.name)
def test_fixtures_load_identically(path: Path) -> None:
    assert_equivalent(path.read_text(encoding="utf-8"))


def test_snapshot_fixtures_take_the_fast_path() -> None:
    for name in (
        "node-a.yaml",
        "node-a-drift.yaml",
        "original-h100.yaml",
        "fleet-20.yaml",
        "original-mock-snapshot.yaml",
    ):
        assert block_path_used((FIXTURES / "snapshots" / name).read_text()), name


GO_YAML_V3 = """\
kind: Snapshot
apiVersion: aicr.nvidia.com/v1alpha1
metadata:
    source-node: gpu-1
    timestamp: "2026-03-20T18:04:11Z"
measurements:
    - type: GPU
      subtypes:
        - subtype: smi
          data:
            cuda-version: "12.8"
            driver: 570.86.15
            gpu-count: 8
            gpu.addressing-mode: None
    - type: SystemD
    - type: OS
      subtypes:
        - subtype: grub
          data:
            ro: ""
            nvme_core.io_timeout: "4294967295"
            quiet: ''
        - subtype: kmod
          data: {}
"""


def test_go_yaml_v3_layout_takes_the_fast_path() -> None:
    assert block_path_used(GO_YAML_V3)
    assert_equivalent(GO_YAML_V3)


TRICKY = [
    # scalars PyYAML types: ints (octal, hex, underscores, sexagesimal), floats, bools, nulls, timestamps
    "a: 0\nb: 07\nc: 08\nd: 0x1F\ne: 1_000\nf: 190:20:30\ng: -0\nh: +12\ni: 0b101\nj: 012345678\n",
    "a: 1.5\nb: .5\nc: 1e5\nd: 1.0e+5\ne: .inf\nf: -.INF\ng: .nan\nh: 6.8e-5\ni: 1.\nj: 12.10\n",
    "a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: true\ng: False\nh: TRUE\ni: n\n",
    "a: ~\nb: null\nc: Null\nd:\ne: ''\nf: \"\"\ng: NULL\n",
    "a: 2026-03-20\nb: 2026-03-20T18:04:11Z\nc: 2026-03-20 18:04:11.5 +02:00\nd: '2026-03-20'\n",
    # keys that are not strings, odd keys
    "1: a\ntrue: b\n~: c\n1.5: d\n'1': e\n\"x y\": f\n'it''s': g\n",
    "a:b: c\nhttp://x: y\nkey with spaces: v\nk#h: v\n",
    # quoting and escapes
    'a: \'it\'\'s\'\nb: "tab\\there"\nc: "\\u00e9\\x41\\U0001F600"\nd: "\\\\back"\n'
    'e: "q\\"uote"\nf: "\\N\\_\\L\\P\\e\\0"\n',
    'a: "\\/slash"\nb: "bad \\q escape"\n',
    'a: "\\ud800"\n',
    "a: '  spaces  '\nb: \"  spaces  \"\nc: plain with  inner  spaces   \n",
    # comments
    "# head\na: 1 # trailing\nb: 'x' # c\nc: \"y\"   # c\n# mid\nd: e#f\n",
    "a: # just a comment\n  b: 1\n",
    # plain scalars with indicators inside
    "a: -1\nb: --x\nc: a,b\nd: a[0]\ne: x:y\nf: 50%\ng: a@b\nh: <nil>\ni: ---\nj: =\nk: ?x\n",
    "a: 'x': y\n",
    "a: b: c\n",
    "a: x\n- b\n",
    # sequences
    "- a\n- 1\n- - nested\n- {}\n- []\n-\n- k: v\n  k2: v2\n",
    "a:\n- 1\n- 2\nb:\n  - x: 1\n    y: 2\n  -   z: 3\n",
    "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
    "a:\n    - x\n    -\n      b: c\n",
    # regressions found by the random test below
    "---\n---\n- []\n",
    "!t0': 'yes'\nsay: x\n",
    "a: 2026-02-31\nb: [unclosed\n",
    "a: 2026-02-31\n",
    # document markers and directives
    "---\na: 1\n",
    "--- a\n",
    "a: 1\n...\n",
    "a: 1\n---\nb: 2\n",
    "%YAML 1.1\n---\na: 1\n",
    "",
    "# only a comment\n",
    # things the fast paths leave to PyYAML
    "a: &x 1\nb: *x\n",
    "a: &x {b: 1}\nc: *x\n",
    "<<: {a: 1}\nb: 2\n",
    "a: !!str 5\n",
    "a: !custom x\n",
    "a: |\n  line1\n  line2\nb: >\n  folded\n",
    "a: plain\n  continued\n",
    'a: "multi\n  line"\n',
    "a: {b: 1, c: [1, 2]}\n",
    "? complex\n: value\n",
    "a:\n\tb: 1\n",
    "a:\tb\n",
    "a: 1\r\nb: 2\r\n",
    'a: "x\u2028y"\n',
    "a: b\u0085c\n",
    "a: \x01\n",
    "\ufeffa: 1\n",
    "a: x\nb: [unclosed\n",
    "a: 'unclosed\n",
    "  a: 1\n  b: 2\n",
    "a: 1\n b: 2\n",
    "a:\n  - 1\n   - 2\n",
    "a: 1\na: 2\n",
    "=: x\n",
    "a: !!binary aGk=\n",
    "key" + "x" * 1100 + ": v\n",
    "'" + "q" * 1100 + "': v\n",
    "a: [x]  \n",
    "a: {}  # c\n",
    "- - a\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_documents_match_pyyaml(text: str) -> None:
    assert_equivalent(text)


_WORDS = [
    "a",
    "x1",
    "true",
    "True",
    "yes",
    "no",
    "null",
    "~",
    "<nil>",
    "0",
    "01",
    "08",
    "1.0",
    "12.10",
    "1e3",
    "-1",
    "0x1f",
    ".inf",
    "1_0",
    "12:30",
    "2026-03-20",
    "a b",
    " lead",
    "trail ",
    "",
    "it's",
    'say "hi"',
    "a: b",
    "a #b",
    "a#b",
    "- x",
    "? x",
    "[x]",
    "{x}",
    "a,b",
    "&a",
    "*a",
    "!t",
    "|",
    ">",
    "%",
    "@",
    "`",
    "tab\there",
    "é",
    "日本",
    "\\",
    "line\nbreak",
    "=",
    "<<",
    "-",
    "---",
    "...",
    "#",
    ":",
    "x:",
    "/proc/sys/fs/file-nr",
    "v1.33.5",
]


def _rand_scalar(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.45:
        return rng.choice(_WORDS) + rng.choice(["", "", str(rng.randrange(100))])
    if r < 0.6:
        return rng.randrange(-(10**6), 10**6)
    if r < 0.7:
        return rng.choice([0.5, 1.0, -2.25, 1e-7, 3.14159, 1e20, float("inf")])
    if r < 0.8:
        return rng.choice([True, False, None])
    if r < 0.85:
        return datetime.datetime(2026, 3, rng.randrange(1, 28), 12, 0, 0)
    return "".join(rng.choice("ab :#-'\"\\\t{}[],&*!|>%@`?=~.") for _ in range(rng.randrange(1, 8)))


def _rand_doc(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.25:
        return _rand_scalar(rng)
    if rng.random() < 0.65:
        return {
            (_rand_scalar(rng) if rng.random() < 0.2 else rng.choice(_WORDS) + str(i)): _rand_doc(rng, depth + 1)
            for i in range(rng.randrange(0, 6))
        }
    return [_rand_doc(rng, depth + 1) for _ in range(rng.randrange(0, 5))]


def test_random_documents_match_pyyaml() -> None:
    """Random nested documents written by PyYAML in several block styles load identically."""
    rng = random.Random(20260320)
    fast_hits = 0
    styles = [
        dict(default_flow_style=False),
        dict(default_flow_style=False, indent=4),
        dict(default_flow_style=False, width=1 << 16, allow_unicode=True),
        dict(default_flow_style=False, explicit_start=True, sort_keys=False),
        dict(default_flow_style=None),
    ]
    for i in range(600):
        doc = {"measurements": _rand_doc(rng)} if i % 3 else _rand_doc(rng)
        try:
            text = yaml.safe_dump(doc, **styles[i % len(styles)])
        except yaml.YAMLError:
            continue
        assert_equivalent(text)
        fast_hits += block_path_used(text)
        assert_equivalent(_mangle(text, rng))
    assert fast_hits > 200  # the block parser really was exercised, not just the fallbacks


def _mangle(text: str, rng: random.Random) -> str:
    """One or two random line edits: mostly invalid or unusual YAML, which must fail (or load) the same way."""
    lines = text.split("\n")
    for _ in range(rng.randrange(1, 3)):
        j = rng.randrange(len(lines))
        op = rng.randrange(5)
        if op == 0:
            lines[j] = " " + lines[j]
        elif op == 1:
            lines[j] = lines[j][1:]
        elif op == 2:
            lines.insert(
                j,
                rng.choice(
                    [
                        "- x",
                        "k: v",
                        "  - y",
                        "#c",
                        "  z:",
                        "---",
                        "- k: 1",
                        "  - - a",
                        "...",
                        "k: 'a''b'",
                        'k: "\\x41"',
                        "k: 2026-02-31",
                        "k: 2026-13-01",
                    ]
                ),
            )
        elif op == 3:
            lines[j] += rng.choice([" #c", ":", " x", "'", '"', ": v", "  "])
        else:
            k = rng.randrange(len(lines[j]) + 1)
            lines[j] = lines[j][:k] + rng.choice(" :#-'\"\t{[") + lines[j][k:]
    return "\n".join(lines)


def test_real_snapshot_round_trips_through_the_fast_path() -> None:
    doc = snapshot_io.load(snapshot_io.FilePath(str(FIXTURES / "snapshots" / "fleet-20.yaml")))
    for fmt_kw in (dict(), dict(indent=4)):
        text = yaml.safe_dump(doc, sort_keys=False, **fmt_kw)
        assert block_path_used(text) and same_typed(fastyaml.load_all(text), [doc])


def test_aliases_are_still_refused_by_parse_document() -> None:
    with pytest.raises(InvalidInput, match="aliases"):
        snapshot_io.parse_document(b"a: &x {b: 1}\nc: *x\nmeasurements: []\n", source="f.yaml")
    with pytest.raises(InvalidInput, match="not valid YAML: did not find expected node content at line 3 column 1"):
        snapshot_io.parse_document(b"a: 1\nb: [\n", source="f.yaml")


# ============================================================================ schema: data shortcut


def full_problems(doc: Any) -> list[str]:
    """What schema.problems reports without the data shortcut (header and duplicate checks aside)."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
    return [
        f"{_json_path(e.absolute_path)}: {e.message[:240] if len(e.message) <= 240 else e.message[:237] + '...'}"
        for e in errors
    ]


def _bad_variants() -> list[dict[str, Any]]:
    base = snapshot_io.load(snapshot_io.FilePath(str(FIXTURES / "snapshots" / "node-a.yaml")))
    out = []
    for mutate in (
        lambda d: d["measurements"][0]["subtypes"][0]["data"].update(bad=[1, 2]),
        lambda d: d["measurements"][1]["subtypes"][1]["data"].update({"": "empty key"}),
        lambda d: d["measurements"][1]["subtypes"][1]["data"].update(nested={"a": 1}),
        lambda d: d["measurements"][2]["subtypes"][0].update(data=[1]),
        lambda d: d["measurements"][2]["subtypes"][0].pop("data"),
        lambda d: d["measurements"][2]["subtypes"][0].update(extra=1),
        lambda d: d["measurements"][3]["subtypes"][0]["data"].update({1: "int key"}),
        lambda d: d["measurements"][3]["subtypes"][0]["data"].update(when=datetime.datetime(2026, 1, 1)),
        lambda d: d["measurements"][3]["subtypes"][0]["context"].update(status="broken"),
        lambda d: d["measurements"][3].update(type="bad type"),
        lambda d: d["measurements"].append("not a measurement"),
        lambda d: d["measurements"][0].update(subtypes={"not": "a list"}),
        lambda d: d.update(measurements={"not": "a list"}),
        lambda d: d["metadata"].update(timestamp="yesterday"),
    ):
        d = copy.deepcopy(base)
        mutate(d)
        out.append(d)
    listed = {
        "kind": "SnapshotList",
        "apiVersion": "aicr.nvidia.com/v1alpha1",
        "items": [base, out[0], out[2]],
        "failures": [{"node": "x"}],
    }
    return out + [listed, base]


@pytest.mark.parametrize("doc", _bad_variants())
def test_schema_shortcut_reports_what_jsonschema_reports(doc: dict[str, Any]) -> None:
    assert problems(doc) == full_problems(doc)
