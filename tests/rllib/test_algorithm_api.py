"""Algorithm API in RLlib's shapes: get/set_weights by module id, get_policy, evaluation units."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.rllib import RLlibConfigError
from runtime.rllib.algorithms.ppo import PPOConfig


def _small() -> PPOConfig:
    return (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)
        .training(train_batch_size=200, minibatch_size=100, num_epochs=1)
        .rl_module(model_config={"fcnet_hiddens": [8]})
        .debugging(seed=2)
    )


@pytest.fixture(scope="module")
def algo(cluster):
    built = _small().evaluation(evaluation_duration=150, evaluation_duration_unit="timesteps")
    algo = built.build_algo()
    yield algo
    algo.stop()


def test_weights_by_module_id_round_trip(algo) -> None:
    weights = algo.get_weights()
    assert list(weights) == ["default_policy"]
    assert algo.get_weights(["default_policy"]).keys() == weights.keys()
    zeros = {k: np.zeros_like(v) for k, v in weights["default_policy"].items()}
    algo.set_weights({"default_policy": zeros})
    assert all(not v.any() for v in algo.get_weights()["default_policy"].values())
    algo.set_weights(weights)
    for name, w in weights["default_policy"].items():
        np.testing.assert_array_equal(algo.get_weights()["default_policy"][name], w)
    with pytest.raises(ValueError, match="no module \\['other'\\]"):
        algo.get_weights(["other"])
    with pytest.raises(ValueError, match="set_weights got weights of \\['pi0_b', 'pi0_w'"):
        algo.set_weights(weights["default_policy"])  # the inner dict is not keyed by module


def test_get_policy_acts_and_holds_the_weights(algo) -> None:
    policy = algo.get_policy()
    action, state, extra = policy.compute_single_action(np.zeros(4), explore=False)
    assert action in (0, 1) and state == [] and extra == {}
    assert action == algo.compute_single_action(np.zeros(4), explore=False)
    assert policy.get_weights().keys() == algo.get_weights()["default_policy"].keys()
    assert policy.num_parameters() == algo.iteration_shape().num_parameters
    with pytest.raises(ValueError, match="no policy 'p1'"):
        algo.get_policy("p1")


def test_evaluation_in_timesteps(algo) -> None:
    out = algo.evaluate()["env_runners"]
    assert out["num_env_steps_sampled"] == 150
    assert out["num_episodes"] >= 1  # a greedy untrained policy ends CartPole in < 150 steps


def test_a_bad_evaluation_unit_is_named() -> None:
    with pytest.raises(RLlibConfigError, match="evaluation_duration_unit must be 'episodes' or"):
        PPOConfig().evaluation(evaluation_duration_unit="minutes")
