"""Smoke test of the serving scaling study: rows, report and plots for a tiny grid."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import serving_scaling


def test_study_writes_a_row_per_cell_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "serving"
    args = ["--replicas", "2", "8", "--batch", "1", "16", "--requests", "400", "--out", str(out)]
    assert serving_scaling.main(args) == 0
    rows = json.loads((out / "scaling.json").read_text())["rows"]
    assert [(r["replicas"], r["max_batch_size"]) for r in rows] == [
        (2, 1),
        (2, 16),
        (8, 1),
        (8, 16),
    ]
    assert all(r["requests"] == 400 for r in rows)
    by = {(r["replicas"], r["max_batch_size"]): r for r in rows}
    # 2 replicas without batching fall behind 3000 req/s; batching or more replicas keep up
    assert by[(2, 1)]["p99_s"] > by[(2, 16)]["p99_s"]
    assert by[(2, 1)]["p99_s"] > by[(8, 1)]["p99_s"]
    assert by[(2, 16)]["mean_batch_size"] > 1
    text = (out / "report.md").read_text()
    assert "| 8 | 16 |" in text
    assert (out / "p99.png").stat().st_size > 0 and (out / "throughput.png").stat().st_size > 0
