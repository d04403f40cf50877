"""Smoke test of the node-transfer benchmark: a tiny twinray run prints and writes its figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import node_transfer


@pytest.mark.timeout(120)
def test_tiny_twinray_run_reports_positive_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "transfer.json"
    argv = ["--systems", "twinray", "--smoke", "--count", "50", "--json", str(out)]
    assert node_transfer.main(argv) == 0
    data = json.loads(out.read_text())
    figures = data["systems"]["twinray"]["figures"]
    assert (
        data["params"]["count"] == 50 and len(data["systems"]["twinray"]["samples"]["big_s"]) == 2
    )
    for value in figures.values():
        assert math.isfinite(value) and value > 0
    table = capsys.readouterr().out
    assert "4 MiB get" in table and "50 x 10000 B" in table


def test_unknown_system_is_refused() -> None:
    with pytest.raises(SystemExit):
        node_transfer.main(["--systems", "dask"])
