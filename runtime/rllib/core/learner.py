"""The learner: holds the network and optimiser, turns a training batch into weight updates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.rllib.core.losses import LossSettings, pg_loss, ppo_loss
from runtime.rllib.core.network import NetworkFactory, Weights, build_network
from runtime.rllib.core.optim import Adam
from runtime.rllib.core.postprocessing import build_batch, standardize
from runtime.rllib.utils.threads import single_threaded_blas

LOSSES = {"ppo": ppo_loss, "pg": pg_loss}
"""Loss functions by algorithm."""


@dataclass(frozen=True)
class LearnerSpec:
    """Everything a learner needs to build itself, in a driver or in a learner actor."""

    obs_dim: int
    num_actions: int
    network: NetworkFactory | None
    model_config: dict[str, Any]
    seed: int
    loss: str
    loss_settings: LossSettings
    lr: float
    grad_clip: float | None
    num_epochs: int
    minibatch_size: int | None
    shuffle_batch_per_epoch: bool
    gamma: float
    lambda_: float
    kl_coeff: float
    kl_target: float


class Learner:
    """Computes advantages, then runs epochs of minibatch gradient steps on a batch."""

    def __init__(self, spec: LearnerSpec) -> None:
        self._spec = spec
        self._network = build_network(
            spec.network, spec.obs_dim, spec.num_actions, spec.model_config, spec.seed
        )
        self._weights = self._network.get_weights()
        self._optimizer = Adam(lr=spec.lr, grad_clip=spec.grad_clip)
        self._kl_coeff = spec.kl_coeff
        self._rng = np.random.default_rng(spec.seed + 7)
        self._loss = LOSSES[spec.loss]
        self._num_updates = 0

    def num_parameters(self) -> int:
        """How many trainable scalars the network has."""
        return int(sum(w.size for w in self._weights.values()))

    def get_weights(self) -> Weights:
        """The current weights (what the env runners sample with)."""
        return self._weights

    def get_state(self) -> dict[str, Any]:
        """Weights, optimiser state, KL coefficient and RNG: enough to resume exactly."""
        return {
            "weights": self._weights,
            "optimizer": self._optimizer,
            "kl_coeff": self._kl_coeff,
            "rng": self._rng.bit_generator.state,
            "num_updates": self._num_updates,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what `get_state` returned."""
        self._weights = {k: np.asarray(v) for k, v in state["weights"].items()}
        self._network.set_weights(self._weights)
        self._optimizer = state["optimizer"]
        self._kl_coeff = float(state["kl_coeff"])
        self._rng.bit_generator.state = state["rng"]
        self._num_updates = int(state["num_updates"])

    def update(self, fragments: list[dict[str, np.ndarray]]) -> dict[str, float]:
        """One training step on the runners' fragments; returns the learner statistics."""
        with single_threaded_blas():
            return self._update(fragments)

    def _update(self, fragments: list[dict[str, np.ndarray]]) -> dict[str, float]:
        spec = self._spec
        batch = build_batch(fragments, spec.gamma, spec.lambda_)
        batch["advantages"] = standardize(batch["advantages"])
        size = len(batch["actions"])
        minibatch = min(spec.minibatch_size or size, size)
        totals: dict[str, float] = {}
        count = 0
        norms = []
        for _ in range(spec.num_epochs):
            order = self._rng.permutation(size) if spec.shuffle_batch_per_epoch else np.arange(size)
            for start in range(0, size - minibatch + 1, minibatch):
                idx = order[start : start + minibatch]
                mb = {key: column[idx] for key, column in batch.items()}
                self._network.set_weights(self._weights)  # cheap: no copy for numpy arrays
                logits, values = self._network.forward(mb["obs"])
                stats, g_logits, g_values = self._loss(
                    logits, values, mb, spec.loss_settings, self._kl_coeff
                )
                grads = self._network.backward(mb["obs"], g_logits, g_values)
                self._weights, norm = self._optimizer.apply(self._weights, grads)
                norms.append(norm)
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                count += 1
        self._network.set_weights(self._weights)
        self._num_updates += count
        result = {key: value / max(count, 1) for key, value in totals.items()}
        if spec.loss == "ppo" and spec.loss_settings.use_kl_loss:
            result["curr_kl_coeff"] = self._kl_coeff
            self._adapt_kl_coeff(result["mean_kl_loss"])
        targets, values = batch["value_targets"], batch["values"]
        variance = float(np.var(targets))
        result["vf_explained_var"] = (
            float(1.0 - np.var(targets - values) / variance) if variance > 0 else float("nan")
        )
        result["gradients_default_optimizer_global_norm"] = float(np.mean(norms)) if norms else 0.0
        result["num_module_steps_trained"] = float(count * minibatch)
        result["num_env_steps_trained"] = float(size)
        result["num_gradient_updates"] = float(count)
        result["default_optimizer_learning_rate"] = spec.lr
        return result

    def _adapt_kl_coeff(self, sampled_kl: float) -> None:
        # RLlib PPO's rule: grow the coefficient when KL overshoots twice the target,
        # shrink it when KL stays under half of it.
        target = self._spec.kl_target
        if sampled_kl > 2.0 * target:
            self._kl_coeff *= 1.5
        elif sampled_kl < 0.5 * target:
            self._kl_coeff *= 0.5
