"""Actor checkpoints in the simulator: a node death restarts actors, and checkpoints cut the replays."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import actor_reconstruction
from sim.runner import run_scenario
from sim.scenario import load_scenario

SCENARIO = (
    Path(__file__).resolve().parents[2] / "scenarios" / "ray_paper" / "actor_reconstruction.yaml"
)


def _run(every: int | None, actors: int = 60, calls: int = 12) -> dict:
    base = load_scenario(SCENARIO)
    workload = base.workload.model_copy(
        update={"actors": actors, "calls": calls, "checkpoint_interval": every}
    )
    faults = [f.model_copy(update={"at_s": f.at_s - 1.5}) for f in base.faults]
    return run_scenario(base.model_copy(update={"workload": workload, "faults": faults}))


def test_lost_actors_restart_and_every_call_finishes() -> None:
    replay_all, checkpointed = _run(0), _run(3)
    for metrics in (replay_all, checkpointed):
        assert metrics["tasks"] == 60 * 12  # no call lost with the two nodes
        assert metrics["actor_recovery"]["restarts"] > 0
    # without checkpoints each lost actor replays its ~10 finished calls; with them, 0..2
    assert (
        replay_all["actor_recovery"]["replayed_calls"]
        > 3 * checkpointed["actor_recovery"]["replayed_calls"]
    )
    assert replay_all["actor_recovery"]["checkpoints"] == 0
    assert checkpointed["actor_recovery"]["checkpoints"] >= 60 * 3


def test_without_checkpoint_interval_nothing_is_replayed() -> None:
    metrics = _run(None)
    assert metrics["actor_recovery"]["replayed_calls"] == 0
    assert metrics["actor_recovery"]["restarts"] > 0


@pytest.mark.timeout(120)
def test_the_fig_11b_benchmark_quick_variant_writes_its_section(tmp_path: Path) -> None:
    assert actor_reconstruction.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "sections" / "actor_reconstruction.md").read_text()
    assert "| without checkpoints |" in text and "| with checkpoints |" in text
    data = (tmp_path / "actor_reconstruction.json").read_text()
    assert '"restarts": 0' not in data  # the nodes died while the actors ran
    assert (tmp_path / "actor_reconstruction.png").stat().st_size > 0
