"""Fault injection: node, worker and GCS failures and partitions, and the recovery metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.runner import build
from sim.scenario import ScenarioError, load_scenario, validate_scenario


def scenario(faults: list[dict[str, Any]], workload: dict[str, Any] | None = None) -> Any:
    """4 nodes x 4 CPUs, 2 drivers (nodes 0 and 1), 6,000 independent 2 ms tasks."""
    work = {"kind": "independent", "tasks": 6000, "drivers": 2, "window": 24, "duration_ms": 2}
    raw = {
        "name": "f",
        "seed": 1,
        "cluster": {"nodes": 4, "cpus_per_node": 4},
        "scheduler": {"spillback_threshold": 2, "report_interval_ms": 10},
        "workload": workload or work,
        "faults": faults,
        "output": {"progress": False},
    }
    return validate_scenario(raw)


def test_killed_node_loses_its_work_which_is_retried() -> None:
    sim = build(scenario([{"kind": "node", "at_s": 0.1, "node": 3}]))
    metrics = sim.run()
    assert metrics["tasks"] == 6000  # every task succeeded in the end
    assert sum(o.retries for o in sim.owners) > 0
    assert 3 not in sim.global_scheduler.views
    assert metrics["faults"] == [{"time_s": 0.1, "kind": "node", "target": 3}]
    recovery = metrics["recovery"]
    assert recovery["dip_throughput_tps"] < recovery["baseline_tps"]
    assert recovery["recovery_s"] is not None and recovery["recovery_s"] >= 0
    late = metrics["node_utilization"]["CPU"]
    assert late[3] < min(late[:3])  # dead for most of the run


def test_a_restarted_node_rejoins_empty_and_takes_work_again() -> None:
    fault = {"kind": "node", "at_s": 0.1, "node": 3, "restart_after_s": 0.1}
    sim = build(scenario([fault]))
    metrics = sim.run()
    assert metrics["tasks"] == 6000
    assert 3 in sim.global_scheduler.views  # registered again
    assert sim.gcs.nodes[3].alive
    assert sim.raylets[3].dispatched > 0  # the new incarnation ran tasks
    assert sim.raylets[0].peers == {1, 2, 3}
    kinds = [(f["kind"], f["target"]) for f in metrics["faults"]]
    assert kinds == [("node", 3), ("node_restart", 3)]
    assert metrics["faults"][1]["time_s"] == pytest.approx(0.2)
    again = build(scenario([fault])).run()
    assert again == metrics  # deterministic


def test_node_kill_fails_transfers_from_it_and_rebuilds_lost_objects() -> None:
    sim = build(
        scenario(
            [{"kind": "node", "at_s": 0.05, "node": 2}],
            {"kind": "chain", "chains": 8, "length": 30, "drivers": 2, "output_bytes": 1e6},
        )
    )
    metrics = sim.run()
    assert metrics["tasks"] + sum(o.reconstructions for o in sim.owners) >= 8 * 30
    assert sim.completion.done == 8 * 30


def test_killed_worker_fails_its_task_with_worker_died_and_it_is_retried() -> None:
    sim = build(scenario([{"kind": "worker", "at_s": 0.1, "node": 1}]))
    metrics = sim.run()
    assert metrics["tasks"] == 6000
    assert sum(o.retries for o in sim.owners) == 1
    assert metrics["faults"][0]["target"].startswith("node 1: task ")


def test_killed_actor_worker_fails_its_call() -> None:
    work = {"kind": "actors", "actors": 2, "calls": 50, "duration_ms": 5, "drivers": 1}
    raw = {
        "name": "a",
        "cluster": {"nodes": 2, "cpus_per_node": 2},
        "workload": work,
        "faults": [{"kind": "worker", "at_s": 0.05, "node": 0}],
        "output": {"progress": False},
    }
    sim = build(validate_scenario(raw))
    metrics = sim.run()
    assert metrics["faults"][0]["target"].startswith("node 0: actor ")
    assert sim.metrics.failed > 0  # calls to an actor that is gone fail (no restarts)
    assert metrics["tasks"] + sim.metrics.failed == 100


def test_gcs_outage_delays_what_needs_it() -> None:
    base = build(scenario([])).run()
    down = build(scenario([{"kind": "gcs", "at_s": 0.05, "duration_s": 0.2}])).run()
    assert down["tasks"] == base["tasks"] == 6000
    assert max(down["queues"]["gcs"]) > max(base["queues"]["gcs"])


def test_partition_delays_crossing_messages_until_it_heals() -> None:
    base = build(scenario([])).run()
    cut = build(scenario([{"kind": "partition", "at_s": 0.05, "duration_s": 0.3, "nodes": [2, 3]}]))
    metrics = cut.run()
    assert metrics["tasks"] == 6000
    assert metrics["makespan_s"] > base["makespan_s"]
    assert cut.host._cut is None  # healed


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"kind": "node", "at_s": 1, "node": 0}, "faults.0.node: expected a node hosting neither"),
        ({"kind": "node", "at_s": 1, "node": 9}, "faults.0: expected node < cluster.nodes (4)"),
        ({"kind": "partition", "at_s": 1, "duration_s": 1, "nodes": []}, "faults.0.nodes"),
        ({"kind": "meteor", "at_s": 1}, "faults.0.kind: expected one of"),
        ({"kind": "gcs", "at_s": 1}, "faults.0.duration_s: missing"),
    ],
)
def test_bad_faults_are_rejected(fault: dict[str, Any], expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario([fault])
    assert expected in str(info.value)


def _tree_raw(faults: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "s",
        "seed": 2,
        "cluster": {"nodes": 4, "cpus_per_node": 4},
        "control_plane": {"gcs_us": 200, "record_task_events": True},
        "scheduler": {"spillback_threshold": 0, "report_interval_ms": 10},
        "workload": {
            "kind": "tree",
            "trees": 20,
            "leaves": 16,
            "drivers": 2,
            "window": 2,
            "output_bytes": 1e6,
            "duration_ms": 2,
        },
        "faults": faults,
        "output": {"progress": False},
    }


def test_gcs_shards_split_the_directory_and_the_load() -> None:
    raw = _tree_raw([])
    one = build(validate_scenario(raw)).run()
    raw["control_plane"]["gcs_shards"] = 4
    four = build(validate_scenario(raw))
    metrics = four.run()
    assert metrics["tasks"] == one["tasks"] == 20 * 31
    assert len(four.gcs_shards) == 4
    assert all(shard.tasks for shard in four.gcs_shards)  # task table split by task id
    assert max(metrics["queues"]["gcs"]) < max(one["queues"]["gcs"])


def test_every_gcs_shard_hears_of_a_node_death() -> None:
    path = Path(__file__).resolve().parents[2] / "scenarios" / "fault_node.yaml"
    sim = build(load_scenario(path, {"control_plane.gcs_shards": "3"}))
    sim.run()
    assert sim.completion is not None and sim.completion.done == sim.completion.total
    assert all(not shard.nodes[6].alive for shard in sim.gcs_shards)


def test_node_death_under_a_tree_reduction_recovers() -> None:
    metrics = build(validate_scenario(_tree_raw([{"kind": "node", "at_s": 0.02, "node": 3}])))
    assert metrics.run()["tasks"] == 20 * 31


def test_long_outages_and_slow_arrivals_are_not_stalls() -> None:
    outage = [{"kind": "gcs", "at_s": 0.01, "duration_s": 30.0}]
    work = {"kind": "chain", "chains": 2, "length": 5, "drivers": 1, "output_bytes": 1e6}
    metrics = build(scenario(outage, work)).run()
    assert metrics["tasks"] == 10
    cut = [{"kind": "partition", "at_s": 0.0, "duration_s": 25.0, "nodes": [1, 2, 3]}]
    slow = {"kind": "independent", "tasks": 3, "poisson_rate_tps": 0.05, "drivers": 1}
    metrics = build(scenario(cut, slow)).run()
    assert metrics["tasks"] == 3
