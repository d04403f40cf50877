"""Speculative execution in the simulator: stragglers on a slow node or worker get backups that win."""

from __future__ import annotations

from typing import Any

import pytest

from sim.runner import build
from sim.scenario import ScenarioError, validate_scenario

SLOW_NODE = {"kind": "slow", "at_s": 0.02, "duration_s": 0.5, "node": 3, "factor": 20}
SPECULATION = {"multiplier": 2, "budget": 4}


def scenario(faults: list[dict[str, Any]], speculation: dict[str, Any] | None) -> Any:
    """4 nodes x 4 CPUs, 2 drivers, 1,500 independent 2 ms tasks; speculation if given."""
    scheduler: dict[str, Any] = {"spillback_threshold": 2, "report_interval_ms": 10}
    if speculation is not None:
        scheduler["speculation"] = speculation
    raw = {
        "name": "s",
        "seed": 1,
        "cluster": {"nodes": 4, "cpus_per_node": 4},
        "scheduler": scheduler,
        "workload": {
            "kind": "independent",
            "tasks": 1500,
            "drivers": 2,
            "window": 24,
            "duration_ms": 2,
        },
        "faults": faults,
        "output": {"progress": False},
    }
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def slow_node_runs() -> tuple[dict[str, Any], dict[str, Any]]:
    """The same slow-node run without and with speculation."""
    return build(scenario([SLOW_NODE], None)).run(), build(scenario([SLOW_NODE], SPECULATION)).run()


def test_backups_cut_the_tail_under_a_slow_node(slow_node_runs: tuple[dict, dict]) -> None:
    plain, speculative = slow_node_runs
    assert plain["tasks"] == speculative["tasks"] == 1500
    assert "speculation" not in plain  # off: metrics.json as before
    counts = speculative["speculation"]
    assert counts["backups"] > 0 and 0 < counts["backups_won"] <= counts["backups"]
    # stragglers ran 40 ms on the slow node; their backups elsewhere finish in about 2 ms
    assert speculative["latency_s"]["p99"] < plain["latency_s"]["p99"] / 2
    assert speculative["latency_s"]["max"] < plain["latency_s"]["max"]


def test_backups_cut_the_tail_under_a_slow_worker() -> None:
    fault = {**SLOW_NODE, "worker": 0}
    plain = build(scenario([fault], None)).run()
    speculative = build(scenario([fault], SPECULATION)).run()
    assert speculative["speculation"]["backups_won"] > 0
    assert speculative["latency_s"]["max"] < plain["latency_s"]["max"]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"multiplier": 1}, "scheduler.speculation.multiplier"),
        ({"quantile": 1.0}, "scheduler.speculation.quantile"),
        ({"budget": 0}, "scheduler.speculation.budget"),
        ({"min_samples": 0}, "scheduler.speculation.min_samples"),
        ({"k": 2}, "scheduler.speculation.k"),
    ],
)
def test_bad_speculation_fields_are_refused(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ScenarioError, match=error):
        scenario([], fields)
