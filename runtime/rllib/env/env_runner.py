"""The env runner: owns environments and samples them with the weights it is handed.

An algorithm starts ``num_env_runners`` of these as actors (or one in the driver when it
is 0). Each call gets the iteration's weights as the same object-store reference, loads
them into its own network and steps its environments; episodes run on across calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.rllib.core.losses import log_softmax
from runtime.rllib.core.network import NetworkFactory, Weights, build_network
from runtime.rllib.env.make import EnvSpec, make_env, spaces_of
from runtime.rllib.utils.threads import single_threaded_blas


class EnvRunner:
    """Steps `num_envs` environments with a categorical policy; reports finished episodes."""

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
        self._network = build_network(
            network, spaces.obs_dim, spaces.num_actions, model_config, seed
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
        if not explore:
            return logits.argmax(axis=-1)
        gumbel = -np.log(-np.log(self._rng.uniform(1e-12, 1.0, size=logits.shape)))
        return (logits + gumbel).argmax(axis=-1)

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
        obs_out = np.zeros((num_steps, n, self._obs.shape[1]), np.float32)
        actions_out = np.zeros((num_steps, n), np.int64)
        rewards = np.zeros((num_steps, n), np.float32)
        ends = np.zeros((num_steps, n), bool)
        values_out = np.zeros((num_steps, n), np.float32)
        next_values = np.zeros((num_steps, n), np.float32)
        logp_out = np.zeros((num_steps, n), np.float32)
        logits_out: np.ndarray | None = None
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        rows = np.arange(n)
        for t in range(num_steps):
            logits, values = self._network.forward(self._obs)
            if logits_out is None:
                logits_out = np.zeros((num_steps, n, logits.shape[1]), np.float32)
            actions = self._act(logits, explore)
            obs_out[t], actions_out[t], values_out[t] = self._obs, actions, values
            logits_out[t] = logits
            logp_out[t] = log_softmax(logits)[rows, actions]
            truncated_final: list[tuple[int, np.ndarray]] = []
            for i, env in enumerate(self._envs):
                obs, reward, terminated, truncated, _ = env.step(int(actions[i]))
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
        fragment = {
            "obs": obs_out,
            "actions": actions_out,
            "rewards": rewards,
            "ends": ends,
            "values": values_out,
            "next_values": next_values,
            "action_logp": logp_out,
            "action_dist_inputs": logits_out,
        }
        return {
            "fragment": fragment,
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
                obs, reward, terminated, truncated, _ = env.step(int(actions[i]))
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
