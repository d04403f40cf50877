"""Every shipped scenario validates, documents itself, runs, and is deterministic; the schema is current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.metrics import write_json
from sim.runner import build
from sim.scenario import load_scenario
from sim.sweep import SCHEMA_PATH, schema_text

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted(
    (ROOT / "scenarios" / "ray_paper").glob("*.yaml")
)
LARGE = {
    "millions_tasks",
    "mmc",
    "ray_paper_scalability",
    "ray_paper_fault_tolerance",
    "serving_scaling",
    "ray_paper_actor_reconstruction",
    "stragglers",
}
"""Too long for a unit test (run by hand, or with fewer tasks in tests/sim/test_validation.py)."""


def small_scenarios() -> list[Path]:
    """The scenario files that run in about a second or less."""
    return [p for p in SCENARIOS if load_scenario(p).name not in LARGE]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_scenario_validates_and_starts_with_a_comment_block(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.description
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and lines[1].startswith("#"), "document it at the top"


@pytest.mark.parametrize("path", small_scenarios(), ids=lambda p: p.name)
def test_small_scenarios_run_to_completion_deterministically(path: Path, tmp_path: Path) -> None:
    first = build(load_scenario(path))
    metrics = first.run()
    assert first.completion is not None
    assert first.completion.done == first.completion.total > 0
    again = build(load_scenario(path)).run()
    a = write_json(tmp_path / "a.json", metrics).read_bytes()
    b = write_json(tmp_path / "b.json", again).read_bytes()
    assert a == b
    for key in ("utilization", "node_utilization", "queues", "bytes_series", "faults"):
        assert key in metrics
    if load_scenario(path).faults:
        assert set(metrics["recovery"]) >= {"dip_throughput_tps", "recovery_s"}
        assert len(metrics["faults"]) == len(load_scenario(path).faults)


def test_scenario_schema_file_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "run `run-scenario --schema` to regenerate scenarios/scenario.schema.json"
    )
    schema = json.loads(schema_text())
    assert "workload" in schema["properties"] and "faults" in schema["properties"]
