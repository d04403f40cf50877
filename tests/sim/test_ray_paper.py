"""The Ray paper benchmark's quick variant: every section runs and shows the paper's shapes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from sim import fast
from sim.collectives import ring_calls
from sim.runner import build
from sim.scenario import ObjectStoreSpec, ScenarioError, load_scenario
from sim.store import put_seconds

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of one `--quick` run of every section."""
    from benchmarks.ray_paper import main

    out = tmp_path_factory.mktemp("ray_paper")
    assert main(["--quick", "--out", str(out)]) == 0
    return out


def _json(out: Path, name: str) -> Any:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


def test_report_links_every_section_plot(quick: Path) -> None:
    text = (quick / "report.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)]+\.png)\)", text))
    assert linked == {
        "scalability.png",
        "object_store.png",
        "gcs_fault_tolerance.png",
        "gcs_flushing.png",
        "fault_tolerance.png",
        "actor_reconstruction.png",
        "allreduce.png",
        "simulation.png",
    }
    assert all((quick / name).exists() for name in linked)
    for figure in (
        "Fig. 8b",
        "Fig. 9",
        "Fig. 10a",
        "Fig. 10b",
        "Fig. 11a",
        "Fig. 11b",
        "Fig. 12a",
        "Table 4",
    ):
        assert figure in text


def test_iops_falls_and_throughput_rises_with_object_size(quick: Path) -> None:
    rows = _json(quick, "object_store")["by_size"]
    iops = [r["iops"] for r in rows]
    gbps = [r["gbps"] for r in rows]
    assert iops == sorted(iops, reverse=True) and iops[0] > 2 * iops[-1]
    assert gbps == sorted(gbps) and gbps[-1] > 100 * gbps[0]


def test_gcs_flushing_bounds_memory(quick: Path) -> None:
    runs = _json(quick, "gcs_flushing")
    no_flush, flush = runs["no_flush"], runs["flush"]
    assert no_flush["full_at_s"] is not None and no_flush["stalled_s"] > 0
    assert no_flush["peak_mb"] == pytest.approx(no_flush["capacity_mb"])
    assert flush["full_at_s"] is None and flush["stalled_s"] == 0
    assert flush["peak_mb"] < no_flush["peak_mb"] / 2
    assert flush["records_flushed"] > 0


def test_gcs_chain_survives_kills_without_losing_a_write(quick: Path) -> None:
    runs = _json(quick, "gcs_fault_tolerance")
    for mode in ("process", "machine"):
        r = runs[mode]
        assert r["lost_writes"] == 0 and r["stale_reads"] == 0
        assert len(r["removals"]) == 2 and len(r["final_members"]) == 2
        assert r["steady_ms"] < r["max_ms"]
    # a lost machine is found by the heartbeat timeout (10 ms), a refused connection at once
    assert runs["process"]["max_ms"] < 5.0 < runs["machine"]["max_ms"] < 30.0


def test_allreduce_time_grows_with_size_and_injected_delay(quick: Path) -> None:
    result = _json(quick, "allreduce")
    by_size = [r["ms"] for r in result["by_size"]]
    by_delay = [r["ms"] for r in result["by_delay"]]
    assert by_size == sorted(by_size) and by_size[-1] > by_size[0]
    assert by_delay[-1] > by_delay[0]


def test_async_rollouts_beat_bulk_synchronous_under_heterogeneity(quick: Path) -> None:
    rows = _json(quick, "simulation")["rows"]
    one, many = rows[0], rows[-1]
    assert one["cpus"] == 1 and many["cpus"] > 1
    assert one["ray_steps_s"] == pytest.approx(one["mpi_steps_s"], rel=0.01)
    assert many["ray_steps_s"] > 1.1 * many["mpi_steps_s"]


def test_heterogeneous_scalability_section_ran(quick: Path) -> None:
    data = _json(quick, "scalability")
    assert data["heterogeneous"] and all(r["throughput_tps"] > 0 for r in data["heterogeneous"])


def test_full_adds_the_papers_own_point_at_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--full` runs the paper's rightmost point (100M tasks, 100 nodes: here made small)
    empty and heterogeneous, and reports it beside the paper's 54 s."""
    from benchmarks import ray_paper

    monkeypatch.setattr(ray_paper, "FULL_NODES", 3)
    monkeypatch.setattr(ray_paper, "FULL_TASKS", 900)
    args = ["--quick", "--full", "--only", "scalability", "--out", str(tmp_path)]
    assert ray_paper.main(args) == 0
    full = _json(tmp_path, "scalability")["full"]
    assert [(r["nodes"], r["tasks"]) for r in full] == [(3, 900), (3, 900)]
    assert all(r["wall_s"] > 0 and r["peak_rss_mib"] > 0 for r in full)
    text = (tmp_path / "sections" / "scalability.md").read_text(encoding="utf-8")
    assert "At the paper's own size" in text and "heterogeneous (lognormal" in text
    # both full-size runs are drawn (as stars) though 3 nodes is not a point of the sweep
    import matplotlib.axes

    drawn: list[str] = []
    real_plot = matplotlib.axes.Axes.plot

    def spy(self: matplotlib.axes.Axes, *args: object, **kwargs: object) -> object:
        drawn.append(f"{kwargs.get('label')} x={list(args[0])}")  # type: ignore[call-overload]
        return real_plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    assert ray_paper.main(args) == 0
    stars = [d for d in drawn if "at the paper's size (900 tasks)" in d]
    assert len(stars) == 2 and all(d.endswith("x=[3]") for d in stars), drawn
    plain = ray_paper.main(["--quick", "--only", "scalability", "--out", str(tmp_path)])
    assert plain == 0 and _json(tmp_path, "scalability")["full"] == []


def test_only_reruns_one_section_and_keeps_the_others(quick: Path) -> None:
    from benchmarks.ray_paper import main

    before = (quick / "sections" / "object_store.md").read_text(encoding="utf-8")
    assert main(["--quick", "--only", "simulation", "--out", str(quick)]) == 0
    report = (quick / "report.md").read_text(encoding="utf-8")
    assert before in report and "Table 4" in report


def test_put_cost_model() -> None:
    store = ObjectStoreSpec(
        put_overhead_us=50, copy_gbps=2.0, memory_gbps=10.0, threads_min_bytes=1000
    )
    assert put_seconds(store, 100, 8) == pytest.approx(50e-6 + 100 / 2e9)  # one thread
    assert put_seconds(store, 10**9, 2) == pytest.approx(50e-6 + 10**9 / 4e9)
    assert put_seconds(store, 10**9, 8) == pytest.approx(50e-6 + 10**9 / 10e9)  # memory cap
    assert put_seconds(ObjectStoreSpec(), 10**9, 8) == 0.0  # the default costs nothing


def test_allreduce_runs_every_ring_call_and_places_one_actor_per_node() -> None:
    scenario = load_scenario(
        ROOT / "scenarios" / "ray_paper" / "allreduce.yaml",
        {"cluster.nodes": "4", "workload.actors": "4", "workload.chunks": "2",
         "workload.bytes": "4000000"},
    )  # fmt: skip
    sim = build(scenario)
    metrics = sim.run()
    assert metrics["tasks"] == 2 * ring_calls(4, 2)
    assert len(sim.drivers[0].program.round_times) == 2
    assert sorted(rec.node for rec in sim.gcs.actor_table().values()) == [0, 1, 2, 3]


def test_bad_paper_fields_are_refused_by_name() -> None:
    path = ROOT / "scenarios" / "ray_paper" / "allreduce.yaml"
    with pytest.raises(ScenarioError, match="workload.actors"):
        load_scenario(path, {"workload.actors": "1"})
    with pytest.raises(ScenarioError, match="does not use duration_ms"):
        load_scenario(
            ROOT / "scenarios" / "ray_paper" / "object_store.yaml", {"workload.duration_ms": "5"}
        )
    with pytest.raises(ScenarioError, match="does not use output_bytes"):
        load_scenario(path, {"workload.output_bytes": "5"})
    with pytest.raises(ScenarioError, match="gcs_memory.capacity_mb"):
        load_scenario(
            ROOT / "scenarios" / "ray_paper" / "gcs_flushing.yaml", {"gcs_memory.capacity_mb": "0"}
        )


def test_steady_throughput_leaves_out_ramp_and_tail() -> None:
    from benchmarks.ray_paper import steady_tps

    counts = [10] * 100 + [1] * 50  # 1,000 tasks in 100 ms at 10/ms, then a slow tail
    metrics = {"throughput_series": {"bin_s": 1e-3, "counts": counts}, "makespan_s": 0.15}
    assert steady_tps(metrics) == pytest.approx(10_000, rel=0.02)
    metrics["throughput_tps"] = 1050 / 0.15
    assert steady_tps(metrics) > metrics["throughput_tps"]


def _first_line_of_a_run(tmp_path: Path, env: dict[str, str]) -> str:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "benchmarks.ray_paper", "--only", "simulation", "--quick"]
    cmd += ["--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()[0]


@pytest.mark.skipif(fast.find_build() is None, reason="no compiled build of this source")
def test_run_as_a_program_it_uses_the_compiled_build(tmp_path: Path) -> None:
    # It once ran pure Python with a build present: the --full point took 4x its time.
    env = {k: v for k, v in os.environ.items() if k != fast.PURE_ENV}
    assert _first_line_of_a_run(tmp_path, env).startswith("simulator: compiled with mypyc")


def test_run_as_a_program_it_says_when_it_runs_pure_python(tmp_path: Path) -> None:
    env = {**os.environ, fast.PURE_ENV: "1"}
    assert _first_line_of_a_run(tmp_path, env).startswith("simulator: pure Python")
