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


def test_one_slow_worker_stretches_one_body_at_a_time() -> None:
    fast = build(scenario([])).run()
    fault = {"kind": "slow", "at_s": 0.05, "duration_s": 0.5, "node": 3, "factor": 20, "worker": 1}
    sim = build(scenario([fault]))
    slow = sim.run()
    assert slow["tasks"] == fast["tasks"] == 6000
    assert slow["faults"] == [{"time_s": 0.05, "kind": "slow", "target": "node 3: worker 1"}]
    assert slow["latency_s"]["max"] >= 0.04 > fast["latency_s"]["max"]  # a 2 ms body took 40
    whole = build(scenario([{**fault, "worker": None}])).run()
    # one of the node's four workers is slow, not all four: far less of the work is stretched
    assert slow["latency_s"]["p99"] < whole["latency_s"]["p99"]
    assert sim.host._slow_workers == {}  # the window closed


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (4, r"faults\.0\.worker: expected a worker index < the CPUs of node 3 \(4\), got 4"),
        (-1, "worker"),
    ],
)
def test_bad_slow_workers_are_refused(value: int, error: str) -> None:
    fault = {"kind": "slow", "at_s": 0.1, "duration_s": 0.5, "node": 3, "factor": 4}
    with pytest.raises(ScenarioError, match=error):
        scenario([{**fault, "worker": value}])
