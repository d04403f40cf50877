"""Adam over a dict of numpy arrays, with optional global-norm gradient clipping."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.rllib.core.network import Weights


@dataclass
class Adam:
    """Adam (Kingma & Ba) with bias correction; state is plain arrays, so it pickles."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float | None = None
    step_count: int = 0
    m: Weights = field(default_factory=dict)
    v: Weights = field(default_factory=dict)

    def apply(self, weights: Weights, grads: Weights) -> tuple[Weights, float]:
        """New weights after one step on `grads`; also the gradients' global norm."""
        norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
        scale = 1.0
        if self.grad_clip is not None and norm > self.grad_clip:
            scale = self.grad_clip / (norm + 1e-6)
        self.step_count += 1
        t = self.step_count
        correction = np.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        updated: Weights = {}
        for name, w in weights.items():
            g = grads[name] * scale
            m = self.m.get(name)
            v = self.v.get(name)
            m = (1 - self.beta1) * g if m is None else self.beta1 * m + (1 - self.beta1) * g
            v = (1 - self.beta2) * g * g if v is None else self.beta2 * v + (1 - self.beta2) * g * g
            self.m[name], self.v[name] = m, v
            updated[name] = (w - self.lr * correction * m / (np.sqrt(v) + self.eps)).astype(w.dtype)
        return updated, norm
