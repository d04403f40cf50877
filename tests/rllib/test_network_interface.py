"""A network need not be JAX: a tiny numpy implementation of the interface trains through PPO."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.rllib.core.jax_mlp import JaxMLP
from runtime.rllib.core.network import PolicyNetwork


class LinearNumpyNet(PolicyNetwork):
    """Logits and value linear in the observation; gradients by hand (what torch would do)."""

    built = 0

    def __init__(self, obs_dim, num_actions, model_config, seed):
        rng = np.random.default_rng(seed)
        self.w = {
            "pi": (rng.standard_normal((obs_dim, num_actions)) * 0.01).astype(np.float32),
            "vf": np.zeros((obs_dim, 1), np.float32),
            "vb": np.zeros(1, np.float32),
        }
        type(self).built += 1

    def forward(self, obs):
        obs = np.asarray(obs, np.float32)
        return obs @ self.w["pi"], (obs @ self.w["vf"] + self.w["vb"])[:, 0]

    def backward(self, obs, grad_logits, grad_values):
        obs = np.asarray(obs, np.float32)
        return {
            "pi": obs.T @ grad_logits,
            "vf": obs.T @ grad_values[:, None],
            "vb": np.array([grad_values.sum()], np.float32),
        }

    def get_weights(self):
        return {k: v.copy() for k, v in self.w.items()}

    def set_weights(self, weights):
        self.w = {k: np.asarray(v, np.float32) for k, v in weights.items()}


def test_numpy_network_trains_through_ppo(cluster) -> None:
    algo = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)  # runners in the driver: the class counter is visible
        .rl_module(network=LinearNumpyNet)
        .training(lr=0.02, train_batch_size=1000, minibatch_size=250, num_epochs=4, lambda_=0.95)
        .debugging(seed=3)
        .build_algo()
    )
    try:
        assert LinearNumpyNet.built >= 2  # the learner's and the runner's
        before = algo.get_weights()["default_policy"]
        assert set(before) == {"pi", "vf", "vb"}
        results = [algo.train() for _ in range(6)]
        after = algo.get_weights()["default_policy"]
    finally:
        algo.stop()
    assert not np.array_equal(before["pi"], after["pi"])
    returns = [r["env_runners"]["episode_return_mean"] for r in results]
    assert returns[-1] > returns[0]


def test_jax_gradients_match_finite_differences() -> None:
    net = JaxMLP(3, 2, {"fcnet_hiddens": [5]}, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((4, 3)).astype(np.float32)
    g_logits = rng.standard_normal((4, 2)).astype(np.float32)
    g_values = rng.standard_normal(4).astype(np.float32)
    grads = net.backward(obs, g_logits, g_values)
    weights = net.get_weights()

    def objective(w):
        net.set_weights(w)
        logits, values = net.forward(obs)
        return float((g_logits * logits).sum() + (g_values * values).sum())

    for name in ("pi0_w", "vf0_b", "pi_out_w", "vf_out_b"):
        w = {k: v.astype(np.float64) for k, v in weights.items()}
        index = (0,) * w[name].ndim
        eps = 1e-2
        w[name][index] += eps
        up = objective(w)
        w[name][index] -= 2 * eps
        down = objective(w)
        assert grads[name][index] == pytest.approx((up - down) / (2 * eps), rel=0.05, abs=1e-3)
    net.set_weights(weights)


def test_network_factory_must_implement_the_interface(cluster) -> None:
    with pytest.raises(TypeError, match="not a runtime.rllib.core.network.PolicyNetwork"):
        (
            PPOConfig()
            .environment("CartPole-v1")
            .env_runners(num_env_runners=0)
            .rl_module(network=lambda *args: object())
            .build_algo()
        )
