"""Two realistic 5 MB snapshots (from bench/bench_diff.py) compare in under a second: parse, validate and diff."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_aicr import diff_render, snapshot_io
from kubectl_aicr.diff import diff_snapshots
from kubectl_aicr.schema import validate

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_diff.py"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_diff", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_two_5mb_snapshots_compare_in_under_a_second(fmt: str) -> None:
    bench = _bench()
    base = bench.make_snapshot(1, 5.0)
    current = bench.later_run(base)
    raws = [snapshot_io.dumps(d, fmt).encode() for d in (base, current)]
    assert all(4.5e6 < len(r) < 7e6 for r in raws)
    validate(base, source="warm-up")  # the compiled validator is built once per process

    def run() -> Any:
        docs = [validate(snapshot_io.parse_document(r, source=fmt), source=fmt) for r in raws]
        return diff_snapshots(docs[0], docs[1])

    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - t0)
    assert result.summary() == {"added": 10, "removed": 1, "changed": 43, "ignored": 10123}
    assert [c.path for c in result.changes if c.scope != "key"] == ["GPU/gpu-7", "SystemD/unit-050.service"]
    assert "~ driver: 570.86.15 -> 575.51.03" in diff_render.render_text(result)
    assert min(timings) < 1.0, f"parse+validate+diff of two 5 MB {fmt} snapshots took {min(timings):.2f}s"
