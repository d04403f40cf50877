"""The default MLP with gradients from torch.autograd (``config.framework("torch")``).

The same network as `runtime.rllib.core.jax_mlp.JaxMLP` (same layers, same initial weights
for a seed, the same numpy forward pass in env runners); only `backward` differs: it runs
the network on torch tensors and takes ``torch.autograd.grad`` of the two outputs. torch
is imported on the first `backward`, so only the learner's process loads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.rllib.core.jax_mlp import JaxMLP
from runtime.rllib.core.network import Weights
from runtime.rllib.utils.error import RLlibConfigError


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise RLlibConfigError(
            "framework('torch') needs torch installed (pip install torch); the default "
            "framework, 'jax', comes with the ml extra"
        ) from None
    torch.set_num_threads(1)  # small matrices; the machine's cores run the env runners
    return torch


class TorchMLP(JaxMLP):
    """`JaxMLP`'s network whose weight gradients come from ``torch.autograd.grad``."""

    def backward(
        self, obs: np.ndarray, grad_logits: np.ndarray, grad_values: np.ndarray
    ) -> Weights:
        """Weight gradients by torch's autograd through the same function as the forward."""
        torch = _import_torch()
        act = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda x: x}[self._activation]
        params = {
            name: torch.tensor(np.asarray(w, np.float32), requires_grad=True)
            for name, w in self._weights.items()
        }
        x = torch.as_tensor(np.asarray(obs, np.float32))
        logits, values = self._apply(torch, act, params, x)
        grads = torch.autograd.grad(
            (logits, values),
            [params[name] for name in self._names],
            (
                torch.as_tensor(np.asarray(grad_logits, np.float32)),
                torch.as_tensor(np.asarray(grad_values, np.float32)),
            ),
            allow_unused=True,
        )
        return {
            name: np.zeros_like(self._weights[name]) if g is None else g.numpy()
            for name, g in zip(self._names, grads, strict=True)
        }
