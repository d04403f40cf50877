"""Heartbeats in the simulator (`cluster.health`): deaths found after the timeout, by the core's detector."""

from __future__ import annotations

from typing import Any

import pytest

from sim.runner import build
from sim.scenario import ScenarioError, validate_scenario


def scenario(health: dict[str, Any] | None, faults: list[dict[str, Any]]) -> Any:
    """4 nodes x 4 CPUs, 2 drivers, 1,500 independent 2 ms tasks; node 3 may die."""
    cluster: dict[str, Any] = {"nodes": 4, "cpus_per_node": 4}
    if health is not None:
        cluster["health"] = health
    raw = {
        "name": "h",
        "seed": 1,
        "cluster": cluster,
        "scheduler": {"spillback_threshold": 2, "report_interval_ms": 10},
        "workload": {"kind": "independent", "tasks": 1500, "drivers": 2, "window": 24,
                     "duration_ms": 2},
        "faults": faults,
        "output": {"progress": False},
    }  # fmt: skip
    return validate_scenario(raw)


CRASH = [{"kind": "node", "at_s": 0.1, "node": 3}]


def _run(health: dict[str, Any] | None, faults: list[dict[str, Any]] = CRASH) -> Any:
    sim = build(scenario(health, faults))
    return sim, sim.run()


def test_a_crash_is_found_after_the_timeout_and_recovery_waits_for_it() -> None:
    timings = {}
    for timeout in (0.1, 0.3):
        sim, metrics = _run({"heartbeat_period_s": 0.02, "node_timeout_s": timeout})
        assert metrics["tasks"] == 1500  # every task done in the end: retried after detection
        (declared,) = metrics["detection"]["declared"]
        assert declared["node"] == 3
        # declared at the last heartbeat + the timeout: at most one period early, never late
        assert timeout - 0.02 <= declared["after_crash_s"] <= timeout + 1e-3
        assert sum(o.retries for o in sim.owners) > 0
        assert not sim.gcs.nodes[3].alive
        timings[timeout] = metrics["makespan_s"]
    _, instant = _run(None)
    assert "detection" not in instant  # the default: the GCS knows at the crash
    assert instant["makespan_s"] < timings[0.1] < timings[0.3]


def test_heartbeats_alone_change_nothing_but_the_messages() -> None:
    _, quiet = _run(None, [])
    _, beating = _run({"heartbeat_period_s": 0.05, "node_timeout_s": 0.5}, [])
    assert beating["tasks"] == quiet["tasks"] == 1500
    assert beating["messages"] > quiet["messages"]
    assert beating["detection"]["declared"] == []  # nobody declared dead without a fault


def test_a_partitioned_node_is_declared_dead_and_fenced() -> None:
    cut = [{"kind": "partition", "at_s": 0.05, "duration_s": 0.4, "nodes": [3]}]
    sim, metrics = _run({"heartbeat_period_s": 0.02, "node_timeout_s": 0.1}, cut)
    assert metrics["tasks"] == 1500
    assert [d["node"] for d in metrics["detection"]["declared"]] == [3]
    assert 3 in sim.host.dead_nodes  # cut off for good, as Ray kills such a node


def test_a_gcs_outage_longer_than_the_timeout_declares_nobody() -> None:
    outage = [{"kind": "gcs", "at_s": 0.05, "duration_s": 0.3}]
    _, metrics = _run({"heartbeat_period_s": 0.02, "node_timeout_s": 0.1}, outage)
    assert metrics["tasks"] == 1500
    assert metrics["detection"]["declared"] == []  # the beats waited behind the GCS too


def test_a_node_restarted_before_it_was_found_dead_recovers_at_its_registration() -> None:
    fault = [{"kind": "node", "at_s": 0.1, "node": 3, "restart_after_s": 0.05}]
    sim, metrics = _run({"heartbeat_period_s": 0.02, "node_timeout_s": 0.5}, fault)
    assert metrics["tasks"] == 1500
    assert metrics["detection"]["declared"] == []  # its new raylet's registration told first
    assert sim.gcs.nodes[3].alive and sim.raylets[3].dispatched > 0


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        ({"heartbeat_period_s": 1.0, "node_timeout_s": 1.0}, "node_timeout_s to be longer"),
        ({"heartbeat_period_s": 0, "node_timeout_s": 1.0}, "heartbeat_period_s"),
        ({"heartbeat_period_s": 1.0, "node_timeout_s": -2}, "node_timeout_s"),
        ({"period": 1.0}, "period"),
    ],
)
def test_bad_health_fields_are_rejected(health: dict[str, Any], expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(health, [])
    assert expected in str(info.value)
