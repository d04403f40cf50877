"""Tests of the report generator: markdown plus PNGs from real sim runs and partial metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.report import (
    comparison_rows,
    plot_scaling,
    plot_sweep,
    relative_difference,
    write_comparison,
    write_report,
)
from sim.runner import run_scenario
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_metrics() -> dict:
    scenario = load_scenario(
        ROOT / "scenarios" / "small_independent.yaml", {"workload.tasks": "300"}
    )
    return run_scenario(scenario)


def _linked_pngs(report: Path) -> set[str]:
    return set(re.findall(r"\]\(([^)]+\.png)\)", report.read_text()))


def test_report_from_a_sim_run_links_every_png(small_metrics: dict, tmp_path: Path) -> None:
    report = write_report(small_metrics, tmp_path, "small_independent (sim)")
    assert report == tmp_path / "report.md"
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert {"throughput.png", "latency.png", "utilization.png", "bytes.png"} <= pngs
    assert _linked_pngs(report) == pngs
    for png in pngs:
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert "# small_independent (sim)" in text and "| throughput |" in text


def test_report_notes_absent_fields_and_draws_optional_ones(tmp_path: Path) -> None:
    sparse = {"tasks": 3, "makespan_s": 1.0, "throughput_tps": 3.0}
    text = write_report(sparse, tmp_path / "a", "sparse").read_text()
    assert "Not recorded in this run" in text and "throughput over time" in text
    assert not list((tmp_path / "a").glob("*.png"))

    rich = {
        "tasks": 4,
        "latency_s": {"p50": 0.001, "p90": 0.002, "p99": 0.003, "max": 0.004},
        "utilization": {"CPU": 0.5, "GPU": 0.25},
        "node_utilization": {"CPU": [0.4, 0.6], "GPU": [0.5, 0.0]},
        "queues": {
            "bin_s": 0.1,
            "global_scheduler": [0, 2, 1],
            "gcs": [1, 1, 0],
            "raylet_tasks": [[1, 2, 3], [0, 1, 0]],
        },
        "bytes_series": {"bin_s": 0.1, "bytes": [0, 1024, 4096]},
        "faults": [{"at_s": 1.0, "kill": "node", "node": 3}],
    }
    report = write_report(rich, tmp_path / "b", "rich")
    assert {"queues.png", "bytes.png", "utilization.png"} <= _linked_pngs(report)
    assert "faults" in report.read_text()


def test_comparison_table_and_plots(small_metrics: dict, tmp_path: Path) -> None:
    real = dict(small_metrics, throughput_tps=small_metrics["throughput_tps"] * 2)
    rows = {label: diff for label, _, _, diff in comparison_rows(small_metrics, real)}
    assert rows["throughput (tasks/s)"] == pytest.approx(-0.5)
    assert rows["latency p50 (s)"] == pytest.approx(0.0)
    assert relative_difference(1.0, 0.0) is None
    path = write_comparison(small_metrics, real, tmp_path, "small")
    assert _linked_pngs(path) == {p.name for p in tmp_path.glob("compare_*.png")}
    assert "-50.0 %" in path.read_text()


def test_scaling_plot(tmp_path: Path) -> None:
    path = plot_scaling(
        [10, 20],
        {"sim": [1.0, 2.0], "paper": [1.1, None]},
        tmp_path / "s.png",
        title="t",
        xlabel="nodes",
        ylabel="tasks/s",
    )
    assert path.stat().st_size > 0


def test_sim_trace_has_one_event_per_task_within_the_slots(tmp_path: Path) -> None:
    import json

    from sim.report import TaskTracer
    from sim.runner import build

    scenario = load_scenario(
        ROOT / "scenarios" / "small_independent.yaml", {"workload.tasks": "200"}
    )
    sim = build(scenario)
    tracer = TaskTracer().attach(sim)
    metrics = sim.run()
    data = json.loads(tracer.write(tmp_path / "trace.json").read_text())
    events = data["traceEvents"]
    assert len(events) == metrics["tasks"] == 200
    assert {e["ph"] for e in events} == {"X"}
    assert max(e["tid"] for e in events) < scenario.cluster.cpus_per_node
    assert run_scenario(scenario) == metrics  # observing does not change the run


def test_cli_writes_report_and_trace(tmp_path: Path) -> None:
    from sim.cli import main

    code = main(
        [
            str(ROOT / "scenarios" / "chain.yaml"),
            "--trace",
            "--out",
            str(tmp_path),
            "--set",
            "workload.length=5",
        ]
    )
    assert code == 0
    base = tmp_path / "chain"
    assert {"metrics.json", "report.md", "trace.json", "throughput.png"} <= {
        p.name for p in base.iterdir()
    }


def test_sweep_rows_become_scaling_plots(tmp_path: Path) -> None:
    rows = [
        {
            "cluster.nodes": n,
            "throughput_tps": 100.0 * int(n),
            "latency_p50_s": 0.001,
            "latency_p99_s": 0.002,
            "cpu_utilization": 0.5,
        }
        for n in ("2", "4", "8")
    ]
    lines = plot_sweep(rows, ["cluster.nodes"], tmp_path)
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert "sweep_throughput_tps.png" in pngs
    assert set(re.findall(r"\]\(([^)]+\.png)\)", "\n".join(lines))) == pngs
    grid = [dict(r, **{"scheduler.policy": p}) for r in rows for p in ("random", "bottom_up")]
    assert plot_sweep(grid, ["scheduler.policy", "cluster.nodes"], tmp_path / "g")


def test_ray_paper_benchmark_writes_its_report(tmp_path: Path) -> None:
    from benchmarks.ray_paper import main

    args = ["--only", "scalability", "fault_tolerance", "--quick", "--nodes", "2", "4"]
    assert main([*args, "--tasks-per-node", "200", "--out", str(tmp_path)]) == 0
    report = tmp_path / "report.md"
    assert _linked_pngs(report) == {"scalability.png", "fault_tolerance.png"}
    assert "1.8 million" in report.read_text()
    assert (tmp_path / "fault_tolerance" / "report.md").exists()
