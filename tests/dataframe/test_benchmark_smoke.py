"""Smoke test of benchmarks/dataframe.py: a tiny CSV through pandas and twinray, results agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pandas")

from benchmarks import dataframe as bench  # noqa: E402


@pytest.mark.timeout(300)
def test_tiny_run_times_every_step_and_results_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "tiny.csv"
    bench.generate(csv, 1)
    out = tmp_path / "figures.json"
    assert bench.main(["--csv", str(csv), "--systems", "pandas,twinray", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["agree"]
    for system in ("pandas", "twinray"):
        times = figures["figures"][system]["times"]
        assert set(times) == {"read_csv", "groupby", "merge", "sort"} and all(
            t > 0 for t in times.values()
        )
    assert "results agree across systems" in capsys.readouterr().out


def test_unknown_system_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--systems", "spark", "--csv", "x.csv"])
