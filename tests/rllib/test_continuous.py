"""Continuous actions: the diagonal Gaussian's gradients, and PPO learning a Box-action task."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from runtime.rllib.algorithms.ppo import PPOConfig
from runtime.rllib.core.distributions import Categorical, DiagGaussian


class Reach(gymnasium.Env):
    """Say the number you are shown: obs = target in [-1, 1], reward = -(action - target)^2.

    Actions are in [-2, 2] (the policy's normalized [-1, 1] is stretched onto it); an
    episode is 10 steps. A random policy (std 1 in normalized space) scores about -25 per
    episode; the best policy scores 0.
    """

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def __init__(self, config=None) -> None:
        del config
        self._rng = np.random.default_rng(0)
        self._t = 0
        self._target = 0.0

    def _obs(self) -> np.ndarray:
        return np.array([self._target], np.float32)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        self._target = float(self._rng.uniform(-1, 1))
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, np.float32)), action
        reward = -float((float(action[0]) - self._target) ** 2)
        self._t += 1
        self._target = float(self._rng.uniform(-1, 1))
        return self._obs(), reward, False, self._t >= 10, {}


def _numeric_grad(f, z: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    grad = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("dist", [DiagGaussian, Categorical])
def test_distribution_gradients_match_finite_differences(dist) -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0, 0.5, size=(3, 4))
    old = z + rng.normal(0, 0.3, size=z.shape)
    actions = dist.sample(z, rng, explore=True)
    np.testing.assert_allclose(
        dist.logp_grad(z, actions),
        _numeric_grad(lambda x: dist.logp(x, actions).sum(), z),
        rtol=1e-4,
        atol=1e-6,
    )
    _, g_entropy = dist.entropy(z)
    np.testing.assert_allclose(
        g_entropy, _numeric_grad(lambda x: dist.entropy(x)[0].sum(), z), rtol=1e-4, atol=1e-6
    )
    kl, g_kl = dist.kl(old, z)
    assert (kl >= 0).all()
    np.testing.assert_allclose(
        g_kl, _numeric_grad(lambda x: dist.kl(old, x)[0].sum(), z), rtol=1e-4, atol=1e-6
    )


def test_gaussian_logp_is_the_normal_density() -> None:
    z = np.array([[0.5, np.log(2.0)]])
    a = np.array([[1.5]])
    expected = -0.5 * (1.0 / 2.0) ** 2 - np.log(2.0) - 0.5 * np.log(2 * np.pi)
    assert DiagGaussian.logp(z, a)[0] == pytest.approx(expected)


def test_ppo_learns_a_continuous_action_task(cluster) -> None:
    config = (
        PPOConfig()
        .environment(Reach)
        .env_runners(num_env_runners=1, num_cpus_per_env_runner=0)
        .training(lr=3e-3, train_batch_size=1000, minibatch_size=250, num_epochs=8, lambda_=0.95)
        .rl_module(model_config={"fcnet_hiddens": [32]})
        .debugging(seed=3)
    )
    algo = config.build_algo()
    try:
        returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(12)]
        action = algo.compute_single_action(np.array([0.5], np.float32), explore=False)
        assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0
        policy_action, state, extra = algo.get_policy().compute_single_action(
            np.array([0.5], np.float32), explore=False
        )
        np.testing.assert_array_equal(policy_action, action)
        assert (state, extra) == ([], {})
        shape = algo.iteration_shape()
        assert shape.spaces.continuous and shape.spaces.num_outputs == 2
        assert algo.get_policy().num_parameters() == shape.num_parameters
    finally:
        algo.stop()
    assert returns[0] < -8.0, returns  # near random at the start
    assert max(returns[-3:]) > returns[0] / 3, returns  # the error shrinks well below a third
