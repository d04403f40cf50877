"""`run-scenario --sweep`: parallel points, one table; bad points fail before anything runs."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from sim.cli import main
from sim.sweep import parse_sweeps, points, run_sweep

SMALL = Path(__file__).resolve().parents[2] / "scenarios" / "small_independent.yaml"


def test_points_are_the_cartesian_product_in_order() -> None:
    sweeps = parse_sweeps(["cluster.nodes=2,4", "scheduler.policy=random, centralized"], "f")
    assert points(sweeps) == [
        {"cluster.nodes": "2", "scheduler.policy": "random"},
        {"cluster.nodes": "2", "scheduler.policy": "centralized"},
        {"cluster.nodes": "4", "scheduler.policy": "random"},
        {"cluster.nodes": "4", "scheduler.policy": "centralized"},
    ]


def test_sweep_runs_points_in_processes_and_writes_one_table(tmp_path: Path) -> None:
    overrides = {"output.report_dir": str(tmp_path), "workload.tasks": "200"}
    rows, out = run_sweep(SMALL, overrides, {"cluster.nodes": ["2", "4"]}, processes=2)
    assert [r["cluster.nodes"] for r in rows] == ["2", "4"]
    assert all(r["tasks"] == 200 for r in rows)
    with open(out / "sweep.csv", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [t["cluster.nodes"] for t in table] == ["2", "4"]
    assert float(table[0]["throughput_tps"]) > 0
    sweep_md = (out / "sweep.md").read_text()
    assert sweep_md.startswith("| cluster.nodes | tasks |")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", sweep_md)
    assert images, "a sweep draws scaling plots (metric vs swept parameter)"
    assert all((out / image).is_file() for image in images)


def test_a_bad_sweep_value_fails_before_running(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(SMALL), "--sweep", "cluster.nodes=2,zero"])
    assert code == 2
    err = capsys.readouterr().err
    assert "small_independent.yaml: cluster.nodes: expected an integer, got 'zero'" in err


def test_schema_command_writes_the_schema(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sim.cli

    target = tmp_path / "s.json"
    monkeypatch.setattr(sim.cli, "write_schema", lambda: target.write_text("{}") or target)
    assert main(["--schema"]) == 0
    assert target.read_text() == "{}"
