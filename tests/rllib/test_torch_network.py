"""`config.framework("torch")`: the default MLP with torch's gradients (skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.rllib import RLlibConfigError
from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.rllib.core.jax_mlp import JaxMLP


def test_tensorflow_and_a_network_beside_a_framework_are_refused() -> None:
    with pytest.raises(RLlibConfigError, match="framework 'tf2' is not supported"):
        PPOConfig().framework("tf2")
    config = PPOConfig().environment("CartPole-v1").framework("jax").rl_module(network=JaxMLP)
    with pytest.raises(RLlibConfigError, match="set one of them"):
        config.validate()


def test_torch_gradients_equal_jaxs() -> None:
    pytest.importorskip("torch", reason="framework('torch') needs torch")
    from runtime.rllib.core.torch_mlp import TorchMLP

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 4)).astype(np.float32)
    g_logits = rng.normal(size=(6, 2)).astype(np.float32)
    g_values = rng.normal(size=6).astype(np.float32)
    for model in ({"fcnet_hiddens": [8, 5]}, {"fcnet_hiddens": [7], "vf_share_layers": True}):
        jax_net, torch_net = JaxMLP(4, 2, model, 3), TorchMLP(4, 2, model, 3)
        assert jax_net.get_weights().keys() == torch_net.get_weights().keys()
        a, b = (
            jax_net.backward(obs, g_logits, g_values),
            torch_net.backward(obs, g_logits, g_values),
        )
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6)


def test_ppo_trains_with_the_torch_network(cluster) -> None:
    pytest.importorskip("torch", reason="framework('torch') needs torch")
    algo = (
        PPOConfig()
        .environment("CartPole-v1")
        .framework("torch")
        .env_runners(num_env_runners=1, num_cpus_per_env_runner=0)
        .training(train_batch_size=200, minibatch_size=100, num_epochs=1)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        before = algo.get_weights()["default_policy"]
        result = algo.train()
        after = algo.get_weights()["default_policy"]
        assert result["num_env_steps_sampled_lifetime"] == 200
        assert any(not np.array_equal(before[k], after[k]) for k in before)
    finally:
        algo.stop()
