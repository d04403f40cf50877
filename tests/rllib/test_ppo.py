"""PPO and PG on CartPole with env-runner actors: learning, result keys, checkpoints, inference."""

from __future__ import annotations

import math

import numpy as np
import pytest

import runtime as ray
from runtime.rllib.algorithms.algorithm import Algorithm
from runtime.rllib.algorithms.pg import PGConfig
from runtime.rllib.algorithms.ppo import PPO, PPOConfig

RANDOM_POLICY_RETURN = 22.0  # CartPole-v1 under uniformly random actions


def _fast_ppo(seed: int = 1, runners: int = 2) -> PPOConfig:
    return (
        PPOConfig()
        .environment("CartPole-v1")
        # No CPU held per runner: a test builds a second algorithm beside the trained one.
        .env_runners(num_env_runners=runners, num_cpus_per_env_runner=0)
        .training(
            lr=1e-3,
            train_batch_size=1000,
            minibatch_size=250,
            num_epochs=6,
            lambda_=0.95,
            clip_param=0.2,
            vf_loss_coeff=0.5,
        )
        .debugging(seed=seed)
    )


@pytest.fixture(scope="module")
def trained(cluster):
    """A PPO trained 12 short iterations on 2 env-runner actors, and its results."""
    algo = _fast_ppo().build_algo()
    results = [algo.train() for _ in range(12)]
    yield algo, results
    algo.stop()


def test_ppo_learns_cartpole(trained) -> None:
    _, results = trained
    first, last = results[0], results[-1]
    assert last["env_runners"]["episode_return_mean"] > 3 * RANDOM_POLICY_RETURN
    assert last["env_runners"]["episode_return_mean"] > first["env_runners"]["episode_return_mean"]


def test_result_has_rays_keys(trained) -> None:
    _, results = trained
    last = results[-1]
    assert last["training_iteration"] == 12
    assert last["num_env_steps_sampled_lifetime"] == 12 * 1000
    assert last["env_runners"]["num_env_steps_sampled_lifetime"] == 12 * 1000
    for key in ("episode_return_mean", "episode_return_max", "episode_len_mean", "num_episodes"):
        assert key in last["env_runners"]
    module = last["learners"]["default_policy"]
    for key in (
        "policy_loss",
        "vf_loss",
        "entropy",
        "mean_kl_loss",
        "curr_kl_coeff",
        "vf_explained_var",
    ):
        assert math.isfinite(module[key]), key
    timers = last["timers"]
    for key in (
        "training_iteration",
        "env_runner_sampling_timer",
        "learner_update_timer",
        "synch_weights",
    ):
        assert timers[key] >= 0
    assert last["time_total_s"] >= sum(r["time_this_iter_s"] for r in results) - 1e-6
    assert last["learners"]["__all_modules__"]["num_trainable_parameters"] > 0


def test_compute_single_action(trained) -> None:
    algo, _ = trained
    obs = np.array([0.0, 0.0, 0.05, 0.0], np.float32)
    assert algo.compute_single_action(obs, explore=False) in (0, 1)
    assert {algo.compute_single_action(obs) for _ in range(20)} <= {0, 1}
    # A pole falling right: a trained policy pushes the cart right (action 1).
    assert algo.compute_single_action(np.array([0, 0, 0.15, 0.5]), explore=False) == 1
    with pytest.raises(ValueError, match="observation has 3 values"):
        algo.compute_single_action([0.0, 0.0, 0.0])


def test_evaluate(trained) -> None:
    algo, _ = trained
    out = algo.evaluate()
    runners = out["env_runners"]
    assert runners["num_episodes"] == 10
    assert runners["episode_return_mean"] > 2 * RANDOM_POLICY_RETURN
    assert (
        runners["episode_return_min"]
        <= runners["episode_return_mean"]
        <= runners["episode_return_max"]
    )


def test_save_restore_round_trip(trained, tmp_path) -> None:
    algo, _ = trained
    saved = algo.save(str(tmp_path / "ckpt"))
    assert saved.checkpoint.path == str(tmp_path / "ckpt")
    weights = algo.get_weights()["default_policy"]
    obs = np.random.default_rng(0).normal(0, 0.1, size=(8, 4))
    actions = [algo.compute_single_action(o, explore=False) for o in obs]

    clone = Algorithm.from_checkpoint(saved.checkpoint.path)
    try:
        assert isinstance(clone, PPO)
        assert clone.iteration == algo.iteration
        for name, w in weights.items():
            np.testing.assert_array_equal(clone.get_weights()["default_policy"][name], w)
        assert [clone.compute_single_action(o, explore=False) for o in obs] == actions
        result = clone.train()
        assert result["training_iteration"] == algo.iteration + 1
        assert result["num_env_steps_sampled_lifetime"] == (algo.iteration + 1) * 1000
        assert result["iterations_since_restore"] == 1
        # restore() brings the trained clone back to the checkpoint.
        clone.restore(saved)
        assert clone.iteration == algo.iteration
        for name, w in weights.items():
            np.testing.assert_array_equal(clone.get_weights()["default_policy"][name], w)
    finally:
        clone.stop()


def test_restore_refuses_what_is_not_a_checkpoint(trained, tmp_path) -> None:
    algo, _ = trained
    with pytest.raises(FileNotFoundError, match="not a runtime.rllib checkpoint"):
        algo.restore(str(tmp_path))


def test_same_seed_same_learning(cluster) -> None:
    runs = []
    for _ in range(2):
        algo = _fast_ppo(seed=5).training(train_batch_size=500, minibatch_size=250).build_algo()
        try:
            runs.append([algo.train()["env_runners"]["episode_return_mean"] for _ in range(2)])
        finally:
            algo.stop()
    assert runs[0] == runs[1]


def test_learner_actor_and_local_runner(cluster) -> None:
    algo = (
        _fast_ppo(runners=0)
        .learners(num_learners=1, num_cpus_per_learner=0)
        .training(train_batch_size=400, minibatch_size=200, num_epochs=2)
        .build_algo()
    )
    try:
        before = algo.get_weights()["default_policy"]
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] == 400
        after = algo.get_weights()["default_policy"]
        assert any(not np.array_equal(before[k], after[k]) for k in before)
    finally:
        algo.stop()


def test_pg_improves(cluster) -> None:
    algo = (
        PGConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=2, num_cpus_per_env_runner=0)
        .training(lr=4e-3, train_batch_size=1000)
        .debugging(seed=1)
        .build_algo()
    )
    try:
        results = [algo.train() for _ in range(10)]
    finally:
        algo.stop()
    assert results[-1]["env_runners"]["episode_return_mean"] > 1.5 * RANDOM_POLICY_RETURN
    assert "mean_kl_loss" not in results[-1]["learners"]["default_policy"]


def test_evaluation_interval_adds_evaluation(cluster) -> None:
    algo = (
        _fast_ppo(runners=1)
        .training(train_batch_size=300, minibatch_size=100, num_epochs=1)
        .evaluation(evaluation_interval=2, evaluation_duration=3)
        .build_algo()
    )
    try:
        first, second = algo.train(), algo.train()
    finally:
        algo.stop()
    assert "evaluation" not in first
    assert second["evaluation"]["env_runners"]["num_episodes"] == 3


def test_stop_kills_runners(cluster) -> None:
    algo = _fast_ppo().training(train_batch_size=200, minibatch_size=100).build_algo()
    runners = list(algo._runners)
    algo.stop()
    for runner in runners:
        with pytest.raises(ray.ActorDiedError):
            ray.get(runner.ping.remote(), timeout=60)
    with pytest.raises(RuntimeError, match="stopped"):
        algo.train()
