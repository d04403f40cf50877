"""`--mode both` on an RLlib-shaped rl scenario: real PPO iterations beside the simulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.scenario import load_scenario
from twin.calibrate_rl import fit
from twin.cli import main
from twin.real_mode import fit_to_machine

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

TINY = [
    "workload.iterations=3",
    "workload.from_rllib.train_batch_size=200",
    "workload.from_rllib.minibatch_size=100",
    "workload.from_rllib.num_epochs=1",
    "workload.from_rllib.model={fcnet_hiddens: [16]}",
]


def test_mode_both_trains_the_rllib_config_beside_its_simulation(tmp_path, capsys) -> None:
    args = [str(SCENARIOS / "rl_ppo.yaml"), "--mode", "both", "--out", str(tmp_path)]
    assert main(args + [x for o in TINY for x in ("--set", o)]) == 0
    out = capsys.readouterr().out
    for row in ("RL iteration (s)", "RL sampling (s)", "RL learner (s)", "RL bytes / iteration"):
        assert row in out
    sim = json.loads((tmp_path / "rl_ppo" / "sim" / "metrics.json").read_text())
    real = json.loads((tmp_path / "rl_ppo" / "real" / "metrics.json").read_text())
    assert set(sim) <= set(real)
    assert sim["tasks"] == real["tasks"] == 3 * (2 + 1)  # 2 sample calls + 1 update each
    # 2 runners x (weights of the 16-unit MLP + a 100-step CartPole fragment)
    weights = 4 * (2 * (4 * 16 + 16) + 16 * 2 + 2 + 16 + 1)
    assert real["rl"]["bytes_per_iteration"] == sim["rl"]["bytes_per_iteration"]
    assert real["rl"]["bytes_per_iteration"] == 2 * (weights + 49 * 100)
    assert real["rl"]["env_steps_per_iteration"] == 200
    for key in ("iteration_s", "sampling_s", "learner_s"):
        assert real["rl"][key] > 0 and sim["rl"][key] > 0
    assert "RL iteration" in (tmp_path / "rl_ppo" / "comparison.md").read_text()


def test_scaling_down_cuts_env_runners_and_derives_the_shape_again() -> None:
    scenario = load_scenario(
        SCENARIOS / "rl_ppo.yaml",
        {"workload.from_rllib.num_env_runners": "6", "cluster.cpus_per_node": "8"},
    )
    fit_ = fit_to_machine(scenario, scale_down=True, cpus=2)
    w = fit_.scenario.workload
    assert "num_env_runners 6 -> 2" in fit_.note
    assert w.from_rllib.num_env_runners == w.rollout_actors == 2
    assert w.sample_bytes.value == 49 * 500  # the batch of 1000 split over 2 runners again


def test_the_fit_is_a_line_through_two_measurements() -> None:
    small = {"env_steps_per_runner": 100, "samples_x_epochs": 400, "sample_ms": 12.0}
    large = {"env_steps_per_runner": 300, "samples_x_epochs": 1200, "sample_ms": 32.0}
    small["learn_ms"], large["learn_ms"] = 9.0, 25.0
    timing = fit(small, large)
    assert timing["sample_ms_per_env_step"] == pytest.approx(0.1)
    assert timing["sample_fixed_ms"] == pytest.approx(2.0)
    assert timing["learn_ms_per_sample_epoch"] == pytest.approx(0.02)
    assert timing["learn_fixed_ms"] == pytest.approx(1.0)
    large["sample_ms"] = 40.0  # noise: the line would cross below zero at no steps
    noisy = fit(small, large)
    assert noisy["sample_fixed_ms"] == 0.0
    assert noisy["sample_ms_per_env_step"] == pytest.approx(40.0 / 300, rel=1e-4)
