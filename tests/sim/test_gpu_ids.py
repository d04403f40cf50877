"""The simulator runs the core's raylet, so it picks GPU instance ids exactly as real mode does."""

from __future__ import annotations

from pathlib import Path

from sim.runner import build
from sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "heterogeneous.yaml"


def test_simulated_gpu_tasks_get_distinct_instance_ids_and_give_them_back() -> None:
    sim = build(load_scenario(SCENARIO, {"workload.tasks": "400", "workload.drivers": "2"}))
    seen: dict[int, set[int]] = {}
    dispatch = sim.host._dispatch

    def record(cmd, src, at):  # every dispatched GPU task names the instances it got
        ids = (cmd.spec.instances or {}).get("GPU", ())
        assert len(ids) == 1 and 0 <= ids[0] < 4
        seen.setdefault(cmd.node, set()).add(ids[0])
        dispatch(cmd, src, at)

    sim.host._dispatch = record  # the host calls its _dispatch for every Dispatch
    metrics = sim.run()
    assert metrics["tasks"] == 400
    assert seen and all(ids <= {0, 1, 2, 3} for ids in seen.values())
    assert any(len(ids) > 1 for ids in seen.values())  # concurrent tasks got different ids
    for raylet in sim.raylets:
        assert raylet.instances.get("GPU", [1.0] * 4) == [1.0] * 4  # all given back
