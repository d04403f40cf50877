"""The simulator's "why did tasks wait" breakdown and `Simulation.explain` on paused/finished runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.core import explain as ex
from runtime.core.raylet import WAIT_CAUSES
from sim.metrics import write_json
from sim.report import write_report
from sim.runner import build
from sim.scenario import validate_scenario


def _scenario(**overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "name": "waits",
        "seed": 5,
        "cluster": {"nodes": 2, "cpus_per_node": 2},
        "scheduler": {"spillback_threshold": 1, "report_interval_ms": 10},
        "workload": {"kind": "chain", "chains": 6, "length": 20, "drivers": 1,
                     "duration_ms": 2, "output_bytes": 2_000_000},
        "output": {"progress": False},
    }  # fmt: skip
    raw.update(overrides)
    return validate_scenario(raw)


def test_breakdown_names_every_cause_and_is_deterministic(tmp_path: Path) -> None:
    first = build(_scenario()).run()
    again = build(_scenario()).run()
    waits = first["wait_breakdown"]
    assert list(waits) == list(WAIT_CAUSES)
    a = write_json(tmp_path / "a.json", first).read_bytes()
    b = write_json(tmp_path / "b.json", again).read_bytes()
    assert a == b
    assert waits["arguments"]["seconds"] > 0  # chain links wait for their predecessor
    assert waits["transfers"]["seconds"] > 0  # 2 MB inputs produced on the other node
    assert waits["global_scheduler"]["seconds"] > 0  # spillback threshold 1
    total_share = sum(w["share"] for w in waits.values())
    assert abs(total_share - 1.0) < 1e-6
    tasks = first["tasks"]
    for w in waits.values():
        assert abs(w["per_task_s"] * tasks - w["seconds"]) <= 1e-6 * max(1.0, w["seconds"])


def test_breakdown_matches_queueing_in_a_saturated_cluster() -> None:
    """1 node x 1 CPU, 50 tasks of 10 ms at once: task k waits k x 10 ms for the CPU."""
    scenario = _scenario(
        cluster={"nodes": 1, "cpus_per_node": 1},
        workload={"kind": "independent", "tasks": 50, "duration_ms": 10, "window": 50},
    )
    metrics = build(scenario).run()
    waits = metrics["wait_breakdown"]
    expected = sum(k * 0.010 for k in range(50))  # 12.25 s summed over tasks
    assert abs(waits["resources"]["seconds"] - expected) / expected < 0.02
    assert waits["resources"]["share"] > 0.9
    assert waits["global_scheduler"]["seconds"] == 0.0  # nowhere to spill


def test_actor_calls_wait_in_the_actor_queue() -> None:
    scenario = _scenario(
        workload={"kind": "actors", "actors": 1, "calls": 40, "duration_ms": 5, "drivers": 1}
    )
    waits = build(scenario).run()["wait_breakdown"]
    assert waits["actor_queue"]["seconds"] > 0 or waits["arguments"]["seconds"] > 0


def test_report_has_a_wait_table_and_plot(tmp_path: Path) -> None:
    metrics = build(_scenario()).run()
    report = write_report(metrics, tmp_path, "waits").read_text(encoding="utf-8")
    assert "## Waiting time by cause" in report
    assert "| fetching arguments |" in report and "| queued for resources |" in report
    assert "![Why tasks waited](waits.png)" in report
    assert (tmp_path / "waits.png").stat().st_size > 0


def test_explain_a_paused_and_a_finished_simulation() -> None:
    sim = build(_scenario())
    sim.run_until(0.02)
    assert not sim.host.stopped
    pending = [tid for owner in sim.owners for tid in owner.pending]
    assert pending, "the chains are still running at 20 ms"
    causes = {sim.explain(tid).cause for tid in pending}
    assert causes <= set(ex.CAUSES) - {ex.UNKNOWN, ex.FINISHED}
    assert ex.WAITING_FOR_ARGUMENTS in causes  # later links of each chain
    running = [tid for r in sim.raylets for tid in r.running]
    assert running and sim.explain(running[0]).cause == ex.RUNNING
    metrics = sim.run()  # carries on from the pause
    assert metrics["tasks"] == 6 * 20
    done = sim.explain(pending[0])
    assert done.cause == ex.FINISHED and done.node >= 0, done.text
    assert "finished on node" in str(done)
