"""Every ``format`` a schema we ship declares is checked, with jsonschema's own verdict and message, and validation
pays for no format library: checked by walking the schema files, by values good and bad, by jsonschema's full
``FORMAT_CHECKER`` in a fresh interpreter, and by what the real entry point loads in a subprocess. (``python -X
importtime`` would list the blocked imports too, as attempts of a few microseconds, so ``sys.modules`` is read.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubectl_aicr import formats, quickschema
from kubectl_aicr.schema import UNUSED_FORMAT_MODULES, _validator, problems, schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "kubectl_aicr").glob("**/*.schema.json"))
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": "/nonexistent/kubeconfig"}

#: A value each declared format accepts and one it refuses; a format declared without an entry here fails the walk.
EXAMPLES: dict[str, tuple[str, str]] = {
    "date-time": ("2026-11-27T06:00:00Z", "2026-11-27 06:00:00"),
    "date": ("2026-12-31", "2026-02-30"),
}


def _declared() -> set[str]:
    found: set[str] = set()
    for path in SHIPPED:
        found |= quickschema.declared_formats(json.loads(path.read_text(encoding="utf-8")))
    for version in formats.SUPPORTED:
        found |= quickschema.declared_formats(schema(version))
    return found


def test_the_walk_sees_every_schema_file_and_format() -> None:
    assert {p.name for p in SHIPPED} >= {"snapshot.schema.json", "snapshot-aicr.run.schema.json", "policy.schema.json"}
    assert _declared() >= {"date", "date-time"}


@pytest.mark.parametrize("fmt", sorted(_declared()))
def test_every_declared_format_is_checked(fmt: str) -> None:
    assert fmt in quickschema.FORMATS and fmt in EXAMPLES, f"{fmt}: declared by a shipped schema but not checked"
    good, bad = EXAMPLES[fmt]
    checker = quickschema.format_checker()
    assert checker.conforms(good, fmt) and not checker.conforms(bad, fmt)
    s = {"type": "string", "format": fmt}
    assert quickschema.compile(s)(good) and not quickschema.compile(s)(bad)
    from jsonschema import Draft202012Validator

    errors = [e.message for e in Draft202012Validator(s, format_checker=checker).iter_errors(bad)]
    assert errors == [f"{bad!r} is not a {fmt!r}"]


@pytest.mark.parametrize("version", formats.SUPPORTED)
def test_the_validator_of_each_version_checks_its_declared_formats(version: str) -> None:
    assert set(_validator(version).format_checker.checkers) == quickschema.declared_formats(schema(version))


def test_a_format_we_do_not_check_is_refused_loudly() -> None:
    with pytest.raises(LookupError, match="email"):
        quickschema.format_checker({"date", "email"})


def test_an_invalid_timestamp_is_still_an_error_with_the_same_message() -> None:
    doc = {
        "kind": "Snapshot",
        "apiVersion": formats.V1ALPHA1,
        "measurements": [],
        "metadata": {"timestamp": "2026-11-27T25:00:00Z"},
    }
    assert problems(doc) == ["$.metadata.timestamp: '2026-11-27T25:00:00Z' is not a 'date-time'"]
    doc["metadata"]["timestamp"] = "2026-11-27t06:00:00.5z"  # lower case, as jsonschema allows
    assert problems(doc) == []


def _corpus() -> list[str]:
    """Values around the edges of both formats: each field broken in turn, calendar corners, case, odd digits."""
    good = [
        "2026-11-27T06:00:00Z",
        "2026-11-27T06:00:00.123456+05:30",
        "1999-12-31T23:59:59-23:59",
        "2024-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "0001-01-01T00:00:00Z",
    ]
    out = list(good)
    for g in good:
        for i in range(len(g)):
            for c in "0 9:T-Z.x\n٣":
                out.append(g[:i] + c + g[i + 1 :])
            out.append(g[:i] + g[i + 1 :])
        out += [g.lower(), g + "\n", g + "\n\n", " " + g, g + " ", g.replace("T", " "), g[:10]]
    out += [
        "1900-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T23:60:00Z",
        "2026-11-27T23:59:60Z",
        "2026-11-27T06:00:00+24:00",
        "2026-11-27T06:00:00.Z",
        "2026-11-27T06:00:00",
        "20261127",
        "2026-W48-5",
        "2026-331",
        "2026-1-1",
        "2026-12-31",
        "2024-02-29",
        "2023-02-29",
        "0000-01-01",
        "2026-13-01",
        "2026-00-10",
        "",
        "ſ",
        "2026-11-27ſ",
        "２０２６-１１-２７",
        "2026-11-27T06:00:00ſ",
        "2026-11-27T06:00:00Z\r",
    ]
    return out


def test_format_verdicts_are_jsonschemas_own() -> None:
    """Our checks against jsonschema's full FORMAT_CHECKER, in an interpreter where nothing was blocked."""
    values = _corpus()
    code = (
        "import json, sys\nfrom jsonschema import Draft202012Validator as V\nvalues = json.load(sys.stdin)\n"
        "assert {'date', 'date-time'} <= set(V.FORMAT_CHECKER.checkers)\n"
        "print(json.dumps({f: [V.FORMAT_CHECKER.conforms(v, f) for v in values] for f in ('date', 'date-time')}))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(values), capture_output=True, text=True, timeout=60, env=ENV
    )
    assert r.returncode == 0, r.stderr
    theirs: dict[str, list[bool]] = json.loads(r.stdout)
    for fmt, verdicts in theirs.items():
        ours = [quickschema.FORMATS[fmt](v) for v in values]
        wrong = [(v, o) for v, o, t in zip(values, ours, verdicts) if o != t]
        assert not wrong, (fmt, wrong)
        assert any(verdicts) and not all(verdicts)


#: Runs the real entry point; at exit, prints the modules it loaded and any name left unimportable (None).
_RUN = """import atexit, json, sys
def report():
    loaded = sorted(k for k, v in sys.modules.items() if v is not None)
    left_blocked = sorted(k for k, v in sys.modules.items() if v is None and '.' not in k)
    sys.__stderr__.write('MODULES ' + json.dumps([loaded, left_blocked]) + '\\n')
atexit.register(report)
from kubectl_aicr.cli import main
main(sys.argv[1:])
"""


def _imported(*args: str, stdin: bytes | None = None) -> tuple[set[str], subprocess.CompletedProcess[bytes]]:
    """The modules ``kubectl-aicr ARGS`` loaded (checked to leave no name blocked behind), and the process."""
    r = subprocess.run([sys.executable, "-c", _RUN, *args], input=stdin, capture_output=True, env=ENV, timeout=120)
    line = [ln for ln in r.stderr.decode().splitlines() if ln.startswith("MODULES ")][-1]
    loaded, left_blocked = json.loads(line[len("MODULES ") :])
    assert not set(left_blocked) & set(UNUSED_FORMAT_MODULES), left_blocked
    return set(loaded), r


UNUSED = {*UNUSED_FORMAT_MODULES, "arrow", "webcolors", "urllib.request", "http.client"}


def test_validating_a_valid_snapshot_imports_no_jsonschema_and_no_format_library() -> None:
    names, r = _imported("validate", str(ROOT / "tests" / "fixtures" / "snapshots" / "original-h100.yaml"))
    assert r.returncode == 0, r.stderr
    assert "kubectl_aicr.quickschema" in names  # the walk did see the validation
    assert not {n for n in names if n.split(".")[0] == "jsonschema"} and not names & UNUSED


def test_validating_an_invalid_snapshot_uses_jsonschema_without_unused_format_libraries() -> None:
    doc: dict[str, Any] = {
        "kind": "Snapshot",
        "apiVersion": formats.V1ALPHA1,
        "measurements": [],
        "metadata": {"timestamp": "yesterday"},
    }
    names, r = _imported("validate", "-", stdin=json.dumps(doc).encode())
    assert r.returncode == 2 and "$.metadata.timestamp: 'yesterday' is not a 'date-time'" in r.stderr.decode()
    assert "jsonschema._format" in names
    assert not names & (UNUSED - {"urllib.request", "http.client"}), names & UNUSED
