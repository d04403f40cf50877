"""Bad input to runtime.rllib gets a clear error; importing runtime loads neither JAX nor Gymnasium."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runtime.rllib import EnvError, RLlibConfigError
from runtime.rllib.agents.ppo import DEFAULT_CONFIG, PPOTrainer
from runtime.rllib.algorithms.pg import PGConfig
from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.rllib.env.make import register_env


def test_import_runtime_and_rllib_config_is_light() -> None:
    code = (
        "import sys, runtime, runtime.rllib\n"
        "from runtime.rllib.algorithms.ppo import PPOConfig\n"
        "PPOConfig().environment('CartPole-v1').training(lr=1e-3)\n"
        "heavy = [m for m in ('jax', 'jaxlib', 'gymnasium', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_env_raises_env_error(cluster) -> None:
    with pytest.raises(EnvError, match="NoSuchEnv-v0"):
        PPOConfig().environment("NoSuchEnv-v0").build_algo()


def test_unsupported_action_spaces_are_refused(cluster) -> None:
    import gymnasium

    class Grid(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(-1.0, 1.0, (2,))
        action_space = gymnasium.spaces.MultiDiscrete([3, 3])

        def __init__(self, config=None) -> None:
            del config

    with pytest.raises(EnvError, match="action space MultiDiscrete"):
        PPOConfig().environment(Grid).build_algo()


def test_registered_env_creator(cluster) -> None:
    import gymnasium

    register_env(
        "my-cartpole", lambda cfg: gymnasium.make("CartPole-v1", max_episode_steps=cfg["steps"])
    )
    algo = (
        PPOConfig()
        .environment("my-cartpole", env_config={"steps": 10})
        .env_runners(num_env_runners=1, num_cpus_per_env_runner=0)
        .training(train_batch_size=100, minibatch_size=50, num_epochs=1)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert result["env_runners"]["episode_len_max"] <= 10


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": -1.0}, "lr must be a number > 0"),
        ({"train_batch_size": 0}, "train_batch_size must be a positive int"),
        ({"gamma": 1.5}, r"gamma must be a number in \[0, 1\]"),
        ({"clip_param": 0}, "clip_param must be a number > 0"),
        ({"num_epochs": 2.5}, "num_epochs must be a positive int"),
        ({"minibatch_size": 8000}, r"minibatch_size \(8000\) must be <= train_batch_size"),
    ],
)
def test_bad_training_values_are_named(settings, message) -> None:
    with pytest.raises(RLlibConfigError, match=message):
        PPOConfig().environment("CartPole-v1").training(**settings).validate()


def test_unknown_settings_are_named() -> None:
    with pytest.raises(RLlibConfigError, match="unknown setting 'clip_parm'"):
        PPOConfig().training(clip_parm=0.2)
    with pytest.raises(RLlibConfigError, match="unknown setting 'clip_param'"):
        PGConfig().training(clip_param=0.2)
    with pytest.raises(RLlibConfigError, match="unknown PPOConfig setting 'bogus'"):
        PPOConfig().update_from_dict({"bogus": 1})
    with pytest.raises(RLlibConfigError, match="num_env_runners must be an int >= 0"):
        PPOConfig().env_runners(num_env_runners=-1)
    with pytest.raises(RLlibConfigError, match="evaluation_config has unknown keys"):
        PPOConfig().evaluation(evaluation_config={"render": True})
    with pytest.raises(RLlibConfigError, match="fcnet_activation"):
        from runtime.rllib.core.jax_mlp import model_settings

        model_settings({"fcnet_activation": "swish"})


def test_no_env_is_named() -> None:
    with pytest.raises(RLlibConfigError, match="no environment set"):
        PPOConfig().build_algo()


def test_old_config_dict_keys() -> None:
    config = PPOConfig().update_from_dict(
        {
            "env": "CartPole-v1",
            "num_workers": 3,
            "sgd_minibatch_size": 64,
            "num_sgd_iter": 4,
            "lambda": 0.9,
        }
    )
    assert (config.num_env_runners, config.minibatch_size, config.num_epochs, config.lambda_) == (
        3,
        64,
        4,
        0.9,
    )
    assert DEFAULT_CONFIG["clip_param"] == 0.3 and DEFAULT_CONFIG["lr"] == 5e-5
    assert PPOConfig().to_dict() == DEFAULT_CONFIG
    assert PPOTrainer.default_resource_request({"num_workers": 1}) == {"cpu": 2.0}


def test_builder_returns_self_and_copies() -> None:
    config = PPOConfig()
    assert config.environment("CartPole-v1") is config
    assert config.training(lr=0.01).env_runners(num_env_runners=1) is config
    clone = config.copy()
    clone.training(lr=0.5)
    assert config.lr == 0.01 and clone.lr == 0.5


@pytest.mark.parametrize("config_class", [PPOConfig, PGConfig])
def test_a_minibatch_larger_than_the_batch_is_refused(config_class) -> None:
    config = (
        config_class().environment("CartPole-v1").training(train_batch_size=100, minibatch_size=200)
    )
    with pytest.raises(
        RLlibConfigError, match=r"minibatch_size \(200\) must be <= train_batch_size"
    ):
        config.validate()
