"""Action distributions over a network's outputs, in numpy, with the gradients the losses need.

`Categorical` (discrete actions: the outputs are logits) and `DiagGaussian` (continuous
actions: the outputs are a mean and a log standard deviation per action dimension, as
RLlib's ``TorchDiagGaussian``). Each gives, for a batch of distribution inputs ``z``:
sampling, the log-probability of actions and its gradient with respect to ``z``, the
entropy and its gradient, and ``KL(old || new)`` and its gradient with respect to the new
inputs. The losses combine these into the gradient they hand to the network's `backward`.
"""

from __future__ import annotations

import math

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class Categorical:
    """A categorical distribution over discrete actions; the inputs are logits ``[B, n]``."""

    @staticmethod
    def sample(z: np.ndarray, rng: np.random.Generator, explore: bool) -> np.ndarray:
        """Sampled actions (Gumbel-max) or, without exploration, the most likely ones."""
        if not explore:
            return z.argmax(axis=-1)
        gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=z.shape)))
        return (z + gumbel).argmax(axis=-1)

    @staticmethod
    def logp(z: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``log p(a)`` per row."""
        return log_softmax(z)[np.arange(len(z)), actions]

    @staticmethod
    def logp_grad(z: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``d log p(a) / dz = onehot(a) - softmax(z)``."""
        grad = -np.exp(log_softmax(z))
        grad[np.arange(len(z)), actions] += 1.0
        return grad

    @staticmethod
    def entropy(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entropy per row and its gradient ``-p * (log p + H)``."""
        logp = log_softmax(z)
        probs = np.exp(logp)
        entropy = -(probs * logp).sum(axis=-1)
        return entropy, -probs * (logp + entropy[:, None])

    @staticmethod
    def kl(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``KL(old || new)`` per row and its gradient with respect to `new`: ``p - p_old``."""
        old_logp, new_logp = log_softmax(old), log_softmax(new)
        old_p = np.exp(old_logp)
        return (old_p * (old_logp - new_logp)).sum(axis=-1), np.exp(new_logp) - old_p


class DiagGaussian:
    """A Gaussian with a diagonal covariance; the inputs are ``[mean, log_std]`` (``[B, 2d]``)."""

    @staticmethod
    def _split(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = z.shape[-1] // 2
        return z[:, :d], z[:, d:]

    @classmethod
    def sample(cls, z: np.ndarray, rng: np.random.Generator, explore: bool) -> np.ndarray:
        """``mean + std * N(0, 1)``, or the mean without exploration."""
        mean, log_std = cls._split(z)
        if not explore:
            return mean.copy()
        return (mean + np.exp(log_std) * rng.standard_normal(mean.shape)).astype(np.float32)

    @classmethod
    def logp(cls, z: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``log p(a)`` per row (summed over the action's dimensions)."""
        mean, log_std = cls._split(z)
        u = (actions - mean) / np.exp(log_std)
        return (-0.5 * u**2 - log_std - 0.5 * LOG_2PI).sum(axis=-1)

    @classmethod
    def logp_grad(cls, z: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``d log p(a) / d mean = u / std``, ``d log p(a) / d log_std = u**2 - 1``."""
        mean, log_std = cls._split(z)
        std = np.exp(log_std)
        u = (actions - mean) / std
        return np.concatenate([u / std, u**2 - 1.0], axis=-1)

    @classmethod
    def entropy(cls, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entropy per row, ``sum(log_std) + d (1 + log 2 pi) / 2``, and its gradient."""
        mean, log_std = cls._split(z)
        entropy = (log_std + 0.5 + 0.5 * LOG_2PI).sum(axis=-1)
        return entropy, np.concatenate([np.zeros_like(mean), np.ones_like(log_std)], axis=-1)

    @classmethod
    def kl(cls, old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``KL(old || new)`` per row and its gradient with respect to `new`."""
        old_mean, old_log_std = cls._split(old)
        new_mean, new_log_std = cls._split(new)
        new_var = np.exp(2.0 * new_log_std)
        spread = (np.exp(2.0 * old_log_std) + (old_mean - new_mean) ** 2) / new_var
        kl = (new_log_std - old_log_std + 0.5 * spread - 0.5).sum(axis=-1)
        grad = np.concatenate([(new_mean - old_mean) / new_var, 1.0 - spread], axis=-1)
        return kl, grad


Distribution = type[Categorical] | type[DiagGaussian]


def distribution(continuous: bool) -> Distribution:
    """The distribution class of a discrete (False) or continuous (True) action space."""
    return DiagGaussian if continuous else Categorical
