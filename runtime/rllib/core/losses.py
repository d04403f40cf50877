"""The algorithms' losses in numpy, with their gradients with respect to the network's outputs.

Each loss returns its statistics and ``(grad_dist_inputs, grad_values)``, the gradient of
the mean loss over the minibatch with respect to the network's two outputs; the network's
`backward` turns those into weight gradients (see `runtime.rllib.core.network`). The
action distribution (`runtime.rllib.core.distributions`: categorical over logits, or a
diagonal Gaussian over means and log-stds) supplies ``d log p(a) / dz``, the entropy's
gradient and ``KL(old || new)``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.rllib.core.distributions import distribution, log_softmax

__all__ = ["LossSettings", "log_softmax", "pg_loss", "ppo_loss"]


@dataclass(frozen=True)
class LossSettings:
    """The loss coefficients an algorithm config sets (Ray's names)."""

    clip_param: float
    vf_clip_param: float
    vf_loss_coeff: float
    entropy_coeff: float
    use_kl_loss: bool
    use_critic: bool
    continuous: bool = False
    """True: a diagonal Gaussian over a Box action space; False: categorical."""


def _value_terms(
    values: np.ndarray, targets: np.ndarray, clip: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    unclipped = (values - targets) ** 2
    grad = 2.0 * (values - targets)
    if clip is None:
        return unclipped, unclipped, grad
    clipped = np.minimum(unclipped, clip)
    return clipped, unclipped, np.where(unclipped < clip, grad, 0.0)


def ppo_loss(
    logits: np.ndarray,
    values: np.ndarray,
    batch: dict[str, np.ndarray],
    settings: LossSettings,
    kl_coeff: float,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """PPO's clipped surrogate, clipped value loss, entropy bonus and KL penalty (as RLlib's)."""
    n = len(logits)
    dist = distribution(settings.continuous)
    actions = batch["actions"]
    ratio = np.exp(dist.logp(logits, actions) - batch["action_logp"])
    adv = batch["advantages"]
    clipped_ratio = np.clip(ratio, 1 - settings.clip_param, 1 + settings.clip_param)
    surrogate = np.minimum(ratio * adv, clipped_ratio * adv)
    active = ratio * adv <= clipped_ratio * adv  # the unclipped term is the minimum
    dlogp = -(active * adv * ratio) / n  # d(-mean surrogate)/d logp_a
    g_logits = dist.logp_grad(logits, actions) * dlogp[:, None]
    entropy, g_entropy = dist.entropy(logits)
    g_logits -= settings.entropy_coeff * g_entropy / n
    kl, g_kl = dist.kl(batch["action_dist_inputs"], logits)
    if settings.use_kl_loss:
        g_logits += kl_coeff * g_kl / n
    if settings.use_critic:
        vf_loss, vf_unclipped, g_v = _value_terms(
            values, batch["value_targets"], settings.vf_clip_param
        )
        g_values = settings.vf_loss_coeff * g_v / n
    else:
        vf_loss = vf_unclipped = np.zeros(n)
        g_values = np.zeros(n)
    total = (
        -surrogate.mean()
        + settings.vf_loss_coeff * vf_loss.mean()
        - settings.entropy_coeff * entropy.mean()
        + (kl_coeff * kl.mean() if settings.use_kl_loss else 0.0)
    )
    stats = {
        "total_loss": float(total),
        "policy_loss": float(-surrogate.mean()),
        "vf_loss": float(vf_loss.mean()),
        "vf_loss_unclipped": float(vf_unclipped.mean()),
        "entropy": float(entropy.mean()),
        "mean_kl_loss": float(kl.mean()),
    }
    return stats, g_logits, g_values


def pg_loss(
    logits: np.ndarray,
    values: np.ndarray,
    batch: dict[str, np.ndarray],
    settings: LossSettings,
    kl_coeff: float,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """REINFORCE with a learned baseline: ``-mean(log p_a * A)`` plus value loss and entropy."""
    del kl_coeff  # the policy gradient has no trust region
    n = len(logits)
    dist = distribution(settings.continuous)
    actions = batch["actions"]
    adv = batch["advantages"]
    dlogp = -adv / n
    g_logits = dist.logp_grad(logits, actions) * dlogp[:, None]
    entropy, g_entropy = dist.entropy(logits)
    g_logits -= settings.entropy_coeff * g_entropy / n
    vf_loss, vf_unclipped, g_v = _value_terms(values, batch["value_targets"], None)
    g_values = settings.vf_loss_coeff * g_v / n
    policy_loss = -(dist.logp(logits, actions) * adv).mean()
    stats = {
        "total_loss": float(
            policy_loss
            + settings.vf_loss_coeff * vf_loss.mean()
            - settings.entropy_coeff * entropy.mean()
        ),
        "policy_loss": float(policy_loss),
        "vf_loss": float(vf_loss.mean()),
        "vf_loss_unclipped": float(vf_unclipped.mean()),
        "entropy": float(entropy.mean()),
    }
    return stats, g_logits, g_values
