"""From env-runner fragments to a training batch: GAE advantages and value targets."""

from __future__ import annotations

import numpy as np

FRAGMENT_KEYS = (
    "obs",
    "actions",
    "rewards",
    "ends",
    "values",
    "next_values",
    "action_logp",
    "action_dist_inputs",
)
"""What an env runner's fragment holds, each ``[T, num_envs, ...]`` (see `EnvRunner.sample`)."""


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    ends: np.ndarray,
    gamma: float,
    lambda_: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over ``[T, N]`` arrays; (advantages, value targets).

    ``next_values[t]`` is the value of the observation after step t (0 when the episode
    terminated there, the bootstrap value when it was truncated or the fragment ended);
    ``ends[t]`` cuts the recursion where an episode or the fragment ends.
    """
    deltas = rewards + gamma * next_values - values
    advantages = np.zeros_like(deltas)
    running = np.zeros(deltas.shape[1:], dtype=deltas.dtype)
    carry = gamma * lambda_ * (1.0 - ends.astype(deltas.dtype))
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages, advantages + values


def build_batch(
    fragments: list[dict[str, np.ndarray]], gamma: float, lambda_: float
) -> dict[str, np.ndarray]:
    """Advantages per fragment, then everything flattened to ``[steps, ...]`` and concatenated."""
    parts: dict[str, list[np.ndarray]] = {}
    for fragment in fragments:
        adv, targets = compute_gae(
            fragment["rewards"],
            fragment["values"],
            fragment["next_values"],
            fragment["ends"],
            gamma,
            lambda_,
        )
        columns = {
            "obs": fragment["obs"],
            "actions": fragment["actions"],
            "action_logp": fragment["action_logp"],
            "action_dist_inputs": fragment["action_dist_inputs"],
            "values": fragment["values"],
            "advantages": adv,
            "value_targets": targets,
        }
        for key, column in columns.items():
            flat = column.reshape(column.shape[0] * column.shape[1], *column.shape[2:])
            parts.setdefault(key, []).append(flat)
    return {key: np.concatenate(columns) for key, columns in parts.items()}


def standardize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (RLlib standardises advantages per training batch)."""
    return (x - x.mean()) / max(float(x.std()), 1e-4)
