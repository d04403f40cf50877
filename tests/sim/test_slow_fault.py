"""The `slow` fault: a node whose task bodies run `factor` times longer for a while (stragglers)."""

from __future__ import annotations

import pytest

from sim.runner import build
from sim.scenario import ScenarioError
from tests.sim.test_faults import scenario


def test_a_slow_node_stretches_the_bodies_started_in_its_window() -> None:
    fast = build(scenario([])).run()
    slow_fault = {"kind": "slow", "at_s": 0.05, "duration_s": 0.5, "node": 3, "factor": 20}
    sim = build(scenario([slow_fault]))
    slow = sim.run()
    assert slow["tasks"] == fast["tasks"] == 6000
    assert slow["faults"] == [{"time_s": 0.05, "kind": "slow", "target": 3}]
    assert slow["latency_s"]["max"] > 10 * fast["latency_s"]["max"]  # 2 ms bodies took 40 ms
    assert slow["makespan_s"] > fast["makespan_s"]
    assert sim.host._slow == {}  # the window closed: later bodies run at full speed


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [("factor", 1.0, "factor"), ("node", 9, "node"), ("duration_s", 0, "duration_s")],
)
def test_bad_slow_faults_are_refused(field: str, value: object, error: str) -> None:
    fault = {"kind": "slow", "at_s": 0.1, "duration_s": 0.5, "node": 3, "factor": 4}
    fault[field] = value
    with pytest.raises(ScenarioError, match=error):
        scenario([fault])
