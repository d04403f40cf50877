"""The sim's `rl` workload shaped `from_rllib`: derived fields, timing profiles, iteration times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.core.rl_shape import RLTimings, rl_shape
from sim.runner import run_scenario
from sim.scenario import ScenarioError, load_scenario, validate_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

CARTPOLE = {"env": "CartPole-v1", "num_env_runners": 3, "train_batch_size": 900}


def scenario(workload: dict[str, Any], cpus: int = 8, gpus: int = 0) -> Any:
    raw = {
        "name": "t",
        "seed": 3,
        "cluster": {"nodes": 1, "cpus_per_node": cpus, "gpus_per_node": gpus},
        "workload": {"kind": "rl", "iterations": 3, **workload},
        "output": {"progress": False},
    }
    return validate_scenario(raw)


def test_the_shape_comes_from_the_rllib_config() -> None:
    rllib = {**CARTPOLE, "model": {"fcnet_hiddens": [32]}}
    w = scenario({"from_rllib": rllib}).workload
    assert w.rollout_actors == 3 and w.rollout_cpus == 1.0
    assert w.learner_cpus == 0.0 and w.learner_gpus == 0.0  # RLlib's: the driver's learner
    # A CartPole step is obs 4 x f32, action i64, reward, value, next value, logp (f32),
    # end (bool) and 2 logits (f32): 49 bytes; 900 steps / 3 runners = 300 each.
    assert w.sample_bytes.value == 49 * 300
    # 32 hidden units: two bodies (4*32+32), policy head 32*2+2, value head 32+1; float32.
    assert w.weights_bytes.value == 4 * (2 * 160 + 66 + 33)


def test_learner_actor_cpus_and_a_local_runner() -> None:
    w = scenario(
        {"from_rllib": {**CARTPOLE, "num_env_runners": 0, "num_learners": 1}, "learner_gpus": 1},
        gpus=1,
    ).workload
    assert (w.rollout_actors, w.rollout_cpus) == (1, 0.0)  # sampling in the driver
    assert (w.learner_cpus, w.learner_gpus) == (1.0, 1.0)


def test_a_derived_field_set_otherwise_is_refused_with_both_values() -> None:
    with pytest.raises(ScenarioError, match=r"rollout_actors \(given 5, derived 3\)"):
        scenario({"from_rllib": CARTPOLE, "rollout_actors": 5})
    same = scenario({"from_rllib": CARTPOLE, "rollout_actors": 3}).workload
    assert same.rollout_actors == 3


def test_bad_rllib_configs_are_named() -> None:
    with pytest.raises(ScenarioError, match="NoSuchEnv-v0.*known"):
        scenario({"from_rllib": {"env": "NoSuchEnv-v0"}})
    with pytest.raises(ScenarioError, match="from_rllib.num_sgd_iter"):
        scenario({"from_rllib": {**CARTPOLE, "num_sgd_iter": 3}})
    with pytest.raises(ScenarioError, match="timing_profile times an RLlib config"):
        scenario({"timing_profile": "x.yaml"})


def test_a_timing_profile_sets_rollout_and_train_times(tmp_path: Path) -> None:
    profile = tmp_path / "rl.yaml"
    profile.write_text(
        "rl_timing: {sample_ms_per_env_step: 0.5, sample_fixed_ms: 2,"
        " learn_ms_per_sample_epoch: 0.01, learn_fixed_ms: 3}\n"
    )
    rllib = {**CARTPOLE, "num_epochs": 4}
    w = scenario({"from_rllib": rllib, "timing_profile": str(profile)}).workload
    assert w.rollout_ms.value == pytest.approx(2 + 0.5 * 300)
    assert w.train_ms.value == pytest.approx(3 + 0.01 * 900 * 4)
    timings = RLTimings(0.5, 2, 0.01, 3)
    shape = rl_shape("PPO", rllib)
    assert (timings.rollout_ms(shape), timings.train_ms(shape)) == (
        w.rollout_ms.value,
        w.train_ms.value,
    )
    profile.write_text("rl_timing: {sample_ms_per_env_step: fast}\n")
    with pytest.raises(ScenarioError, match="rl_timing mapping with numbers"):
        scenario({"from_rllib": rllib, "timing_profile": str(profile)})


def test_iteration_times_add_up() -> None:
    w = {
        "from_rllib": CARTPOLE,
        "rollout_ms": 40,
        "train_ms": 25,
        "iterations": 6,
    }
    metrics = run_scenario(scenario(w))
    rl = metrics["rl"]
    assert rl["iterations"] == 6
    assert rl["sampling_s"] >= 0.040 and rl["learner_s"] >= 0.025
    assert rl["iteration_s"] == pytest.approx(rl["sampling_s"] + rl["learner_s"], rel=1e-6)
    assert rl["iteration_s"] < 0.040 + 0.025 + 0.01  # control-plane overheads are small
    shape = rl_shape("PPO", CARTPOLE)
    assert rl["bytes_per_iteration"] == shape.bytes_per_iteration
    assert metrics["tasks"] == 6 * (3 + 1)


def test_the_shipped_ppo_scenario_and_a_bigger_cluster() -> None:
    shipped = load_scenario(SCENARIOS / "rl_ppo.yaml")
    assert shipped.workload.rollout_actors == 2
    assert shipped.workload.rollout_ms.value > 0  # from the shipped profile
    big = load_scenario(
        SCENARIOS / "rl_ppo.yaml",
        {"workload.from_rllib.num_env_runners": "16", "cluster.cpus_per_node": "20"},
    )
    assert big.workload.rollout_actors == 16
    assert big.workload.sample_bytes.value == 49 * 63  # 1000 steps over 16 runners, rounded up
    assert big.workload.rollout_ms.value < shipped.workload.rollout_ms.value


def test_other_rl_scenarios_keep_their_fields() -> None:
    w = load_scenario(SCENARIOS / "rl.yaml").workload
    assert (w.rollout_actors, w.learner_gpus, w.from_rllib) == (32, 1.0, None)
