"""Smoke test of the Tune overhead benchmark: a tiny twinray run prints and writes its figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import tune_overhead


@pytest.mark.timeout(300)
def test_tiny_twinray_run_reports_positive_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tune.json"
    argv = ["--systems", "twinray", "--smoke", "--trials", "4", "--asha-trials", "2"]
    assert tune_overhead.main([*argv, "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["figures"]["twinray"]
    for key in ("once_trials_per_s", "asha_trials_per_s"):
        assert math.isfinite(figures[key]) and figures[key] > 0
    assert figures["once_errors"] == 0 and figures["asha_errors"] == 0
    table = capsys.readouterr().out
    assert "4 trials, one report each" in table and "2-trial ASHA" in table


def test_unknown_system_is_refused() -> None:
    with pytest.raises(SystemExit):
        tune_overhead.main(["--systems", "spark"])
