"""The stored Ray run that notebook 12 shows where Ray is not installed: labelled and checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin import stored_run
from twin.stored_run import STORED_RAY_RUN, StoredRunError, load_stored, notebook_fit


def test_the_committed_ray_run_is_of_the_notebooks_scenario() -> None:
    fit = notebook_fit()
    record = load_stored(STORED_RAY_RUN, fit.scenario)
    assert record["ray_version"].startswith("ray 2.")
    assert record["date"] and record["machine"]
    metrics = record["metrics"]
    assert metrics["world"] == "ray" and metrics["tasks"] == 600
    assert metrics["throughput_tps"] > 0 and metrics["latency_s"]["p50"] > 0


def test_without_ray_the_stored_run_is_shown_and_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stored_run, "ray_installed", lambda: False)
    run = stored_run.ray_or_stored(notebook_fit())
    assert not run.live
    assert "Ray is not installed here" in run.label and "pip install 'twinray[peers]'" in run.label
    record = json.loads(STORED_RAY_RUN.read_text(encoding="utf-8"))
    assert record["date"] in run.label and record["machine"] in run.label


def test_a_stored_run_of_another_scenario_or_none_is_refused(tmp_path: Path) -> None:
    fit = notebook_fit()
    with pytest.raises(StoredRunError, match="no stored Ray run"):
        load_stored(tmp_path / "none.json", fit.scenario)
    other = json.loads(STORED_RAY_RUN.read_text(encoding="utf-8"))
    other["scenario"] = "chain (seed 3): chain, 200 tasks, 1 node x 2 CPUs"
    (tmp_path / "other.json").write_text(json.dumps(other), encoding="utf-8")
    with pytest.raises(StoredRunError, match="python -m twin.stored_run"):
        load_stored(tmp_path / "other.json", fit.scenario)
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(StoredRunError, match="missing date"):
        load_stored(tmp_path / "bad.json", fit.scenario)
