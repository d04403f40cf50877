"""The policy-network interface: what env runners and the learner need from any framework.

A network maps a batch of observations to action logits (a categorical distribution over
discrete actions) and state values. The algorithm's losses are computed in numpy by the
learner, which hands the network the gradient of the loss with respect to its two outputs;
the network turns that into gradients of its weights (a vector-Jacobian product, which every
automatic-differentiation library offers: ``jax.vjp``, ``torch.autograd.backward``). So a
network in JAX, torch or plain numpy plugs in by implementing five methods, with weights
as a ``dict[str, numpy.ndarray]`` (what travels through the object store to the runners).

A torch user writes, for instance::

    class TorchNet(PolicyNetwork):
        def __init__(self, obs_dim, num_actions, model_config, seed):
            torch.manual_seed(seed)
            self.body = torch.nn.Sequential(torch.nn.Linear(obs_dim, 64), torch.nn.Tanh())
            self.pi = torch.nn.Linear(64, num_actions)
            self.vf = torch.nn.Linear(64, 1)
            self.params = dict(self.body.named_parameters(prefix="body"))  # and pi, vf

        def forward(self, obs):
            with torch.no_grad():
                h = self.body(torch.as_tensor(obs, dtype=torch.float32))
                return self.pi(h).numpy(), self.vf(h)[:, 0].numpy()

        def backward(self, obs, grad_logits, grad_values):
            h = self.body(torch.as_tensor(obs, dtype=torch.float32))
            outputs = (self.pi(h), self.vf(h)[:, 0])
            grads = torch.autograd.grad(outputs, list(self.params.values()),
                                        (torch.as_tensor(grad_logits),
                                         torch.as_tensor(grad_values)))
            return {k: g.numpy() for k, g in zip(self.params, grads)}

        def get_weights(self): ...   # {name: tensor.detach().numpy().copy()}
        def set_weights(self, weights): ...   # copy each array into its parameter

and passes it with ``config.rl_module(network=TorchNet)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

Weights = dict[str, np.ndarray]
"""A network's weights: parameter name -> array (picklable, framework-free)."""


class PolicyNetwork(ABC):
    """A policy-and-value network over discrete actions.

    Subclasses are constructed as ``cls(obs_dim, num_actions, model_config, seed)``; the
    same seed must give the same initial weights.
    """

    @abstractmethod
    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``[B, num_actions]`` and values ``[B]`` for observations ``[B, obs_dim]``."""

    @abstractmethod
    def backward(
        self, obs: np.ndarray, grad_logits: np.ndarray, grad_values: np.ndarray
    ) -> Weights:
        """Gradient of ``sum(grad_logits * logits) + sum(grad_values * values)`` per weight."""

    @abstractmethod
    def get_weights(self) -> Weights:
        """A copy of the current weights."""

    @abstractmethod
    def set_weights(self, weights: Weights) -> None:
        """Replace the weights (same names and shapes as `get_weights` returns)."""

    def num_parameters(self) -> int:
        """How many scalars the weights hold."""
        return int(sum(w.size for w in self.get_weights().values()))


NetworkFactory = Callable[[int, int, dict[str, Any], int], PolicyNetwork]
"""``factory(obs_dim, num_actions, model_config, seed)``: a class or a function."""


def default_network(
    obs_dim: int, num_actions: int, model_config: dict[str, Any], seed: int
) -> PolicyNetwork:
    """The default network: the JAX MLP (JAX is imported here, not before)."""
    from runtime.rllib.core.jax_mlp import JaxMLP

    return JaxMLP(obs_dim, num_actions, model_config, seed)


def build_network(
    factory: NetworkFactory | None,
    obs_dim: int,
    num_actions: int,
    model_config: dict[str, Any],
    seed: int,
) -> PolicyNetwork:
    """Build the configured network and check that it implements the interface."""
    network = (factory or default_network)(obs_dim, num_actions, dict(model_config), seed)
    if not isinstance(network, PolicyNetwork):
        raise TypeError(
            f"the network factory {factory!r} returned {type(network).__name__}, which is not "
            "a runtime.rllib.core.network.PolicyNetwork (see that module for the interface)"
        )
    return network
