"""The env runner: owns environments and samples them with the weights it is handed.

An algorithm starts ``num_env_runners`` of these as actors (or one in the driver when it
is 0). Each call gets the iteration's weights as the same object-store reference, loads
them into its own network and steps its environments; episodes run on across calls.
A fragment's columns are `runtime.core.rl_shape.fragment_columns` (the simulator sizes
samples by the same table). Continuous actions are sampled in the policy's normalized
space and mapped onto the Box's bounds before stepping (RLlib's ``normalize_actions``:
``low + (a + 1) (high - low) / 2``, clipped to the bounds); fragments keep the sampled ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.core.rl_shape import EnvSpaces, fragment_columns
from runtime.rllib.core.distributions import distribution
from runtime.rllib.core.network import NetworkFactory, Weights, build_network
from runtime.rllib.env.make import EnvSpec, make_env, spaces_of
from runtime.rllib.utils.threads import single_threaded_blas


def env_action(action: np.ndarray, spaces: EnvSpaces, space: Any) -> Any:
    """What the environment is given: the index, or the action mapped onto the Box's bounds."""
    if not spaces.continuous:
        return int(action)
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return np.asarray(action, np.float32)  # an unbounded Box takes the action as it is
    return np.clip(low + (action + 1.0) * (high - low) / 2.0, low, high)


class EnvRunner:
    """Steps `num_envs` environments with the policy's distribution; reports finished episodes."""

    def __init__(
        self,
        env_spec: EnvSpec,
        network: NetworkFactory | None,
        model_config: dict[str, Any],
        num_envs: int,
        seed: int,
        worker_index: int,
    ) -> None:
        self._envs = [make_env(env_spec) for _ in range(num_envs)]
        spaces = spaces_of(self._envs[0])
        self._spaces = spaces
        self._action_space = self._envs[0].action_space
        self._dist = distribution(spaces.continuous)
        self._network = build_network(
            network, spaces.obs_dim, spaces.num_outputs, model_config, seed
        )
        base = seed + 1000 * worker_index
        self._rng = np.random.default_rng(base)
        self._obs = np.stack(
            [self._flat(env.reset(seed=base + i)[0]) for i, env in enumerate(self._envs)]
        )
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._weights_seq = -1

    @staticmethod
    def _flat(obs: Any) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).reshape(-1)

    def _load(self, weights: Weights, seq: int) -> None:
        if seq != self._weights_seq:
            self._network.set_weights(weights)
            self._weights_seq = seq

    def _act(self, logits: np.ndarray, explore: bool) -> np.ndarray:
        return self._dist.sample(logits, self._rng, explore)

    def _step(self, env: Any, action: np.ndarray) -> Any:
        return env.step(env_action(action, self._spaces, self._action_space))

    def ping(self) -> bool:
        """True once the environments and the network are built (used to await startup)."""
        return True

    def sample(
        self, weights: Weights, seq: int, num_steps: int, explore: bool = True
    ) -> dict[str, Any]:
        """`num_steps` steps of every environment: a fragment ``[T, num_envs, ...]`` and episodes."""
        with single_threaded_blas():
            return self._sample(weights, seq, num_steps, explore)

    def _sample(self, weights: Weights, seq: int, num_steps: int, explore: bool) -> dict[str, Any]:
        self._load(weights, seq)
        n = len(self._envs)
        columns = {
            name: np.zeros((num_steps, n, *shape), dtype)
            for name, (shape, dtype) in fragment_columns(self._spaces).items()
        }
        obs_out, actions_out, rewards = columns["obs"], columns["actions"], columns["rewards"]
        ends, values_out, next_values = columns["ends"], columns["values"], columns["next_values"]
        logp_out, logits_out = columns["action_logp"], columns["action_dist_inputs"]
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        for t in range(num_steps):
            logits, values = self._network.forward(self._obs)
            actions = self._act(logits, explore)
            obs_out[t], actions_out[t], values_out[t] = self._obs, actions, values
            logits_out[t] = logits
            logp_out[t] = self._dist.logp(logits, actions)
            truncated_final: list[tuple[int, np.ndarray]] = []
            for i, env in enumerate(self._envs):
                obs, reward, terminated, truncated, _ = self._step(env, actions[i])
                rewards[t, i] = reward
                self._returns[i] += reward
                self._lengths[i] += 1
                if terminated or truncated:
                    ends[t, i] = True
                    episode_returns.append(float(self._returns[i]))
                    episode_lengths.append(int(self._lengths[i]))
                    self._returns[i], self._lengths[i] = 0.0, 0
                    if not terminated:
                        truncated_final.append((i, self._flat(obs)))
                    obs = env.reset()[0]
                self._obs[i] = self._flat(obs)
            if truncated_final:
                idx = [i for i, _ in truncated_final]
                _, final_values = self._network.forward(np.stack([o for _, o in truncated_final]))
                next_values[t, idx] = final_values
            if t > 0:
                continuing = ~ends[t - 1]
                next_values[t - 1, continuing] = values[continuing]
        open_last = ~ends[num_steps - 1]  # episodes that run on past the fragment
        ends[num_steps - 1] = True
        _, last_values = self._network.forward(self._obs)
        next_values[num_steps - 1, open_last] = last_values[open_last]
        return {
            "fragment": columns,
            "episode_returns": episode_returns,
            "episode_lengths": episode_lengths,
            "num_env_steps": num_steps * n,
        }

    def sample_episodes(
        self, weights: Weights, seq: int, num_episodes: int, explore: bool
    ) -> dict[str, Any]:
        """Run fresh episodes until `num_episodes` finish (evaluation); returns and lengths."""
        with single_threaded_blas():
            return self._sample_episodes(weights, seq, num_episodes, explore)

    def _sample_episodes(
        self, weights: Weights, seq: int, num_episodes: int, explore: bool
    ) -> dict[str, Any]:
        self._load(weights, seq)
        for i, env in enumerate(self._envs):
            self._obs[i] = self._flat(env.reset()[0])
        self._returns[:], self._lengths[:] = 0.0, 0
        returns: list[float] = []
        lengths: list[int] = []
        while len(returns) < num_episodes:
            logits, _ = self._network.forward(self._obs)
            actions = self._act(logits, explore)
            for i, env in enumerate(self._envs):
                obs, reward, terminated, truncated, _ = self._step(env, actions[i])
                self._returns[i] += reward
                self._lengths[i] += 1
                if terminated or truncated:
                    returns.append(float(self._returns[i]))
                    lengths.append(int(self._lengths[i]))
                    self._returns[i], self._lengths[i] = 0.0, 0
                    obs = env.reset()[0]
                self._obs[i] = self._flat(obs)
        return {
            "episode_returns": returns[:num_episodes],
            "episode_lengths": lengths[:num_episodes],
            "num_env_steps": int(sum(lengths)),
        }
