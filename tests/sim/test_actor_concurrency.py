"""Concurrent actors in the simulator: max_concurrency overlaps calls and raises throughput."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.core.task import ACTOR_METHOD
from sim.runner import build
from sim.scenario import ScenarioError, validate_scenario


def scenario(**workload: Any) -> Any:
    """Two actors on one 8-CPU node, 5-ms calls, 8 in flight per actor."""
    work = {
        "kind": "actors",
        "actors": 2,
        "calls": 80,
        "window": 8,
        "duration_ms": {"dist": "constant", "value": 5},
        **workload,
    }
    raw = {
        "name": "concurrent-actors",
        "seed": 5,
        "cluster": {"nodes": 1, "cpus_per_node": 8},
        "workload": work,
        "output": {"progress": False},
    }
    return validate_scenario(raw)


def _run(**workload: Any) -> tuple[dict[str, Any], dict[int, list[tuple[float, float]]]]:
    sim = build(scenario(**workload))
    spans: dict[int, list[tuple[float, float]]] = {}
    original = sim.host._dispatch

    def spy(cmd: Any, src: int, at: float) -> None:
        if cmd.spec.kind == ACTOR_METHOD:
            spans.setdefault(cmd.spec.actor_id, []).append((at, at + cmd.spec.duration))
        original(cmd, src, at)

    sim.host._dispatch = spy  # the host calls its _dispatch for every Dispatch
    return sim.run(), spans


def _peak_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_max_concurrency_bounds_the_calls_running_on_an_actor() -> None:
    for limit in (1, 3):
        metrics, spans = _run(max_concurrency=limit)
        assert metrics["tasks"] == 160
        assert len(spans) == 2
        assert all(_peak_overlap(s) == limit for s in spans.values())


def test_higher_concurrency_gives_more_throughput_for_an_actor_bound_workload() -> None:
    serial, _ = _run(max_concurrency=1)
    concurrent, _ = _run(max_concurrency=8)
    assert concurrent["throughput_tps"] > 4 * serial["throughput_tps"]
    # an actor's held CPU counts as busy once however many of its calls overlap
    assert concurrent["cpu_utilization"] <= serial["cpu_utilization"] * 1.01


def test_the_concurrent_run_is_deterministic() -> None:
    first, _ = _run(max_concurrency=4)
    second, _ = _run(max_concurrency=4)
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(
        second, sort_keys=True, default=str
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5, "many"])
def test_max_concurrency_is_validated(bad: Any) -> None:
    with pytest.raises(ScenarioError, match="max_concurrency"):
        scenario(max_concurrency=bad)
