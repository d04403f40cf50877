"""Each workload kind runs to completion with the task counts, transfers and resources it implies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.core.task import ACTOR_METHOD
from sim.drivers import SearchDriver, shuffle_template, tree_template
from sim.runner import build
from sim.scenario import ScenarioError, validate_scenario

HETERO = {
    "groups": [
        {"name": "cpu", "count": 4, "cpus": 4},
        {"name": "gpu", "count": 2, "cpus": 8, "gpus": 2},
    ]
}


def scenario(workload: dict[str, Any], cluster: dict[str, Any] | None = None, **extra: Any) -> Any:
    """A small validated scenario around `workload`."""
    raw = {
        "name": "t",
        "seed": 3,
        "cluster": cluster or HETERO,
        "scheduler": {"report_interval_ms": 10, "spillback_threshold": 1},
        "workload": workload,
        "output": {"progress": False},
        **extra,
    }
    return validate_scenario(raw)


def test_tree_template_reduces_to_one_root() -> None:
    nodes = tree_template(16, 4)
    assert len(nodes) == 16 + 4 + 1
    assert nodes[-1].args == tuple((16 + i, 1) for i in range(4))
    assert len(tree_template(1, 2)) == 1
    assert len(tree_template(5, 2)) == 5 + 3 + 2 + 1


def test_shuffle_template_reads_every_partition() -> None:
    nodes = shuffle_template(3, 2)
    assert [n.num_returns for n in nodes] == [2, 2, 2, 1, 1]
    assert nodes[4].args == ((0, 2), (1, 2), (2, 2))


def test_tree_workload_moves_stored_leaves_to_reducers() -> None:
    sim = build(
        scenario({"kind": "tree", "trees": 4, "leaves": 16, "fan_in": 4, "output_bytes": 1e6})
    )
    metrics = sim.run()
    assert metrics["tasks"] == 4 * 21
    assert metrics["transfers"] > 0 and metrics["bytes_transferred"] % 1_000_000 == 0
    assert sum(metrics["bytes_series"]["bytes"]) == metrics["bytes_transferred"]
    assert all(not o.objects and not o.pending for o in sim.owners)


def test_shuffle_counts_each_map_once_despite_many_returns() -> None:
    work = {"kind": "shuffle", "maps": 6, "reduces": 5, "rounds": 2, "drivers": 2}
    metrics = build(scenario({**work, "output_bytes": 2e5})).run()
    assert metrics["tasks"] == 2 * 2 * (6 + 5)
    assert metrics["transfers"] > 0


def test_graph_file_with_mixed_demands(tmp_path: Path) -> None:
    graph = {
        "tasks": [
            {"id": "b", "deps": ["a"], "num_gpus": 1, "duration_ms": 4},
            {"id": "a", "output_bytes": 1e6},
            {"id": "c", "deps": ["a", "b"]},
        ]
    }
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph))
    sim = build(scenario({"kind": "graph", "file": str(path), "repeats": 3, "window": 2}))
    metrics = sim.run()
    assert metrics["tasks"] == 9
    assert metrics["utilization"]["GPU"] > 0
    gpu_nodes = metrics["node_utilization"]["GPU"]
    assert gpu_nodes[:4] == [0.0] * 4 and sum(gpu_nodes[4:]) > 0


def test_graph_file_errors_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="workload.file: expected a readable"):
        scenario({"kind": "graph", "file": str(tmp_path / "missing.json")})
    path = tmp_path / "big.yaml"
    path.write_text("tasks:\n  - {id: x, num_gpus: 4}\n")
    with pytest.raises(ScenarioError, match=r"workload.file \(task 'x'\).*no node has 4 GPU"):
        scenario({"kind": "graph", "file": str(path)})


def test_actor_calls_run_serially_on_their_actor() -> None:
    work = {"kind": "actors", "actors": 3, "calls": 20, "window": 5, "drivers": 2}
    sim = build(scenario({**work, "duration_ms": 1}))
    dispatched: list[tuple[float, Any]] = []
    original = sim.host._dispatch

    def spy(cmd: Any, src: int, at: float) -> None:
        dispatched.append((at, cmd.spec))
        original(cmd, src, at)

    sim.host._dispatch = spy  # the host calls its _dispatch for every Dispatch
    metrics = sim.run()
    assert metrics["tasks"] == 60
    calls: dict[int, list[tuple[float, float]]] = {}
    for at, spec in dispatched:
        if spec.kind == ACTOR_METHOD:
            calls.setdefault(spec.actor_id, []).append((at, at + spec.duration))
    assert len(calls) == 3
    for spans in calls.values():
        assert len(spans) == 20
        assert all(a[1] <= b[0] + 1e-12 for a, b in zip(spans, spans[1:]))  # one at a time
    assert metrics["utilization"]["CPU"] > 0  # calls count against what the actor holds


def test_rl_learner_uses_the_gpu_and_samples_move() -> None:
    work = {"kind": "rl", "rollout_actors": 6, "iterations": 4}
    metrics = build(scenario(work)).run()
    assert metrics["tasks"] == 4 * 7
    assert metrics["utilization"]["GPU"] > 0
    assert metrics["transfers"] >= 4 * 6 - 6  # samples reach the learner's node


def test_parameter_server_shards_gradients() -> None:
    work = {"kind": "parameter_server", "servers": 2, "workers": 5, "iterations": 3}
    metrics = build(scenario({**work, "gradient_bytes": 1e6, "output_bytes": 1e6})).run()
    assert metrics["tasks"] == 3 * 7
    assert metrics["transfers"] > 0


def test_search_stops_bad_trials_early() -> None:
    work = {"kind": "hyperparameter_search", "trials": 30, "epochs": 9, "concurrent_trials": 4}
    sim = build(scenario({**work, "num_gpus": 1, "gpu_duration_ms": 2, "duration_ms": 50}))
    metrics = sim.run()
    (driver,) = sim.drivers
    assert isinstance(driver, SearchDriver)
    assert driver.stopped_early > 0
    assert metrics["tasks"] < 30 * 9
    assert metrics["tasks"] == sim.completion.total
    assert metrics["utilization"]["GPU"] > 0


def test_poisson_arrivals_are_open_loop() -> None:
    work = {"kind": "independent", "tasks": 400, "poisson_rate_tps": 1000, "duration_ms": 1}
    metrics = build(scenario(work)).run()
    assert metrics["tasks"] == 400
    assert 0.3 < metrics["makespan_s"] < 0.5  # ~400 / 1000 s: arrivals, not capacity, set it


def test_gpu_tasks_use_the_gpu_duration_model() -> None:
    work = {"kind": "independent", "tasks": 50, "window": 4, "num_gpus": 1}
    slow = build(scenario({**work, "duration_ms": 100})).run()
    fast = build(scenario({**work, "duration_ms": 100, "gpu_duration_ms": 1})).run()
    assert fast["makespan_s"] < slow["makespan_s"] / 10
