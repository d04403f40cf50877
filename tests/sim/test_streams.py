"""The streaming-generator workload: consumers start on items while their producer still runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.runner import build
from sim.scenario import ScenarioError, load_scenario, validate_scenario

ROOT = Path(__file__).resolve().parents[2]


def _raw(**workload: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "description": "a streaming test",
        "seed": 1,
        "cluster": {"nodes": 2, "cpus_per_node": 2},
        "scheduler": {"spillback_threshold": 0, "report_interval_ms": 10},
        "workload": {"kind": "stream", **workload},
        "output": {"progress": False},
    }


def test_consumers_start_before_their_producer_finishes() -> None:
    sim = build(load_scenario(ROOT / "scenarios" / "stream.yaml"))
    sim.run()
    assert sim.completion is not None
    assert sim.completion.done == sim.completion.total == 8 * (1 + 10)
    assert sum(d.consumers_before_end for d in sim.drivers) > 0
    for driver in sim.drivers:
        assert not driver.owner.streams and not driver.owner.objects  # everything was freed


def test_a_slow_producer_feeds_consumers_item_by_item() -> None:
    raw = _raw(
        producers=1,
        items=5,
        window=1,
        duration_ms={"dist": "constant", "value": 100},
        consumer_duration_ms={"dist": "constant", "value": 1},
        item_bytes={"dist": "constant", "value": 2_000_000},
    )
    sim = build(validate_scenario(raw))
    sim.run()
    (driver,) = sim.drivers
    assert driver.consumers_before_end == 5  # each item's consumer ends before the producer


def test_a_producer_survives_a_worker_fault_without_repeating_items() -> None:
    raw = _raw(
        producers=2,
        items=6,
        window=2,
        duration_ms={"dist": "constant", "value": 50},
        consumer_duration_ms={"dist": "constant", "value": 1},
    )
    raw["faults"] = [{"kind": "worker", "at_s": 0.03, "node": 0}]
    sim = build(validate_scenario(raw))
    sim.run()
    assert sim.completion is not None
    assert sim.completion.done == sim.completion.total == 2 * (1 + 6)  # a re-run, no duplicates


@pytest.mark.parametrize(
    ("field", "value"),
    [("items", 0), ("producers", 0), ("window", 0), ("item_bytes", {"dist": "nope"})],
)
def test_bad_stream_fields_are_named(field: str, value: Any) -> None:
    with pytest.raises(ScenarioError, match=f"workload.{field}"):
        validate_scenario(_raw(**{field: value}))
