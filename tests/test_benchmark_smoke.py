"""Smoke test of the microbenchmark: every row of a tiny twinray run is a positive figure or n/a."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import microbenchmark, table


@pytest.mark.timeout(60)
def test_smoke_run_reports_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`main(--systems twinray --smoke --json PATH)` writes a figure or "n/a" for every row."""
    out = tmp_path / "results.json"
    assert microbenchmark.main(["--systems", "twinray", "--smoke", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = data["systems"]["twinray"]["rows"]
    assert set(rows) == set(microbenchmark.ROW_KEYS)
    for key, entry in rows.items():
        value = entry["value"]
        if isinstance(value, str):
            assert value.startswith("n/a"), f"{key}: {value}"
        else:
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, key
    table = capsys.readouterr().out
    for row in microbenchmark.ROWS:
        assert row.label.format(**data["params"]) in table


def test_ratio_is_above_one_when_twinray_is_better() -> None:
    """Rates compare twinray/peer and time-like rows peer/twinray."""
    rate = next(r for r in microbenchmark.ROWS if r.key == "tasks_sync")
    latency = next(r for r in microbenchmark.ROWS if r.key == "task_latency_p50")
    assert table._ratio(rate, 200.0, 100.0) == "2.00x"
    assert table._ratio(latency, 50.0, 100.0) == "2.00x"
    assert table._ratio(latency, 50.0, "n/a") == "-"
