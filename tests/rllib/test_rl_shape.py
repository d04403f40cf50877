"""The shape the simulator derives from an RLlib config equals what the real algorithm does."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import runtime as ray
from runtime.core.rl_shape import KNOWN_ENV_SPACES, RLShapeError, env_spaces, rl_shape
from runtime.rllib.algorithms.pg import PGConfig
from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.rllib.env.make import spaces_of


@pytest.mark.parametrize("env", sorted(KNOWN_ENV_SPACES))
def test_known_spaces_are_gymnasiums(env: str) -> None:
    made = gymnasium.make(env)
    try:
        assert spaces_of(made) == env_spaces(env)
    finally:
        made.close()


def test_an_unknown_env_is_named_with_the_known_ones() -> None:
    with pytest.raises(RLShapeError, match="'NoSuchEnv-v0'.*CartPole-v1"):
        env_spaces("NoSuchEnv-v0")


@pytest.mark.parametrize(
    ("config", "runners"),
    [
        (
            PPOConfig()
            .environment("CartPole-v1")
            .env_runners(num_env_runners=2, num_envs_per_env_runner=2)
            .training(train_batch_size=600, minibatch_size=200, num_epochs=1)
            .rl_module(model_config={"fcnet_hiddens": [16, 8]}),
            2,
        ),
        (
            PGConfig()
            .environment("Acrobot-v1")
            .env_runners(num_env_runners=0)
            .training(train_batch_size=300)
            .rl_module(model_config={"fcnet_hiddens": [12], "vf_share_layers": True}),
            0,
        ),
        (
            PPOConfig()
            .environment("Pendulum-v1")
            .env_runners(num_env_runners=1, rollout_fragment_length=50)
            .training(train_batch_size=200, minibatch_size=50, num_epochs=1)
            .rl_module(model_config={"fcnet_hiddens": [8]}),
            1,
        ),
    ],
    ids=["ppo-cartpole-2x2", "pg-acrobot-local", "ppo-pendulum-fragment"],
)
def test_shape_equals_the_real_algorithms_numbers(cluster, config, runners: int) -> None:
    config = config.env_runners(num_cpus_per_env_runner=0).debugging(seed=0)
    settings = {**config.to_dict(), "env": config.env}
    shape = rl_shape(type(config).__name__.removesuffix("Config"), settings)
    algo = config.build_algo()
    try:
        assert algo.iteration_shape() == shape  # the table's spaces are the env's
        assert shape.num_env_runners == len(algo._runners) == runners
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] == shape.env_steps_per_iteration
        params = result["learners"]["__all_modules__"]["num_trainable_parameters"]
        assert params == shape.num_parameters
        weights = algo.get_weights()["default_policy"]
        assert sum(w.nbytes for w in weights.values()) == shape.weights_bytes
        sampler = algo._local_runner if runners == 0 else None
        steps = config.rollout_steps_per_env()
        assert steps == shape.steps_per_env
        if sampler is not None:
            out = sampler.sample(weights, 99, steps)
        else:
            out = ray.get(algo._runners[0].sample.remote(weights, 99, steps))
        fragment = out["fragment"]
        assert sum(a.nbytes for a in fragment.values()) == shape.sample_bytes
        assert out["num_env_steps"] == shape.env_steps_per_runner
    finally:
        algo.stop()


def test_the_default_mlp_has_the_shapes_counted() -> None:
    from runtime.rllib.core.jax_mlp import JaxMLP

    net = JaxMLP(4, 2, {"fcnet_hiddens": [5, 3]}, seed=0)
    shape = rl_shape("PPO", {"env": "CartPole-v1", "model_config": {"fcnet_hiddens": [5, 3]}})
    assert net.num_parameters() == shape.num_parameters
    # by hand: two bodies 4*5+5 + 5*3+3, heads 3*2+2 and 3*1+1
    assert shape.num_parameters == 2 * (25 + 18) + 8 + 4
    assert np.float32(0).nbytes * shape.num_parameters == shape.weights_bytes
