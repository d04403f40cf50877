"""Placement groups and SPREAD in the simulator: the core's own rules, seen through scenarios."""

from __future__ import annotations

from typing import Any

import pytest

from sim.runner import SimulationStalled, build
from sim.scenario import ScenarioError, validate_scenario


def scenario(workload: dict[str, Any], faults: list[dict[str, Any]] | None = None) -> Any:
    raw = {
        "name": "pg",
        "seed": 3,
        "cluster": {"nodes": 4, "cpus_per_node": 4},
        "scheduler": {"spillback_threshold": 2, "report_interval_ms": 10},
        "workload": {
            "kind": "independent",
            "tasks": 200,
            "drivers": 2,
            "window": 8,
            "duration_ms": 2,
            **workload,
        },
        "faults": faults or [],
        "output": {"progress": False},
    }
    return validate_scenario(raw, "pg.yaml")


def groups(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return metrics["placement_groups"]


def test_strict_spread_puts_bundles_on_distinct_nodes() -> None:
    pg = {"bundles": [{"CPU": 1}] * 4, "strategy": "STRICT_SPREAD"}
    sim = build(scenario({"placement_group": pg}))
    metrics = sim.run()
    assert sim.completion.done == 200
    for group in groups(metrics):
        assert group["state"] == "CREATED"
        assert sorted(group["bundle_nodes"]) == [0, 1, 2, 3]


def test_pack_uses_as_few_nodes_as_possible() -> None:
    one = {"bundles": [{"CPU": 2}, {"CPU": 2}], "strategy": "PACK"}
    metrics = build(scenario({"placement_group": one})).run()
    assert all(len(set(g["bundle_nodes"])) == 1 for g in groups(metrics))
    two = {"bundles": [{"CPU": 2}] * 4, "strategy": "PACK"}
    metrics = build(scenario({"placement_group": two, "drivers": 1})).run()
    (group,) = groups(metrics)
    assert len(set(group["bundle_nodes"])) == 2  # 8 CPUs need 2 nodes of 4


def test_tasks_stay_in_their_group() -> None:
    pg = {"bundles": [{"CPU": 1}, {"CPU": 1}], "strategy": "STRICT_PACK"}
    sim = build(scenario({"placement_group": pg, "drivers": 1}))
    metrics = sim.run()
    (group,) = groups(metrics)
    (node,) = set(group["bundle_nodes"])
    busy = [i for i, u in enumerate(metrics["node_utilization"]["CPU"]) if u > 0]
    assert busy == [node]


def test_spread_strategy_uses_every_node() -> None:
    sim = build(scenario({"scheduling_strategy": "spread", "drivers": 1, "window": 16}))
    metrics = sim.run()
    assert sim.completion.done == 200
    assert all(u > 0 for u in metrics["node_utilization"]["CPU"])
    assert "placement_groups" not in metrics


def test_infeasible_group_is_reported_pending_with_its_reason() -> None:
    sim = build(scenario({}))
    owner = sim.owners[0]
    pg_id = owner.new_task_id()

    def create(now: float, out: list[Any]) -> None:
        bundles = [{"CPU": 1.0}] * 5
        owner.create_placement_group(pg_id, bundles, "STRICT_SPREAD", "", None, out)

    sim.host.call_at(0.0, lambda: sim.host.serve_call(owner.addr, create))
    metrics = sim.run()  # the workload itself does not need the group
    (group,) = groups(metrics)
    assert group["state"] == "PENDING"
    assert group["reason"].startswith("infeasible: STRICT_SPREAD: bundle")
    assert "4 live node(s)" in group["reason"]


def test_group_that_lost_a_node_for_good_stalls_loudly_with_its_reason() -> None:
    pg = {"bundles": [{"CPU": 1}] * 4, "strategy": "STRICT_SPREAD", "bundle": "round_robin"}
    fault = {"kind": "node", "at_s": 0.01, "node": 3}
    sim = build(scenario({"placement_group": pg, "drivers": 1}, [fault]))
    with pytest.raises(SimulationStalled, match="placement group 1 is RESCHEDULING: infeasible"):
        sim.run()


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        (
            {"placement_group": {"bundles": [{"CPU": 1}] * 5, "strategy": "STRICT_SPREAD"}},
            "pg.yaml: workload.placement_group: expected bundles the cluster can hold, got 5",
        ),
        (
            {"placement_group": {"bundles": [{"CPU": 0.5}]}},
            "pg.yaml: workload.placement_group.bundles: expected a bundle that holds workload",
        ),
        (
            {"placement_group": {"bundles": [{"CPU": 1}, {"GPU": 1}], "bundle": "round_robin"}},
            "pg.yaml: workload.placement_group.bundles.1: expected a bundle that holds",
        ),
        (
            {"placement_group": {"bundles": [{"CPU": 1}]}, "scheduling_strategy": "spread"},
            "pg.yaml: workload.scheduling_strategy: expected 'default' with a placement_group",
        ),
        (
            {"placement_group": {"bundles": [{"CPU": 0}]}},
            "pg.yaml: workload.placement_group.bundles",
        ),
        (
            {"placement_group": {"bundles": [{"CPU": 1}], "strategy": "TIGHT"}},
            "pg.yaml: workload.placement_group.strategy",
        ),
    ],
)
def test_placement_group_fields_are_validated(workload: dict[str, Any], expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(workload)
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_a_placement_group_workload_runs_the_same_on_real_workers() -> None:
    from twin.real_mode import _sim, fit_to_machine, run_real

    raw_pg = {"bundles": [{"CPU": 1}, {"CPU": 1}], "strategy": "STRICT_PACK"}
    one_node = validate_scenario(
        {
            "name": "pg-real",
            "cluster": {"nodes": 1, "cpus_per_node": 2},
            "workload": {
                "kind": "independent",
                "tasks": 20,
                "window": 4,
                "duration_ms": 2,
                "placement_group": raw_pg,
            },
            "output": {"progress": False},
        },
        "pg-real.yaml",
    )
    fit = fit_to_machine(one_node, scale_down=False, cpus=2)
    real = run_real(fit.scenario, fit.cpus, resources=fit.resources)
    sim = _sim(fit.scenario)
    assert real["tasks"] == sim["tasks"] == 20
    for metrics in (real, sim):
        (group,) = metrics["placement_groups"]
        assert group["state"] == "CREATED" and group["bundle_nodes"] == [0, 0]
