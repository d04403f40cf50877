"""Policy parameters from a scenario: `scheduler.sample_size` reaches the core's policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.runner import build, run_scenario
from sim.scenario import ScenarioError, load_scenario, validate_scenario

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "scenarios" / "small_independent.yaml"


def _raw(policy: str, **scheduler: Any) -> dict[str, Any]:
    """16 two-CPU nodes, every task placed by the global scheduler (threshold 0)."""
    return {
        "name": "sample_size",
        "cluster": {"nodes": 16, "cpus_per_node": 2},
        "scheduler": {"policy": policy, "spillback_threshold": 0, **scheduler},
        "workload": {
            "kind": "independent",
            "tasks": 2000,
            "window": 200,
            "duration_ms": {"dist": "exponential", "mean": 5},
        },
        "output": {"progress": False},
    }


@pytest.mark.parametrize("policy", ["power_of_two", "bottom_up", "locality"])
def test_the_sample_size_reaches_every_policy_of_the_run(policy: str) -> None:
    sim = build(validate_scenario(_raw(policy, sample_size=5)))
    assert sim.global_scheduler.policy.sample_size == 5
    assert {r.policy.sample_size for r in sim.raylets} == {5}


def test_another_sample_size_changes_the_run() -> None:
    default = run_scenario(validate_scenario(_raw("power_of_two")))
    again = run_scenario(validate_scenario(_raw("power_of_two", sample_size=2)))
    one = run_scenario(validate_scenario(_raw("power_of_two", sample_size=1)))
    assert again == default  # 2 is the default
    assert one["tasks"] == default["tasks"] == 2000
    assert one["latency_s"] != default["latency_s"]


def test_a_sample_size_set_from_the_command_line() -> None:
    scenario = load_scenario(SMALL, {"scheduler.sample_size": "3"})
    assert scenario.scheduler.sample_size == 3
    assert build(scenario).global_scheduler.policy.sample_size == 3


def test_a_sample_size_for_a_policy_that_does_not_sample_names_file_and_field() -> None:
    overrides = {"scheduler.policy": "centralized", "scheduler.sample_size": "3"}
    with pytest.raises(ScenarioError) as info:
        load_scenario(SMALL, overrides)
    assert info.value.problems == [
        f"{SMALL}: scheduler.sample_size: expected no sample_size with policy 'centralized'"
        " (not one of its parameters; policies that take it: 'bottom_up', 'locality',"
        " 'power_of_two'), got 3"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "scheduler.sample_size: expected an integer >= 1, got 0"),
        ("two", "scheduler.sample_size: expected an integer, got 'two'"),
    ],
)
def test_a_bad_sample_size_names_file_and_field(value: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(SMALL, {"scheduler.sample_size": value})
    assert info.value.problems == [f"{SMALL}: {expected}"]
