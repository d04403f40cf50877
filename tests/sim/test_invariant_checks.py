"""Every shipped scenario runs with the core's invariant checks on (the debug option), and the option catches a broken state."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.core.invariants import InvariantError
from sim.runner import build
from sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CHECKS = {"control_plane.check_invariants": "true"}

SMALLER: dict[str, dict[str, str]] = {
    "millions_tasks": {"workload.tasks": "5000"},
    "mmc": {"workload.tasks": "5000"},
    "heterogeneous": {"workload.tasks": "2000"},
    "parameter_server": {"workload.iterations": "10"},
    "stragglers": {"workload.tasks": "2000"},  # its slow node starts at 0.1 s: still covered
}
"""Checks walk each component's state after every message it handles: the largest
scenarios run the same cluster with a shorter workload."""


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenario_keeps_every_invariant(path: Path) -> None:
    scenario = load_scenario(path, {**CHECKS, **SMALLER.get(path.stem, {})})
    sim = build(scenario)
    metrics = sim.run()
    assert metrics["tasks"] > 0
    live = [r for r in sim.raylets if r.node not in sim.host.dead_nodes]
    # a dead node's raylet keeps its last state while its tasks are retried elsewhere
    for component in [*sim.gcs_shards, sim.global_scheduler, *live, *sim.owners]:
        component.check()  # and once more at the end, the global scheduler included


def test_checks_are_off_by_default_and_do_not_change_the_results() -> None:
    path = SCENARIOS / "small_independent.yaml"
    plain = build(load_scenario(path))
    assert not plain.scenario.control_plane.check_invariants
    assert plain.run() == build(load_scenario(path, CHECKS)).run()


def test_a_broken_raylet_state_stops_the_run_with_invariant_error() -> None:
    sim = build(load_scenario(SCENARIOS / "small_independent.yaml", CHECKS))
    sim.run_until(0.001)
    sim.raylets[0].available["CPU"] += 1.0  # a CPU that no task released
    with pytest.raises(InvariantError):
        sim.run()
