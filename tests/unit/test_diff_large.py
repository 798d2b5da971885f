"""Two realistic 5 MB snapshots (from bench/bench_diff.py): reading and diffing them gives the exact expected result.

How fast that is lives in ``bench/bench_diff.py``, which prints the figure, the goal and the ratio. A test only
checks what makes it fast and can be counted: each input is parsed exactly once on the way in.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from kubectl_aicr import snapshot_io
from kubectl_aicr.diff import diff_snapshots
from kubectl_aicr.diff import render as diff_render

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_diff.py"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_diff", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_two_5mb_snapshots_are_parsed_once_each_and_diff_exactly(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _bench()
    base = bench.make_snapshot(1, 5.0)
    current = bench.later_run(base)
    paths = []
    for name, doc in (("base", base), ("current", current)):
        path = tmp_path / f"{name}.{fmt}"
        path.write_text(snapshot_io.dumps(doc, fmt))
        assert 4.5e6 < path.stat().st_size < 7e6
        paths.append(path)

    parsed: list[str] = []
    real_parse = snapshot_io.parse_document

    def counting_parse(raw: bytes, **kwargs: Any) -> Any:
        parsed.append(str(kwargs.get("source")))
        return real_parse(raw, **kwargs)

    monkeypatch.setattr(snapshot_io, "parse_document", counting_parse)
    docs = [snapshot_io.load(snapshot_io.parse_location(str(p))) for p in paths]
    assert parsed == [str(p) for p in paths]  # one parse per input, validation works on that same tree

    result = diff_snapshots(docs[0], docs[1])
    assert result.summary() == {"added": 10, "removed": 1, "changed": 43, "ignored": 10123}
    assert [c.path for c in result.changes if c.scope != "key"] == ["GPU/gpu-7", "SystemD/unit-050.service"]
    assert "~ driver: 570.86.15 -> 575.51.03" in diff_render.render_text(result)
