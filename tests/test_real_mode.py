"""Tests of running scenarios on real workers: fitting to the machine, metrics schema, CLI modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim.metrics import MetricsRecorder
from sim.scenario import load_scenario
from twin.cli import main
from twin.real_mode import RealModeRefused, fit_to_machine, run_real, work

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "scenarios" / "small_independent.yaml"
CHAIN = ROOT / "scenarios" / "chain.yaml"


@pytest.fixture(autouse=True)
def no_leftovers():
    before = set(os.listdir("/dev/shm"))
    yield
    assert set(os.listdir("/dev/shm")) <= before
    import runtime

    assert not runtime.is_initialized()


def test_a_cluster_larger_than_the_machine_is_refused_with_a_clear_message() -> None:
    scenario = load_scenario(SMALL)
    with pytest.raises(RealModeRefused, match=r"4 node\(s\) x 4 CPUs = 16 CPUs.*--scale-down"):
        fit_to_machine(scenario, scale_down=False, cpus=2)


def test_unsupported_workloads_and_faults_are_refused() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "ray_paper" / "fault_tolerance.yaml")
    with pytest.raises(RealModeRefused, match="fault"):
        fit_to_machine(scenario, scale_down=True, cpus=2)


def test_scale_down_maps_onto_one_node_and_keeps_the_work() -> None:
    scenario = load_scenario(SMALL)
    fit = fit_to_machine(scenario, scale_down=True, cpus=2)
    assert fit.cpus == 2 and "scaled down" in fit.note
    cluster, workload = fit.scenario.cluster, fit.scenario.workload
    assert (cluster.nodes, cluster.cpus_per_node, workload.drivers) == (1, 2, 1)
    assert workload.tasks == scenario.workload.tasks
    assert workload.window == scenario.workload.window * scenario.workload.drivers


def test_a_fitting_scenario_is_unchanged() -> None:
    scenario = load_scenario(
        SMALL, {"cluster.nodes": "1", "cluster.cpus_per_node": "2", "workload.drivers": "1"}
    )
    fit = fit_to_machine(scenario, scale_down=False, cpus=2)
    assert fit.scenario is scenario and fit.note == ""


def test_task_body_returns_the_drawn_size() -> None:
    assert work(0.0, 10) == bytes(10)
    assert work(1e-4, 200_000).nbytes == 200_000


def test_real_run_has_the_sim_schema() -> None:
    scenario = load_scenario(
        SMALL, {"workload.tasks": "40", "workload.duration_ms": "{dist: constant, value: 0.5}"}
    )
    fit = fit_to_machine(scenario, scale_down=True, cpus=2)
    metrics = run_real(fit.scenario, fit.cpus)
    expected = set(MetricsRecorder().summary(1.0, 1))
    assert expected <= set(metrics)
    assert metrics["tasks"] == 40 and metrics["world"] == "real"
    assert metrics["makespan_s"] > 0 and metrics["latency_s"]["p50"] > 0
    assert sum(metrics["throughput_series"]["counts"]) == 40


def test_cli_both_writes_side_by_side_reports(tmp_path: Path, capsys) -> None:
    code = main(
        [
            str(CHAIN),
            "--mode",
            "both",
            "--scale-down",
            "--out",
            str(tmp_path),
            "--set",
            "workload.length=5",
            "--set",
            "workload.output_bytes=200000",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "scaled down" in out and "sim vs real" in out
    base = tmp_path / "chain"
    for path in (
        "real/metrics.json",
        "real/report.md",
        "sim/metrics.json",
        "sim/report.md",
        "comparison.md",
        "report.md",
        "compare_latency.png",
        "real/trace.json",
    ):
        assert (base / path).exists(), path


def test_cli_real_refuses_without_scale_down(tmp_path: Path, capsys) -> None:
    code = main([str(SMALL), "--mode", "real", "--out", str(tmp_path)])
    assert code == 2
    assert "--scale-down" in capsys.readouterr().err


# --- every workload kind ------------------------------------------------------------------

SCENARIOS = ROOT / "scenarios"
TINY: dict[str, tuple[str, dict[str, str], int | None]] = {
    "tree": (
        "tree.yaml",
        {"workload.trees": "2", "workload.leaves": "8", "workload.output_bytes": "200000"},
        2 * (8 + 2 + 1),
    ),
    "shuffle": (
        "shuffle.yaml",
        {"workload.maps": "4", "workload.reduces": "3", "workload.rounds": "1"},
        2 * (4 + 3),  # rounds per driver: the scenario's 2 drivers' rounds
    ),
    "graph": ("graph.yaml", {"workload.repeats": "2"}, 2 * 2 * 7),
    "actors": ("actors.yaml", {"workload.actors": "3", "workload.calls": "10"}, 2 * 10),
    "rl": ("rl.yaml", {"workload.iterations": "3"}, 3 * (1 + 1)),
    "parameter_server": (
        "parameter_server.yaml",
        {"workload.iterations": "3", "workload.workers": "4", "workload.update_ms": "1"},
        3 * (4 + 1),
    ),
    "hyperparameter_search": (
        "hyperparameter_search.yaml",
        {"workload.trials": "6", "workload.epochs": "4", "workload.concurrent_trials": "3"},
        None,  # early stopping depends on the order results arrive in
    ),
    "stream": (
        "stream.yaml",
        {"workload.producers": "3", "workload.items": "4", "workload.item_bytes": "200000"},
        3 * (1 + 4),
    ),
}
"""Kind -> (scenario, overrides for a tiny run, tasks expected in both worlds)."""


@pytest.mark.parametrize("kind", sorted(TINY))
def test_every_workload_kind_runs_on_real_workers_with_the_sim_schema(kind: str) -> None:
    from twin.real_mode import _sim

    name, overrides, tasks = TINY[kind]
    fast = {"workload.duration_ms": "2"} if kind != "graph" else {}
    scenario = load_scenario(SCENARIOS / name, {**overrides, **fast})
    assert scenario.workload.kind == kind
    fit = fit_to_machine(scenario, scale_down=True, cpus=2)
    real = run_real(fit.scenario, fit.cpus, resources=fit.resources)
    sim = _sim(fit.scenario)
    assert set(sim) <= set(real), set(sim) - set(real)
    assert real["world"] == "real"
    assert real["tasks"] > 0 and real["makespan_s"] > 0 and real["latency_s"]["p50"] > 0
    assert 0 < real["cpu_utilization"] <= 1.0
    if tasks is not None:
        assert real["tasks"] == sim["tasks"] == tasks
    else:
        assert 6 <= real["tasks"] <= 6 * 4


def test_gpu_requests_are_refused_unless_scaled_down_then_mapped_to_cpus() -> None:
    one_node = {"cluster.nodes": "1", "cluster.cpus_per_node": "2", "cluster.gpus_per_node": "1"}
    scenario = load_scenario(SCENARIOS / "hyperparameter_search.yaml", one_node)
    with pytest.raises(RealModeRefused, match="GPUs.*CPUs only.*--scale-down"):
        fit_to_machine(scenario, scale_down=False, cpus=2)
    fit = fit_to_machine(scenario, scale_down=True, cpus=2)
    workload = fit.scenario.workload
    assert "GPU requests mapped to CPU" in fit.note
    assert (workload.num_gpus, workload.num_cpus) == (0.0, 1.0)
    assert workload.duration_ms == scenario.workload.gpu_duration_ms  # GPU epochs' model


def test_scale_down_maps_a_graph_files_gpus_and_cuts_actors_to_fit() -> None:
    from sim.scenario import read_task_graph

    fit = fit_to_machine(load_scenario(SCENARIOS / "graph.yaml"), scale_down=True, cpus=2)
    tasks = read_task_graph(Path(fit.scenario.workload.file))
    assert not any(t.get("num_gpus") for t in tasks) and "graph_pipeline.json" in fit.note
    fit = fit_to_machine(load_scenario(SCENARIOS / "rl.yaml"), scale_down=True, cpus=2)
    assert fit.scenario.workload.rollout_actors == 1 and "rollout_actors 32 -> 1" in fit.note
    fit = fit_to_machine(load_scenario(SCENARIOS / "parameter_server.yaml"), True, cpus=2)
    assert "iterations 40 ->" in fit.note  # the time budget


def test_cli_both_runs_a_graph_workload(tmp_path: Path, capsys) -> None:
    args = [str(SCENARIOS / "tree.yaml"), "--mode", "both", "--scale-down", "--out", str(tmp_path)]
    overrides = ["workload.trees=2", "workload.leaves=16", "workload.duration_ms=2"]
    code = main(args + [x for o in overrides for x in ("--set", o)])
    assert code == 0
    out = capsys.readouterr().out
    assert "scaled down" in out and "sim vs real" in out
    assert (tmp_path / "tree" / "comparison.md").exists()


# --- calibration ---------------------------------------------------------------------------


def _write_profile(path: Path) -> Path:
    path.write_text(
        "measured: {noop_tps: 1000.0}\n"
        "control_plane: {owner_us: 30.0, raylet_us: 50.0, global_scheduler_us: 100.0,"
        " gcs_us: 100.0, per_kib_us: 0.1}\n"
        "network: {local_latency_us: 40.0}\n"
    )
    return path


def test_a_profile_supplies_control_plane_defaults_and_explicit_fields_win(tmp_path) -> None:
    _write_profile(tmp_path / "prof.yaml")
    scenario_file = tmp_path / "s.yaml"
    scenario_file.write_text(
        "name: s\ncontrol_plane: {profile: prof.yaml, raylet_us: 7}\nnetwork: {link_latency_us: 9}\n"
    )
    scenario = load_scenario(scenario_file)
    plane, net = scenario.control_plane, scenario.network
    assert (plane.owner_us, plane.raylet_us, plane.gcs_us) == (30.0, 7.0, 100.0)
    assert (net.local_latency_us, net.link_latency_us) == (40.0, 9.0)
    assert plane.profile == str(tmp_path / "prof.yaml")
    over = load_scenario(scenario_file, {"control_plane.owner_us": "1"})
    assert over.control_plane.owner_us == 1.0


def test_a_missing_profile_is_a_clear_scenario_error(tmp_path) -> None:
    from sim.scenario import ScenarioError

    scenario_file = tmp_path / "s.yaml"
    scenario_file.write_text("name: s\ncontrol_plane: {profile: nowhere.yaml}\n")
    with pytest.raises(ScenarioError, match="control_plane.profile.*--calibrate"):
        load_scenario(scenario_file)


def test_fit_recovers_known_costs_from_simulated_measurements() -> None:
    from sim.runner import run_scenario
    from twin.calibrate import BASE_COSTS_US, CHAIN, NOOP, _scenario, fit

    truth = {k: v * 10 for k, v in BASE_COSTS_US.items()} | {"local_latency_us": 50.0}
    noop = run_scenario(_scenario(NOOP, 2, truth))["throughput_tps"]
    chain = run_scenario(_scenario(CHAIN, 2, truth))["throughput_tps"]
    fitted = fit(2, noop, chain)
    assert fitted["owner_us"] == pytest.approx(truth["owner_us"], rel=0.05)
    assert fitted["local_latency_us"] == pytest.approx(50.0, rel=0.1)


def test_profile_task_overhead_lengthens_simulated_tasks(tmp_path) -> None:
    from sim.runner import run_scenario
    from twin.real_mode import _sim

    profile = _write_profile(tmp_path / "prof.yaml")
    with profile.open("a") as fh:
        fh.write("task_overhead: {per_task_ms: 0.5, stored_output_ms: 1.0}\n")
    overrides = {"control_plane.profile": str(profile), "workload.length": "10"}
    scenario = load_scenario(CHAIN, overrides)
    assert scenario.control_plane.task_overhead_us == 500
    assert scenario.control_plane.store_put_us_per_mib == 1000
    without = load_scenario(
        CHAIN,
        {
            **overrides,
            "control_plane.task_overhead_us": "0",
            "control_plane.store_put_us_per_mib": "0",
        },
    )
    plain = run_scenario(without)
    longer = run_scenario(scenario)
    # chain tasks output 1 MiB each, stored: each of the 10 links holds its slot 1.5 ms longer
    assert longer["makespan_s"] - plain["makespan_s"] >= 10 * 1.5e-3 * 0.99
    assert _sim(scenario) == longer
